"""Experiment (issue 18): what if a muted warm-up alert did not start the blocks? The shipped lifecycle
(``CalibratedChannels.policy``) lets a channel that reaches the threshold during the warm-up start its
blocks although no alert is reported; ``windows_blocks.txt`` shows one such opening (speed_7578, event
77) deciding window 33 at R 200. Prints the R landscape (all dev standard, windows, FP rows) with and
without it. The detector before ``hold_shift`` (``fp_anatomy.cached``; rules replayed).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session12/warmup_blocks.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))
sys.path.insert(0, str(Path(__file__).parent))

import r_landscape
from fp_anatomy import cached
from lifecycle_probe import _Lifecycle, windows_and_fp

from models.scoring_config import ScoringConfig


def rule(c: ScoringConfig, sc: np.ndarray, steps: np.ndarray, warm_blocks: bool) -> np.ndarray:
    """``lifecycle_probe.rule_blocks``; ``warm_blocks`` off: only a reported opening starts the blocks."""
    t_n, n_c = sc.shape
    out = np.zeros(t_n, np.float32)
    csince = np.full(n_c, float(c.suppress))
    since = float(c.suppress)
    life = _Lifecycle(c)
    for t in range(t_n):
        s = sc[t]
        blocked = (csince < c.suppress) | (since < c.suppress_other)
        m = np.where(blocked, 0.0, s)
        ch = int(m.argmax())
        fire, opens = life.step(bool(m[ch] >= c.open_threshold), s.max(), steps[t])
        csince = np.minimum(csince + 1.0, c.suppress)
        start = fire if warm_blocks else opens
        if start:
            csince[ch] = 0.0
        since = 0.0 if start else min(since + 1.0, c.suppress)
        if opens:
            out[t] = s.max()
    return out


def main() -> None:
    corpus, shipped, dev, chans, steps = cached()
    for wb in (True, False):
        cells = []
        for rr in (50, 100, 150, 175, 200, 225, 250, 300):
            c = r_landscape.with_r(shipped, rr)
            det = {f: rule(c, chans[i], steps[i], wb) for i, f in enumerate(dev.files)}
            s = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
            w, fp = windows_and_fp(corpus, det, c.open_threshold)
            cells.append(f"R {rr}: {s:.2f} ({w},{fp})")
        name = "warm-up fires start blocks (shipped)" if wb else "only reported openings start blocks"
        print(name, " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
