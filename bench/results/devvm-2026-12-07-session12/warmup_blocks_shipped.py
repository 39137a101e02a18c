"""Experiment (issue 18): ``warmup_blocks.py`` on the shipped detector (with ``hold_shift``, whose channel
scores depend on the lifecycle, so by full scorer runs): all dev at R 200 / 225 with the shipped
policy and with one where only a reported opening (not a muted one in the warm-up) starts the blocks.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session12/warmup_blocks_shipped.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

import r_landscape
from lifecycle_probe import dev_set, windows_and_fp

from models.calibrated import CalibratedChannels

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"


def policy(self: CalibratedChannels, aux, steps, is_open, below, since):  # type: ignore[no-untyped-def]
    """``CalibratedChannels.policy`` where only a reported opening starts the blocks."""
    k = self._k(aux.device)
    sc = aux[:, self._score].masked_fill((steps < 2.0).unsqueeze(1), 0.0)
    score = sc.amax(1)
    csince = aux[:, self._csince]
    blocked = (csince < k["suppress"]) | (since < k["suppress_other"]).unsqueeze(1)
    best, ch = sc.masked_fill(blocked, 0.0).max(1)
    was_open = is_open > 0.0
    fire = (best >= k["open"]) & ~was_open
    below_new = (below + 1.0).masked_fill_(score >= k["close"], 0.0)
    resolves = was_open & (below_new >= k["close_after"])
    opens = fire & (steps >= k["warmup"])
    now_open = (was_open | opens) & ~resolves
    csince.add_(1.0).clamp_max_(float(self.config.suppress))
    hit = torch.zeros_like(csince, dtype=torch.bool).scatter_(1, ch.unsqueeze(1), opens.unsqueeze(1))
    csince.masked_fill_(hit, 0.0)
    since.add_(1.0).masked_fill_(opens, 0.0).clamp_max_(float(self.config.suppress))
    return score, now_open, below_new.masked_fill_(~now_open, 0.0)


def main() -> None:
    corpus, shipped, dev = dev_set()
    assert shipped.hold_shift
    shipped_policy = CalibratedChannels.policy
    for name, pol in (("shipped policy", shipped_policy), ("only reported openings start blocks", policy)):
        CalibratedChannels.policy = pol  # type: ignore[method-assign]
        dev._cache.clear()  # DevSet memoises detections per config, not per policy
        for rr in (200, 225):
            c = r_landscape.with_r(shipped, rr)
            det = dev.detections(c)
            s = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
            w, fp = windows_and_fp(corpus, det, c.open_threshold)
            print(f"{name}, R {rr}: {s:.2f} ({w} windows, {fp} FP rows)", flush=True)


if __name__ == "__main__":
    main()
