"""Experiment (issue 18): speed_7578 and TravelTime_387, the files whose windows the R landscape moves:
their NAB windows, the alerts the shipped blocks open at R 50 / 150 / 200 / 250 (event, channel r/p/s,
score, window id or -1) and every event where a channel reached the threshold. The detector before
``hold_shift`` (``fp_anatomy.cached``).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session12/windows_blocks.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))
sys.path.insert(0, str(Path(__file__).parent))

import r_landscape
from fp_anatomy import cached
from lifecycle_probe import rule_blocks


def main() -> None:
    corpus, shipped, dev, chans, steps = cached()
    for name in ("speed_7578", "TravelTime_387"):
        i = next(k for k, f in enumerate(dev.files) if name in f)
        f = dev.files[i]
        win = corpus._win[f]
        spans = [
            (int(w), int(np.flatnonzero(win == w)[0]), int(np.flatnonzero(win == w)[-1]))
            for w in np.unique(win[win >= 0])
        ]
        print(name, len(win), "windows (id, first, last):", spans)
        for rr in (50, 150, 200, 250):
            d = rule_blocks(r_landscape.with_r(shipped, rr), chans[i], steps[i])
            t = np.flatnonzero(d > 0)
            print(" R", rr, [(int(x), "rps"[int(chans[i][x].argmax())], round(float(d[x]), 2), int(win[x])) for x in t])
        sc = chans[i]
        above = np.flatnonzero(sc.max(1) >= 0.5)
        print(" at or above 0.5:", [(int(x), "rps"[int(sc[x].argmax())], round(float(sc[x].max()), 2)) for x in above])


if __name__ == "__main__":
    main()
