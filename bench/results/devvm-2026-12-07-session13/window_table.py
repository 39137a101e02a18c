"""Experiment (issue 18): which dev windows the shipped detector misses and where its FP rows are,
at R 200 (shipped) and R 50 (the flat part of the landscape), by full scorer runs.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session13/window_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import r_landscape
from lifecycle_probe import dev_set


def table(corpus, det, thr):  # type: ignore[no-untyped-def]
    missed, fps = [], {}
    for f in corpus.files:
        m, w = corpus._mask[f], corpus._win[f]
        d = (det[f] >= thr) & m
        for wid in np.unique(w[(w >= 0) & m]):
            if not d[w == wid].any():
                rows = np.flatnonzero(w == wid)
                missed.append((f, int(wid), int(rows[0]), int(rows[-1])))
        n = int((d & (w < 0)).sum())
        if n:
            fps[f] = n
    return missed, fps


def main() -> None:
    corpus, shipped, dev = dev_set()
    for rr in [int(a) for a in sys.argv[1:]] or [200, 50]:
        c = r_landscape.with_r(shipped, rr)
        det = dev.detections(c)
        s = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
        missed, fps = table(corpus, det, c.open_threshold)
        print(f"R {rr}: {s:.2f}, {sum(fps.values())} FP rows")
        for f, wid, a, b in missed:
            print(f"  missed window {wid}: {f} rows {a}-{b}")
        for f, n in sorted(fps.items(), key=lambda kv: -kv[1]):
            print(f"  FP {n:3d} {f}")


if __name__ == "__main__":
    main()
