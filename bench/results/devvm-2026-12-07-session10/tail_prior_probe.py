"""Experiment (issue 18): the tail check's prior worth W events (the calibration window) instead of
1/q0 events (one expected exceedance at z0), and the sensitivity table with it.

With a prior of 1/q0 events, z0 sets both the level and the prior's weight, which grows
exponentially with z0 (z0 3.5: 4,300 events; 4.375: 165,000, longer than any NAB file, so the
check never leaves the Gaussian rate). Here the prior's weight is the calibration window W: the
check's rate is an EMA at 1/W from the first event, started at q0. Same replay as
``r_landscape.py`` (the shipped rule over per-channel scores from the torch scorer).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session10/tail_prior_probe.py [--bases 200 50]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import r_landscape
from lifecycle_probe import dev_set, traces

from models.calibrated import CalibratedChannels

_shipped_k = CalibratedChannels._k


def _k_prior_w(self: CalibratedChannels, dev: torch.device) -> dict[str, Any]:
    got = _shipped_k(self, dev)
    got["n0"] = torch.tensor(float(self.config.err_window), dtype=torch.float32, device=dev)
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bases", type=int, nargs="+", default=[200, 50])
    args = ap.parse_args()
    CalibratedChannels._k = _k_prior_w  # type: ignore[method-assign]
    corpus, shipped, dev = dev_set()
    base_tr = traces(dev, shipped)
    moved = r_landscape.moved_traces(dev, shipped)
    print("tail check prior: W events")
    for r in (50, 100, 150, 200, 250):
        s, n = r_landscape.score(corpus, dev.files, base_tr, r_landscape.with_r(shipped, r))
        print(f"  R {r}: {s:.2f} ({n})", flush=True)
    for r in args.bases:
        r_landscape.table(corpus, dev.files, base_tr, moved, shipped, r)


if __name__ == "__main__":
    main()
