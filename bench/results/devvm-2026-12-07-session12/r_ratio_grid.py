"""Experiment (issue 18): the shipped blocks over R and R_other / R (0: a channel is blocked only by its
own alerts), all dev standard (windows, FP rows). Channel scores recorded once (``fp_anatomy.cached``).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session12/r_ratio_grid.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))
sys.path.insert(0, str(Path(__file__).parent))

import r_landscape
from fp_anatomy import cached
from lifecycle_probe import rule_blocks, windows_and_fp


def main() -> None:
    corpus, shipped, dev, chans, steps = cached()
    rs = [25, 50, 75, 100, 125, 150, 175, 200, 225, 250, 300, 400]
    print("ratio \\ R " + " ".join(f"{r:>12}" for r in rs))
    for ratio in (0.0, 0.25, 0.5, 1.0):
        cells = []
        for rr in rs:
            c = r_landscape.with_r(shipped, rr, ratio)
            det = {f: rule_blocks(c, chans[i], steps[i]) for i, f in enumerate(dev.files)}
            s = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
            w, fp = windows_and_fp(corpus, det, c.open_threshold)
            cells.append(f"{s:5.2f}({w},{fp:2d})")
        print(f"{ratio:<10} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
