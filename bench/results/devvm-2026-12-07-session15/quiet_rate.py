"""Experiment (issue 18): the `quiet` family's false-alert rate over many seeds, not six.

`quiet` (flat, white noise, sine, sine with noise, square wave; 10 series of 4,032 five-minute events
per seed) is silent on seeds 0-2 and 4-5 and alerts twice on seed 3. Six seeds are 242k events;
a rate needs more. Here the quiet series of seeds ``--seeds A B`` (generated exactly as
``make_families(seed)`` does) run as concurrent streams through the product's Runner (the bundled
detector, the compiled scorer), and every opening is listed with its series kind.
``--halfnormal`` scores the shift channel with a half-normal null (``halfnormal_shift.py``; torch
scorer, set SEQSTREAM_SCORER_KERNEL=0).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session15/quiet_rate.py --seeds 0 50

``quiet_rate_bundled.txt`` and ``quiet_rate_halfnormal.txt``: the bundle of 42fce55;
``quiet_rate_halfnormal_profile.txt``: the bundle with ``profile_halfnormal``.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from models.calibrated import CalibratedChannels
from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.synthetic import make_families
from models.types import Batch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs=2, default=[0, 50])
    ap.add_argument("--halfnormal", action="store_true")
    a = ap.parse_args()
    if a.halfnormal:
        import halfnormal_shift as hn

        CalibratedChannels.calibrate = hn.calibrate  # type: ignore[method-assign]
        CalibratedChannels.init_row = hn.init_row  # type: ignore[method-assign]
        CalibratedChannels._k = hn.k  # type: ignore[method-assign]
    torch.set_num_threads(1)
    series = [(seed, s) for seed in range(*a.seeds) for s in make_families(seed)["quiet"]]
    ck = load_checkpoint()
    runner = Runner(ck.model, ck.scoring, device="cpu", capacity=len(series))
    ids = [f"{seed}/{s.name}" for seed, s in series]
    n = len(series[0][1].values)
    assert all(len(s.values) == n for _, s in series)
    opened = collections.Counter()
    events = collections.Counter()
    with torch.inference_mode():
        for t in range(n):
            ts = np.array([s.ts[t] for _, s in series])
            x = np.array([[s.values[t]] for _, s in series], np.float32)
            res = runner.process(Batch(ids, ts, x))
            for j in np.flatnonzero(res.transition > 0):
                seed, s = series[j]
                print(f"seed {seed} {s.name} opened at row {t} (value {s.values[t]:.3f}, score {res.score[j]:.3f})")
                opened[s.name.rsplit("_", 1)[0]] += 1
    for _, s in series:
        events[s.name.rsplit("_", 1)[0]] += n
    total = sum(opened.values())
    print(
        f"seeds {a.seeds[0]}-{a.seeds[1] - 1} ({'half-normal shift' if a.halfnormal else 'bundled'}): "
        f"{total} alerts in {sum(events.values())} events, {total / sum(events.values()) * 1e4:.3f} per 10k"
    )
    for k in sorted(events):
        print(f"  {k}: {opened[k]} alerts in {events[k]} events, {opened[k] / events[k] * 1e4:.3f} per 10k")


if __name__ == "__main__":
    main()
