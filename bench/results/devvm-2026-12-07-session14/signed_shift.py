"""Experiment (issue 18): the shift channel calibrated as a signed statistic, two-sided.

`noisy_probe.py`: white noise opens alerts on the shift channel because its statistic,
``|EMA_short - EMA_long| / sd``, is for white noise the absolute value of a Gaussian, and the
calibration (a running mean and variance, a Gaussian tail) puts a half-normal's tail far too thin.
Here the channel's statistic is the signed mean difference ``(EMA_short - EMA_long) / sd`` (a
Gaussian for white noise, whose location-scale calibration is exact) and its tail probability is
two-sided, ``erfc(|z| / sqrt 2)``; the tail check counts ``|z| > z0`` against the two-sided rate.
Torch scorer; prints dev (standard, the production threshold) and the synthetic families, seeds 0-4.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session14/signed_shift.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session13"))

from window_table import dev_and_synthetic

import models.scoring as ms
from models.calibrated import CalibratedChannels

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
DATA = "../shared/data/nab-dev/data"
LABELS = "../shared/data/nab-dev/combined_windows.json"
_calibrate = CalibratedChannels.calibrate
_erfc = torch.special.erfc


def calibrate(self, aux, r, ok, count, bucket, is_open):  # type: ignore[no-untyped-def]
    """The shift channel (the last) gets a signed statistic: recompute it from the running means, then
    run the calibration with a two-sided tail for that channel only."""
    sc = self._scorer
    t = sc.n_targets
    sh = aux[:, sc._shift]  # [B, 2T]
    sd = self._sd_now  # [B, T]
    signed = ((sh[:, :t] - sh[:, t:]) / sd).mean(1) * (r[:, -1] != 0)  # [B] (0 where undefined)
    r = torch.cat((r[:, :-1], signed.unsqueeze(1)), 1)
    h = self.n_channels - 1
    mean = aux[:, self._mean.start + h].clone()

    def erfc(z):  # type: ignore[no-untyped-def]
        if z.dim() == 2 and z.shape[1] == self.n_channels:
            z = z.clone()
            z[:, h] = z[:, h].abs()
            out = _erfc(z)
            out[:, h] = out[:, h] * 2.0
            return out
        return _erfc(z)

    torch.special.erfc = erfc
    try:
        # the tail check compares z with z0: two-sided, |z| > z0 at twice the one-sided rate
        exc = aux[:, self._exc.start + h].clone() if self.config.tail_z else None
        _calibrate(self, aux, r, ok, count, bucket, is_open)
        if exc is not None:
            v = aux[:, self._var.start + h]  # after the fold: close enough for the rate, recomputed below
            z = (r[:, h] - mean) / v.clamp_min(1e-4).sqrt()
            re = (count + 1.0 / self._q0).reciprocal().clamp_min(1.0 / self.config.err_window) * ok[:, h]
            hit = (z.abs() > self.config.tail_z).float() * 0.5  # counted at half weight: two tails
            aux[:, self._exc.start + h] = exc + re * (hit - exc)
    finally:
        torch.special.erfc = _erfc


_context = ms.Scorer._context


def context(self, aux, x, std, count, err, phase, step=None):  # type: ignore[no-untyped-def]
    if self.calibrated is not None:
        self.calibrated._scorer = self
        self.calibrated._sd_now = std[:, : self.n_targets]
    return _context(self, aux, x, std, count, err, phase, step)


def main() -> None:
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]
    ms.Scorer._context = context  # type: ignore[method-assign]
    torch.set_num_threads(1)
    dev_and_synthetic(DATA, LABELS, range(5), per_file=False)


if __name__ == "__main__":
    main()
