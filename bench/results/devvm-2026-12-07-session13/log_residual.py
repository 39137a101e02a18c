"""Experiment (issue 18): only the forecaster in the log domain. The series are fed as
``sign(x) log1p(|x|)`` (NAB dev: a copy written to the first argument's folder; synthetic: the families
transformed), so the normaliser, the GRU, its residual, the residual's time-of-day baseline and the step
scale work in log units; the profile and shift channels and the gate get the values back in their own
units (``sign(y) expm1(|y|)``) with an sd of the normaliser's log sd times exp(|log mean|) (the delta
method at the running geometric level; their calibration scales them). ``log_context.py`` is the
complement (context channels in log units, forecaster linear); ``log_domain*.py`` both.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session13/log_residual.py /tmp/nab_slog
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from window_table import dev_and_synthetic

import models.synthetic as syn
from models.scoring import Scorer

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
SRC = Path("../shared/data/nab-dev/data")
LABELS = "../shared/data/nab-dev/combined_windows.json"
_context = Scorer._context
_make = syn.make_families


def context(self, aux, x, std, count, err, phase, step=None):  # type: ignore[no-untyped-def]
    t = self.n_targets
    m = aux[:, self._mean][:, :t]  # [B, T] running mean of the log values
    xl, sl = x.clone(), std.clone()
    xl[:, :t] = torch.sign(x[:, :t]) * torch.expm1(x[:, :t].abs())  # [B, T] back in the value's units
    sl[:, :t] = std[:, :t] * torch.exp(m.abs())  # [B, T]
    return _context(self, aux, xl, sl, count, err, phase, step)


def slog(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.log1p(np.abs(v))


def make_families(seed: int, per_family: int = 6) -> dict[str, list[syn.SynthSeries]]:
    return {f: [dataclasses.replace(s, values=slog(s.values)) for s in ss] for f, ss in _make(seed, per_family).items()}


def write(out: Path) -> None:
    for p in sorted(SRC.glob("*/*.csv")):
        with open(p, encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        v = slog(np.array([float(r["value"]) for r in rows]))
        dst = out / p.relative_to(SRC)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(dst, "w", encoding="utf-8") as fh:
            fh.write("timestamp,value\n")
            fh.writelines(f"{r['timestamp']},{x:.8g}\n" for r, x in zip(rows, v, strict=True))


def main() -> None:
    out = Path(sys.argv[1])
    write(out)
    Scorer._context = context  # type: ignore[method-assign]
    syn.make_families = make_families  # type: ignore[assignment]
    torch.set_num_threads(1)
    dev_and_synthetic(out, LABELS)


if __name__ == "__main__":
    main()
