"""Experiment (issue 18): two bounds on the shift channel's held calibration (``hold_shift``), patched
into the twelfth session's detector (``hold_release`` 0).

* ``bound`` (default): held during an open alert only for the first ``shift_long`` events after the
  alert opened (its statistic's own memory), not for as long as any channel keeps the alert open;
* ``--late``: held only once the alert has lasted ``shift_short`` events (a spike's trace on the
  short mean is over by then).

Patches the torch scorer (``calibrate`` reads the row's ``since``; ``policy`` clamps ``since`` at
max(R, shift_long) instead of R), then prints the dev R landscape with windows and FP rows, the
sensitivity table and the synthetic corpus as NAB. Outputs: ``bounded_hold_bound.txt`` (``--no-table
--no-synth``), ``bounded_hold_late.txt`` (``--late --no-synth``; its table sets shift_short to int(18.75) = 18 at
+25 %, the protocol to 19),
``bounded_hold_late_synthetic.txt`` (``--late --no-dev``), ``bounded_hold_late_shifts_windows.txt``
(``--late --no-dev --no-synth --shifts``).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session13/bounded_hold.py [--off] [--late] [--no-table] [--no-synth] \
        [--no-dev] [--shifts]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))
sys.path.insert(0, str(Path(__file__).parent))

from models.calibrated import CalibratedChannels
from models.scoring import Scorer

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"

_calibrate = CalibratedChannels.calibrate
_policy = CalibratedChannels.policy


RULE = "late" if "--late" in sys.argv else "bound"


def calibrate(self, aux, r, ok, count, bucket, is_open):  # type: ignore[no-untyped-def]
    since = aux[:, Scorer.SINCE]  # [B] events since the alert opened (clamped at max(R, shift_long))
    if RULE == "late":  # held only once the alert has outlasted the short mean's memory
        held = (is_open > 0.0) & (since >= float(self.config.shift_short))
    else:  # held only for the first shift_long events of the alert
        held = (is_open > 0.0) & (since < float(self.config.shift_long))
    return _calibrate(self, aux, r, ok, count, bucket, held.to(is_open.dtype))


def policy(self, aux, steps, is_open, below, since):  # type: ignore[no-untyped-def]
    c = self.config
    cap = float(max(c.suppress, c.shift_long))
    # the shipped policy clamps since at R; run it on a copy and redo the clamp at the larger cap
    before = since.clone()
    out = _policy(self, aux, steps, is_open, below, since)
    fired_reset = since == 0.0
    since.copy_(torch.where(fired_reset, since, (before + 1.0).clamp_max(cap)))
    return out


def main() -> None:
    off = "--off" in sys.argv
    from pending_hold import before_release

    before_release()
    if not off:
        assert RULE == "bound" or "--late" in sys.argv
        CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]
        CalibratedChannels.policy = policy  # type: ignore[method-assign]
    import r_landscape
    from lifecycle_probe import dev_set

    sys.path.insert(0, str(Path(__file__).parent))
    from window_table import table

    corpus, shipped, dev = dev_set()
    for rr in () if "--no-dev" in sys.argv else (25, 50, 100, 150, 175, 200, 225, 250, 300):
        c = r_landscape.with_r(shipped, rr)
        det = dev.detections(c)
        s = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
        missed, fps = table(corpus, det, c.open_threshold)
        print(f"R {rr}: {s:.2f} ({39 - len(missed)} windows, {sum(fps.values())} FP rows)", flush=True)
    if "--no-table" not in sys.argv and "--no-dev" not in sys.argv:
        from models.protocol import FREE_PARAMETERS

        base = dev.score(shipped).normalized
        print(f"base {base:.2f}")
        for p in FREE_PARAMETERS:
            lo, hi = (dev.score(p.set(shipped, p.get(shipped) * f)).normalized for f in (0.75, 1.25))
            print(f"  {p.name}: {lo:.2f} / {hi:.2f}", flush=True)
    if "--no-synth" not in sys.argv:
        import synthetic_nab

        synthetic_nab.run([0, 1, 2])
    if "--shifts" in sys.argv:  # the level-shift windows of seeds 0-2 (session 11's shifts_windows.py)
        import shifts_windows

        shifts_windows._cal = CalibratedChannels.calibrate
        sys.argv = [sys.argv[0]]
        shifts_windows.main()


if __name__ == "__main__":
    main()
