"""Experiment (issue 18, seventeenth session): every alert opening (row, opening channel r/p/d/S for residual,
profile, drop, shift, its score, window or FP) in the named dev files, under the shipped blocks and under
``rearm`` (LOW 0.3, QUIET 10), both with the fifteenth session's half-normal null on the shift channel;
numpy replay over the recorded channel scores (the tenth session's ``lifecycle_probe``).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-08-session17/rows_hn.py rogue_agent_key_updown machine_temperature ...
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session15"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import halfnormal_shift as hn
import lifecycle_probe as lp

from models.calibrated import CalibratedChannels


def main() -> None:
    CalibratedChannels.calibrate = hn.calibrate  # type: ignore[method-assign]
    CalibratedChannels.init_row = hn.init_row  # type: ignore[method-assign]
    CalibratedChannels._k = hn.k  # type: ignore[method-assign]
    corpus, c, dev = lp.dev_set()
    chans, steps = lp.traces(dev, c)
    names = sys.argv[1:]
    for i, f in enumerate(dev.files):
        if not any(n in f for n in names):
            continue
        w, sc = corpus._win[f], chans[i]
        for rule in ("blocks", "rearm"):
            if rule == "blocks":
                d = lp.rule_blocks(c, sc, steps[i])
            else:
                d = lp.rule_rearm(c, sc, steps[i], low=c.close_threshold, quiet=c.close_after)
            cells = [
                f"{r}:{'rpdS'[int(sc[r].argmax())]}:{sc[r].max():.2f}:{'w' + str(w[r]) if w[r] >= 0 else 'FP'}"
                for r in np.flatnonzero(d > 0)
            ]
            print(f, rule, " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
