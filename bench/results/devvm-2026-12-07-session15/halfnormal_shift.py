"""Experiment (issue 18): the shift channel alone scored with a half-normal null.

`noisy_probe.py` (fourteenth session): white noise opens alerts on the shift channel because its
statistic ``|EMA_short - EMA_long| / sd`` is, for white noise, the absolute value of a Gaussian, and
the Gaussian tail of its location-scale ``z`` is far too thin for that. The twelfth session put a
half-normal null on every channel (or on the profile and shift channels) and lost most of NAB dev;
the shift channel alone was never tried. Here only the last channel (the shift channel) gets
``P(z > t) = erfc((sqrt(2/pi) + sqrt(1 - 2/pi) t) / sqrt(2))``, and its tail check compares its
exceedances of z0 with that rate. Torch scorer; prints dev (standard, the production threshold) and
the synthetic families of the seeds given (default 0-5).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session15/halfnormal_shift.py [seed ...]

Its output here was measured on the bundle of 42fce55 (before the profile channel's own null: ``profile_folded`` in
f573097, ``profile_halfnormal`` since).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session13"))

from window_table import dev_and_synthetic

from models.calibrated import CalibratedChannels

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
DATA = "../shared/data/nab-dev/data"
LABELS = "../shared/data/nab-dev/combined_windows.json"
C1, C2 = math.sqrt(2.0 / math.pi), math.sqrt(1.0 - 2.0 / math.pi)
_calibrate, _init_row, _k = CalibratedChannels.calibrate, CalibratedChannels.init_row, CalibratedChannels._k
_erfc = torch.special.erfc


def _hn_tail(z: float) -> float:
    return math.erfc((C1 + C2 * z) / math.sqrt(2.0))


def k(self, dev):  # type: ignore[no-untyped-def]
    got = _k(self, dev)
    if got["inv_q0"].dim() == 0 and self.config.tail_z:
        inv = torch.full((self.n_channels,), float(got["inv_q0"]), device=dev)
        inv[-1] = 1.0 / _hn_tail(self.config.tail_z)  # [C] the shift channel's expected rate
        got["inv_q0"] = inv
    return got


def init_row(self, row):  # type: ignore[no-untyped-def]
    _init_row(self, row)
    if self.config.tail_z:
        row[self._exc.stop - 1] = _hn_tail(self.config.tail_z)


def calibrate(self, aux, r, ok, count, bucket, is_open):  # type: ignore[no-untyped-def]
    n = self.n_channels

    def erfc(a):  # type: ignore[no-untyped-def]
        out = _erfc(a)
        if a.dim() == 2 and a.shape[1] == n:
            z = a[:, -1] * math.sqrt(2.0)
            out = out.clone()
            out[:, -1] = 2.0 * _erfc((C1 + C2 * z) / math.sqrt(2.0))  # the caller halves it
        return out

    calibrate_with(erfc, self, aux, r, ok, count, bucket, is_open)


def calibrate_with(erfc, self, *args, after=None):  # type: ignore[no-untyped-def]
    """The shipped calibration with ``torch.special.erfc`` replaced by ``erfc`` (then ``after()``)."""
    torch.special.erfc = erfc
    try:
        _calibrate(self, *args)
    finally:
        torch.special.erfc = _erfc
        if after is not None:
            after()


def main() -> None:
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]
    CalibratedChannels.init_row = init_row  # type: ignore[method-assign]
    CalibratedChannels._k = k  # type: ignore[method-assign]
    torch.set_num_threads(1)
    seeds = [int(a) for a in sys.argv[1:]] or list(range(6))
    dev_and_synthetic(DATA, LABELS, seeds, per_file=False)


if __name__ == "__main__":
    main()
