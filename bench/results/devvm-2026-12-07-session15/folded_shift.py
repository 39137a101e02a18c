"""Experiment (issue 18): the shift channel (and optionally the profile channel) calibrated as a
folded normal, fitted by moments.

Both statistics are absolute values: ``|EMA_short - EMA_long| / sd`` and ``|x - profile mean| / sd``.
For white noise the difference inside is a Gaussian centred at 0, so the statistic is half-normal
and the shipped location-scale Gaussian puts its tail far too thin (`quiet_rate.txt`: 0.72 false
alerts per 10k events on white noise, all on the shift channel). For a series with a daily cycle the
short and long means differ most of the time, the statistic sits away from 0, and the Gaussian is
about right. The folded normal ``|N(m, s^2)|`` spans both: ``m / s = 0`` is the half-normal, a large
``m / s`` the Gaussian. Its two parameters follow from the channel's running mean ``mu`` and variance
``v`` (the same two numbers the shipped calibration keeps): ``m^2 + s^2 = v + mu^2``, and
``mu / sqrt(v + mu^2)`` is a known increasing function of ``m / s`` (from sqrt(2/pi) at 0 to 1),
inverted from a table. The tail is ``Q((r - m) / s) + Q((r + m) / s)``; the tail check compares the
stream's exceedances of ``mu + z0 sqrt(v)`` with that model's rate there instead of the Gaussian's.
Torch scorer; prints dev (standard, production threshold) and the synthetic families of the seeds.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session15/folded_shift.py [--channels 3] [--seeds 0 1 2]

Its output here was measured on the bundle of 42fce55 (before the profile channel's own null: ``profile_folded`` in
f573097, ``profile_halfnormal`` since).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session13"))

from halfnormal_shift import calibrate_with

from models.calibrated import CalibratedChannels

DATA = "../shared/data/nab-dev/data"
LABELS = "../shared/data/nab-dev/combined_windows.json"
CHANNELS: list[int] = [3]
_erfc = torch.special.erfc
_SQ2 = math.sqrt(2.0)

# g(delta) = E|N(delta, 1)| / sqrt(1 + delta^2), increasing from sqrt(2/pi) to 1
_D = torch.linspace(0.0, 12.0, 4801, dtype=torch.float64)
_G = (math.sqrt(2.0 / math.pi) * torch.exp(-0.5 * _D * _D) + _D * torch.special.erf(_D / _SQ2)) / torch.sqrt(
    1.0 + _D * _D
)
_D, _G = _D.float(), _G.float()


def _q(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * _erfc(x / _SQ2)


def folded(mu: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, s) of the folded normal with mean ``mu`` and variance ``v``."""
    mu = mu.clamp_min(0.0)
    m2 = v + mu * mu
    ratio = (mu / m2.sqrt()).clamp(float(_G[0]), float(_G[-1]))
    i = torch.searchsorted(_G, ratio.contiguous()).clamp(1, len(_G) - 1)
    g0, g1 = _G[i - 1], _G[i]
    d = _D[i - 1] + (ratio - g0) / (g1 - g0).clamp_min(1e-12) * (_D[i] - _D[i - 1])
    s = (m2 / (1.0 + d * d)).sqrt()
    return d * s, s


def tail(r: torch.Tensor, m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return _q((r - m) / s) + _q((r + m) / s)


def calibrate(self, aux, r, ok, count, bucket, is_open):  # type: ignore[no-untyped-def]
    n = self.n_channels
    cols = [c for c in CHANNELS if c < n]
    k = self._k(r.device)
    z0 = self.config.tail_z
    if "inv_q0_scalar" not in k:
        k["inv_q0_scalar"] = k["inv_q0"]

    def erfc(a):  # type: ignore[no-untyped-def]
        out = _erfc(a)
        if a.dim() == 2 and a.shape[1] == n:
            out = out.clone()
            mu_all = aux[:, self._mean]
            inv = k["inv_q0_scalar"].expand(a.shape).clone()
            for c in cols:
                z = a[:, c] * _SQ2
                mu = mu_all[:, c]
                rr = r[:, c]
                sd = torch.where(z.abs() > 1e-6, (rr - mu) / z, aux[:, self._var.start + c].clamp_min(1e-4).sqrt())
                sd = sd.abs().clamp_min(1e-2)
                m, s = folded(mu, sd * sd)
                out[:, c] = 2.0 * tail(rr, m, s)  # the caller halves it
                if z0:
                    inv[:, c] = 1.0 / tail(mu + z0 * sd, m, s).clamp_min(1e-12)
            k["inv_q0"] = inv
        return out

    def restore() -> None:
        k["inv_q0"] = k["inv_q0_scalar"]

    calibrate_with(erfc, self, aux, r, ok, count, bucket, is_open, after=restore)


def patch(channels: list[int]) -> None:
    CHANNELS[:] = channels
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]


def main() -> None:
    assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, nargs="+", default=[3])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    a = ap.parse_args()
    from window_table import dev_and_synthetic

    patch(a.channels)
    torch.set_num_threads(1)
    print(f"folded normal on channels {a.channels}", flush=True)
    dev_and_synthetic(DATA, LABELS, a.seeds, per_file=False)


if __name__ == "__main__":
    main()
