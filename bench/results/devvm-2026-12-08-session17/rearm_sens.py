"""Experiment (issue 18, seventeenth session): the sensitivity table (each free parameter at -25 % / +25 %)
under the ``rearm`` lifecycle (``rearm.py``): R and R_other/R do not exist there; its own LOW and QUIET
are moved too.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. [REARM_LOW=0.3] .venv/bin/python \\
        bench/results/devvm-2026-12-08-session17/rearm_sens.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session13"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import importlib
import os

from lifecycle_probe import dev_set
from window_table import point

from models.protocol import FREE_PARAMETERS

rearm = importlib.import_module(os.environ.get("REARM_MODULE", "rearm"))


def _knobs() -> str:
    return f"low {getattr(rearm, 'LOW', 'close')} quiet {getattr(rearm, 'QUIET', 'close_after')}"


def main() -> None:
    rearm.install()
    corpus, base, dev = dev_set()
    point(
        corpus,
        dev,
        base,
        f"{rearm.__name__} {_knobs()} base",
    )
    for p in FREE_PARAMETERS:
        if p.name in ("R", "R_other/R"):
            continue
        v = p.get(base)
        for m in (0.75, 1.25):
            nv = round(v * m) if p.integer else v * m
            point(corpus, dev, p.set(base, nv), f"{p.name} {nv:.4g}")
    for name, v in (("LOW", getattr(rearm, "LOW", None)), ("QUIET", getattr(rearm, "QUIET", None))):
        if v is None:  # rearm_x: LOW and QUIET are close_threshold and close_after, moved above
            continue
        for m in (0.75, 1.25):
            nv = round(v * m) if name == "QUIET" else v * m
            setattr(rearm, name, float(nv))
            dev._cache.clear()  # the detections are cached per ScoringConfig, which LOW/QUIET do not change
            point(corpus, dev, base, f"{name} {nv:.4g}")
        setattr(rearm, name, float(v))


if __name__ == "__main__":
    main()
