"""Experiment (issue 18): could a stream's own first 1,000 events choose the log domain? The slope of
log|x_t - x_(t-1)| on log x_(t-1) (noise that scales with the level: ~1 multiplicative, 0.5 Poisson,
~0 additive), per NAB dev file and per synthetic series of seed 0 (NaN: a negative value, or too few
positive steps).

    PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session13/domain_slope.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

import models.synthetic as syn


def slope(v: np.ndarray, n: int = 1000) -> float:
    v = np.asarray(v[:n], float)
    if v.min() < 0:
        return float("nan")
    lev, st = v[:-1], np.abs(np.diff(v))
    m = (lev > 0) & (st > 0)
    if m.sum() < 50 or np.log(lev[m]).std() < 1e-6:
        return float("nan")
    return float(np.polyfit(np.log(lev[m]), np.log(st[m]), 1)[0])


def main() -> None:
    for p in sorted(Path("../shared/data/nab-dev/data").glob("*/*.csv")):
        with open(p, encoding="utf-8") as fh:
            v = np.array([float(r["value"]) for r in csv.DictReader(fh)])
        print(f"{p.parent.name}/{p.name:45s} {slope(v):6.2f}")
    for f, ss in syn.make_families(0, 6).items():
        print(f, [round(slope(s.values), 2) for s in ss])


if __name__ == "__main__":
    main()
