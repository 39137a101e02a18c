"""Experiment (issue 18): where a folded normal fitted by moments would sit, for the profile channel.

The first form of ``profile_halfnormal`` fitted a folded normal ``|N(m, s^2)|`` to the channel's running
mean ``mu`` and variance ``v`` (``folded_shift.py``): ``mu / sqrt(v + mu^2)`` is ``g(m / s)``, from
sqrt(2/pi) = 0.7979 at m = 0 (the half-normal) to 1 (the Gaussian); below 0.7979 the fit is the
half-normal with scale ``sqrt(v + mu^2)``. This counts, over every scored profile-channel event of NAB
dev and of the synthetic families (seed 0), how often the ratio is below 0.7979, i.e. how often the fit
is just that half-normal (``v`` as the calibration uses it: the larger of the overall and the
time-of-day variance). Torch scorer, the bundled detector.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session15/profile_moment_ratio.py
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from lifecycle_probe import dev_set

import models.synthetic as syn
from models.calibrated import CalibratedChannels

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
G0 = math.sqrt(2.0 / math.pi)
RATIOS: list[np.ndarray] = []
_calibrate, _erfc = CalibratedChannels.calibrate, torch.special.erfc


def calibrate(self, aux, r, ok, count, bucket, is_open):  # type: ignore[no-untyped-def]
    n = self.n_channels

    def erfc(a):  # type: ignore[no-untyped-def]
        if a.dim() == 2 and a.shape[1] == n and n >= 2:
            z = a[:, 1] * math.sqrt(2.0)  # the profile channel's z = (r - mu) / sqrt(v)
            mu = aux[:, self._mean.start + 1]
            sd = ((r[:, 1] - mu) / z).abs()
            m = ok[:, 1] & (z.abs() > 1e-6)
            RATIOS.append((mu / (sd * sd + mu * mu).sqrt())[m].numpy())
        return _erfc(a)

    torch.special.erfc = erfc
    try:
        _calibrate(self, aux, r, ok, count, bucket, is_open)
    finally:
        torch.special.erfc = _erfc


def report(label: str) -> None:
    x = np.concatenate(RATIOS) if RATIOS else np.zeros(0)
    below = int((x < G0).sum())
    q = np.percentile(x, [10, 50, 90]).round(3) if len(x) else []
    print(f"{label}: {len(x)} scored events, {below} with mu / sqrt(v + mu^2) < 0.7979 (percentiles 10/50/90: {q})")
    RATIOS.clear()


def main() -> None:
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]
    torch.set_num_threads(1)
    _, shipped, dev = dev_set()
    dev.detections(shipped)
    report("NAB dev")
    syn.evaluate_synthetic(seed=0)
    report("synthetic families, seed 0")


if __name__ == "__main__":
    main()
