"""Experiment (issue 18): the channels measured in a scale that a level shift does not inflate.

Today every channel is in units of the normaliser's running sd of the value (``norm_window``
1000): after a level shift that sd contains the shift for ~1000 events, every channel shrinks by
that factor and the shift's return is missed (``shifts_windows.txt``: 0 of 29 returns; in the
value's own units, ``raw_units.py``, the synthetic shifts score 76 instead of 46 but NAB dev drops
to 64: dev's streams need a scale that follows them). Here the scale is the stream's running mean
absolute first difference ``|x_t - x_(t-1)|`` (an EMA at the normaliser's rate, 1/n from the start):
the noise's scale, which a shift moves by one difference only. The residual is rescaled from the
normaliser's units to it; the profile and shift distances are divided by it.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/noise_scale.py [--no-table]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from models.calibrated import CalibratedChannels
from models.scoring import Scorer

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
_ctx, _init = Scorer._context, CalibratedChannels.__init__
MIX = 1.0  # 1: the difference scale only; 0: the normaliser's sd (shipped)
CHANNELS: tuple[int, ...] = (0, 1, 2)  # which channels (residual, profile, shift) take the noise scale
_FACT: dict[str, torch.Tensor] = {}
_cal = CalibratedChannels.calibrate


def calibrate(self, aux, r, ok, count, bucket, *rest):  # type: ignore[no-untyped-def]
    f = _FACT["f"]  # [B] normaliser sd / noise scale
    cols = torch.tensor([c in CHANNELS for c in range(r.shape[1])])  # [C]
    r = torch.where(cols, r * f.unsqueeze(1), r)  # [B, C]
    _cal(self, aux, r, ok, count, bucket, *rest)


def init(self: CalibratedChannels, *a: Any, **kw: Any) -> None:
    _init(self, *a, **kw)
    self._nx, self._ns = self.end, self.end + 1  # previous value, running mean |first difference|
    self.end += 2


def _context(self, aux, x, std, count, err, phase, *rest):  # type: ignore[no-untyped-def]
    cal = self.calibrated
    t = self.n_targets
    s = std[:, :t].mean(1)  # [B] the normaliser's running sd
    x1 = x[:, 0]  # [B]
    prev, ns = aux[:, cal._nx], aux[:, cal._ns]  # [B] views
    n_d = count - 1.0  # [B] differences seen before this event
    ok = n_d >= 1.0  # [B]
    sig = torch.where(ok, torch.maximum(ns, s * 1e-3), s)  # [B] the scale before this event
    if MIX != 1.0:
        sig = torch.where(ok, sig**MIX * s ** (1.0 - MIX), s)
    _FACT["f"] = s / sig
    out = _ctx(self, aux, x, std, count, err, phase, *rest)
    has_prev = count >= 1.0
    dx = (x1 - prev).abs()  # [B]
    rate = (n_d + 1.0).clamp_min(1.0).reciprocal().clamp_min(1.0 / self.config.norm_window) * has_prev
    ns.lerp_(dx, rate)
    prev.copy_(x1)
    return out


def patch(mix: float = 1.0, channels: tuple[int, ...] = (0, 1, 2)) -> None:
    global MIX, CHANNELS
    MIX, CHANNELS = mix, channels
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]
    CalibratedChannels.__init__ = init  # type: ignore[method-assign]
    Scorer._context = _context  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mix", type=float, default=1.0)
    ap.add_argument("--channels", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--no-table", action="store_true")
    ap.add_argument("--no-dev", action="store_true")
    args = ap.parse_args()
    from report import before_step_scale

    before_step_scale()  # the configuration of the runs recorded here
    patch(args.mix, tuple(args.channels))
    print("noise scale: mean |first difference|, mix", args.mix, "channels", args.channels, flush=True)
    from report import report

    report(dev=not args.no_dev, table=not args.no_table)


if __name__ == "__main__":
    main()
