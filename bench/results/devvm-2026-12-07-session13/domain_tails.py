"""Experiment (issue 18): would the calibration's own tail check choose the log domain where it helps?
Each series runs through the bundled detector twice, as it is and as ``sign(x) log1p(|x|)``
(``log_domain.py``); after its first N events (default 2,000) we read each channel's tail-check rate
(how often its z passed z0 = 3.5) and sum log(max(rate / q0, 1)) over the channels: the excess over a
Gaussian tail. The domain with the smaller excess is the one where the calibration's assumption holds
better. Printed per NAB dev file and per synthetic series of seed 0, with the domain it would choose.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session13/domain_tails.py [N]
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import torch

import models.synthetic as syn
from models.checkpoint import load_checkpoint
from models.nab import parse_timestamp
from models.runner import Runner
from models.types import Batch


def excess(ts: np.ndarray, v: np.ndarray, n: int) -> float:
    ck = load_checkpoint()
    r = Runner(ck.model, ck.scoring, device="cpu", capacity=2)
    cal = r.scorer.calibrated
    assert cal is not None
    m = min(n, len(v))
    for t in range(m):
        r.process(Batch(["s"], ts[t : t + 1], np.array([[v[t]]], np.float32)))
    slot = r.slab.slot("s")
    assert slot is not None
    rate = r.slab.aux[slot, cal._exc].numpy()  # [C]
    return float(np.log(np.maximum(rate / cal._q0, 1.0)).sum())


def slog(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.log1p(np.abs(v))


def report(name: str, ts: np.ndarray, v: np.ndarray, n: int) -> None:
    lin, lg = excess(ts, v, n), excess(ts, slog(v), n)
    print(f"{name:55s} linear {lin:6.2f}  log {lg:6.2f}  -> {'log' if lg < lin else 'linear'}", flush=True)


def main() -> None:
    torch.set_num_threads(1)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(
        f"excess over the Gaussian tail after {n} events (sum over channels of log(rate / q0), >= 0); q0 "
        f"{0.5 * math.erfc(3.5 / math.sqrt(2)):.2e}"
    )
    for p in sorted(Path("../shared/data/nab-dev/data").glob("*/*.csv")):
        with open(p, encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        ts = np.array([parse_timestamp(r["timestamp"]) for r in rows])
        report(f"{p.parent.name}/{p.name}", ts, np.array([float(r["value"]) for r in rows]), n)
    for fam, ss in syn.make_families(0, 6).items():
        for s in ss:
            report(f"{fam}/{s.name}", s.ts, s.values, n)


if __name__ == "__main__":
    main()
