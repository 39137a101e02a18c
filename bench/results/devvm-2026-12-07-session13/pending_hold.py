"""Experiment (issue 18): the shift channel's held calibration, with the held events folded in after
all when the alert ends within S events of its opening (a spike's trace, not a level shift's).

The shipped hold (``hold_shift``) never folds the events of an open alert into the shift channel's
calibration. On a series with regular spikes (NAB's ``art_increase_spike_density``: one every 100
events) every spike opens an alert once its block has run out, and its events are held, so the
channel never learns the spikes and alerts at each one for ever (30 FP rows at R 50, 4 at R 200;
2 and 5 without the hold). Here the held channel's deviations are kept aside (sum of d, of d^2,
count: 3 columns) and folded in at the running estimate's rate of that moment when the alert resolves within
S events of opening; an alert that lasted longer (a level shift, whose trace lasts ~shift_long
events) discards them, as the shipped hold does.

The product has this since (``hold_release`` 3, the bundle); the probe patches the detector before
it (``before_release``). Patches the torch scorer (3 more aux columns), prints the dev R landscape, optionally the
sensitivity table and the synthetic corpus as NAB, and the level-shift windows (``--shifts``).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session13/pending_hold.py --split K [--table] [--synth] [--shifts]

``--split K``: S = K * shift_short (a spike's trace on the short mean has decayed to e^-K by then).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))

from models.calibrated import CalibratedChannels
from models.scoring import Scorer

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"

SPLIT = 3.0


def before_release() -> None:
    """Make the bundled checkpoint load with ``hold_release`` 0: the twelfth session's detector, which
    these probes patch, whatever the bundle holds now (the product has the release since this
    probe). Call it before anything imports ``load_checkpoint``."""
    import dataclasses

    import models.checkpoint as mc

    bundled = mc.load_checkpoint

    def load(path: str | None = None) -> mc.Checkpoint:
        ck = bundled(path)
        return ck if path else dataclasses.replace(ck, scoring=dataclasses.replace(ck.scoring, hold_release=0.0))

    mc.load_checkpoint = load  # type: ignore[assignment]


_init = CalibratedChannels.__init__
_calibrate = CalibratedChannels.calibrate


def init(self, config, offset, n_channels, n_targets, gated, hourly):  # type: ignore[no-untyped-def]
    _init(self, config, offset, n_channels, n_targets, gated, hourly)
    self._probe_pend = self.end  # sum of d, sum of d^2, count of the held channel's held events
    self.end += 3


def calibrate(self, aux, r, ok, count, bucket, is_open):  # type: ignore[no-untyped-def]
    h = self._hold
    if h < 0:
        return _calibrate(self, aux, r, ok, count, bucket, is_open)
    c = self.config
    p = aux[:, self._probe_pend : self._probe_pend + 3]  # [B, 3] view
    mean, var = aux[:, self._mean.start + h], aux[:, self._var.start + h]  # [B] views
    was_open = is_open > 0.0  # [B]
    ended = ~was_open & (p[:, 2] > 0.0)  # [B] the held alert resolved at the last event
    short = ended & (aux[:, Scorer.SINCE] < SPLIT * c.shift_short)  # [B] a spike's trace: fold it in after all
    a = (count + 1.0).reciprocal().clamp_min(1.0 / c.err_window)  # [B] the running estimate's rate now
    keep = (1.0 - a) ** p[:, 2]  # [B]
    var.copy_(torch.where(short, (var + a * p[:, 1]) * keep, var))
    mean.copy_(torch.where(short, mean + a * p[:, 0], mean))
    p.masked_fill_(ended.unsqueeze(1), 0.0)
    d = (r[:, h] - mean) * ok[:, h]  # [B] against the estimate before this event
    held = (was_open & ok[:, h]).to(d.dtype)  # [B]
    p[:, 0].add_(d * held)
    p[:, 1].add_(d * d * held)
    p[:, 2].add_(held)
    return _calibrate(self, aux, r, ok, count, bucket, is_open)


def main() -> None:
    global SPLIT
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", type=float, default=3.0)
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--synth", action="store_true")
    ap.add_argument("--shifts", action="store_true")
    ap.add_argument("--no-dev", action="store_true")
    args = ap.parse_args()
    SPLIT = args.split
    before_release()
    CalibratedChannels.__init__ = init  # type: ignore[method-assign]
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]
    import r_landscape
    from lifecycle_probe import dev_set
    from window_table import table

    if not args.no_dev:
        corpus, shipped, dev = dev_set()
        for rr in (25, 50, 100, 150, 175, 200, 225, 250, 300):
            cfg = r_landscape.with_r(shipped, rr)
            det = dev.detections(cfg)
            s = corpus.score(det, threshold=cfg.open_threshold)["standard"].normalized
            missed, fps = table(corpus, det, cfg.open_threshold)
            sd = fps.get("artificialWithAnomaly/art_increase_spike_density.csv", 0)
            w = 39 - len(missed)
            print(f"R {rr}: {s:.2f} ({w} windows, {sum(fps.values())} FP rows, spike_density {sd})", flush=True)
        if args.table:
            from models.protocol import FREE_PARAMETERS

            print(f"base {dev.score(shipped).normalized:.2f}")
            for fp in FREE_PARAMETERS:
                lo, hi = (dev.score(fp.set(shipped, fp.get(shipped) * f)).normalized for f in (0.75, 1.25))
                print(f"  {fp.name}: {lo:.2f} / {hi:.2f}", flush=True)
    if args.synth:
        import synthetic_nab

        synthetic_nab.run([0, 1, 2])
    if args.shifts:
        import shifts_windows

        shifts_windows._cal = CalibratedChannels.calibrate
        sys.argv = [sys.argv[0]]
        shifts_windows.main()


if __name__ == "__main__":
    main()
