"""Experiment (issue 18): a fourth channel for drops of a non-negative series, in log units.

`counts_misses.py` shows every injected outage of the `counts` family missed (0 of 16 on seeds 0-2;
the level falls to 4-20 % of itself for 2-6 h): in linear units a fall to zero is bounded by the level,
while the same series' upward noise (bursts, the multiplicative "buzz") is not, so a linear channel
calibrated on |deviation| never sees it. A drop of a non-negative series is a ratio. The channel:

    r_drop = log((long mean + c) / (short mean + c))     (the shift channel's own running means)

with c the stream's typical step (running mean of |x_t - x_(t-1)|, the step scale's; floored as
there), calibrated like every other channel (one-sided: only a fall below the long mean is
evidence), defined only while every value so far was >= 0. It goes before the shift channel, so the
hold still applies to the shift channel; Bonferroni over four channels. Torch scorer only.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session14/drop_channel.py [C_FACTOR [REF]]

`drop_channel_more.py` runs the synthetic corpus as NAB and the outage table with it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session13"))

from window_table import dev_and_synthetic

from models.calibrated import CalibratedChannels
from models.scoring import Scorer

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
DATA = "../shared/data/nab-dev/data"
LABELS = "../shared/data/nab-dev/combined_windows.json"
C_FACTOR = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
# "long": the long running mean; "profile": the hour-of-week mean; "profile_ema": the hour-of-week means'
# running mean at the short mean's rate (both lag alike: a rising edge of the profile is no drop)
REF = sys.argv[2] if len(sys.argv) > 2 else "long"
_init, _init_row, _context = Scorer.__init__, Scorer.init_row, Scorer._context


def init(self, config, n_targets=1, *a, **kw):  # type: ignore[no-untyped-def]
    # pinned to the detector it was written against: the bundle before the product's own drop channel
    config = dataclasses.replace(config, drop_step=0.0) if config.drop_step else config
    _init(self, config, n_targets, *a, **kw)
    old = self.calibrated
    if old is None or not config.shift_short:
        return
    t = self.n_targets
    start = old._gate.start  # the calibrated block's offset (gated: the gate comes first)
    cal = CalibratedChannels(config, start, old.n_channels + 1, t, old.gated, old.n_hourly)
    self.calibrated, self.n_channels = cal, cal.n_channels
    self._xmin = slice(cal.end, cal.end + t)  # [T] smallest value so far
    self._pema = slice(cal.end + t, cal.end + 2 * t)  # [T] the profile means' short running mean
    self.size = cal.end + 2 * t
    orig = cal.calibrate

    def calibrate(aux, r, ok, count, bucket, is_open):  # type: ignore[no-untyped-def]
        x = self._x_now  # [B, T] this event's values
        xmin = aux[:, self._xmin]  # [B, T] view
        torch.minimum(xmin, x, out=xmin)
        sh = aux[:, self._shift]  # [B, 2T]
        ms, ml = sh[:, :t], sh[:, t:]  # [B, T]
        st = aux[:, cal._step][:, t:]  # [B, T] mean |step|
        c = torch.maximum(st, self._sd_now * 1e-3).clamp_min(config.min_std) * C_FACTOR  # [B, T]
        ok_drop = ok[:, -1] & (xmin >= 0.0).all(1)  # [B]
        if REF == "profile":
            col = self._phase_now[:, 1].long()  # [B] hour-of-week bucket
            n = config.profile_buckets
            i_m = self._profile + col.unsqueeze(1) * t + torch.arange(t).unsqueeze(0)  # [B, T]
            i_c = (self._profile + n * t + col).unsqueeze(1)  # [B, 1]
            ml = aux.gather(1, i_m)  # [B, T] (already updated with this event at the profile's rate)
            seen = aux.gather(1, i_c)[:, 0] > 1.0  # [B]
            ok_drop = ok_drop & seen
        elif REF == "profile_ema":
            col = self._phase_now[:, 1].long()  # [B] hour-of-week bucket
            n = config.profile_buckets
            i_m = self._profile + col.unsqueeze(1) * t + torch.arange(t).unsqueeze(0)  # [B, T]
            i_c = (self._profile + n * t + col).unsqueeze(1)  # [B, 1]
            m_now = aux.gather(1, i_m)  # [B, T]
            seen = aux.gather(1, i_c)[:, 0] > 1.0  # [B]
            pe = aux[:, self._pema]  # [B, T] view
            # the expected values' short mean, at the short mean's rate; where the bucket is new, the value
            target = torch.where(seen.unsqueeze(1), m_now, x)  # [B, T]
            first = (count + 1.0).reciprocal().clamp_min(1.0 / config.shift_short).unsqueeze(1)  # [B, 1]
            pe.lerp_(target, first)
            ml = pe
            ok_drop = ok_drop & seen
        r_drop = torch.log((ml + c).clamp_min(1e-12) / (ms + c).clamp_min(1e-12)).mean(1)  # [B]
        r4 = torch.cat((r[:, :-1], r_drop.unsqueeze(1), r[:, -1:]), 1)  # [B, 4]
        ok4 = torch.cat((ok[:, :-1], ok_drop.unsqueeze(1), ok[:, -1:]), 1)  # [B, 4]
        orig(aux, r4, ok4, count, bucket, is_open)

    cal.calibrate = calibrate  # type: ignore[method-assign]


def init_row(self):  # type: ignore[no-untyped-def]
    row = _init_row(self)
    if hasattr(self, "_xmin"):
        row[self._xmin] = 1e30
    return row


def context(self, aux, x, std, count, err, phase, step=None):  # type: ignore[no-untyped-def]
    self._x_now, self._sd_now, self._phase_now = x[:, : self.n_targets], std[:, : self.n_targets], phase
    return _context(self, aux, x, std, count, err, phase, step)


def patch() -> None:
    """Give every calibrated Scorer built from now on the drop channel."""
    Scorer.__init__ = init  # type: ignore[method-assign]
    Scorer.init_row = init_row  # type: ignore[method-assign]
    Scorer._context = context  # type: ignore[method-assign]


def main() -> None:
    patch()
    torch.set_num_threads(1)
    print(f"c factor {C_FACTOR}, reference {REF}", flush=True)
    dev_and_synthetic(DATA, LABELS)


if __name__ == "__main__":
    main()
