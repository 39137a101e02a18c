"""Experiment (issue 18): which anomaly-free `quiet` series alert, where, and on what, for the given seeds,
with the bundled detector and with single scoring fields changed (the product's Runner, one stream
at a time: an alert opening's row, the value there and the stream's sd so far).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session14/quiet_alerts.py \\
        [drop_step=0 ...] --seeds 3 4
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.synthetic import make_families
from models.types import Batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4])
    ap.add_argument("fields", nargs="*")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ck = load_checkpoint()
    f = {k: type(getattr(ck.scoring, k))(float(v)) for k, v in (kv.split("=") for kv in a.fields)}
    scoring = dataclasses.replace(ck.scoring, **f)
    print(f"fields {f or 'as bundled'}")
    for seed in a.seeds:
        for s in make_families(seed, 6)["quiet"]:
            r = Runner(ck.model, scoring, device="cpu", capacity=2)
            for t in range(len(s.values)):
                res = r.process(Batch([s.name], s.ts[t : t + 1], np.array([[s.values[t]]], np.float32)))
                if res.transition[0] > 0:
                    v = s.values[: t + 1]
                    z = (s.values[t] - v.mean()) / max(v.std(), 1e-9)
                    print(
                        f"seed {seed} {s.name:14s} row {t:5d} value {s.values[t]:9.3f} "
                        f"(mean {v.mean():8.3f}, sd {v.std():7.3f}, z {z:6.2f}) "
                        f"score {res.score[0]:.3f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
