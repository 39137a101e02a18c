"""Experiment (issue 18, seventeenth session): ``rearm`` (``rearm.py``) where a channel must stay calm for
as long as it was disturbed: a channel whose score reached ``open_threshold`` is disarmed; from then on
it counts its events at or above LOW (its excursion, ``exc``) and its consecutive events below LOW
(``calm``), and it re-arms once calm >= max(QUIET, exc). A spike's channel re-arms after QUIET calm
events; one that hovered near the threshold for hours must be calm for as long. LOW and QUIET are the
lifecycle's own ``close_threshold`` and ``close_after`` unless ``REARM_LOW`` / ``REARM_QUIET`` set them.
The blocks' column (``_csince``) holds the armed flag (> 0: armed; R at the start); two columns per
channel are added after the calibrated layout. Torch scorer only (``SEQSTREAM_SCORER_KERNEL=0``).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from models.calibrated import CalibratedChannels

_init0 = CalibratedChannels.__init__
_row0 = CalibratedChannels.init_row
_CAP = 100000.0  # counts stay exact in float32


def _init(self: CalibratedChannels, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    _init0(self, *args, **kwargs)
    n = self.n_channels
    self._calm = slice(self.end, self.end + n)  # [C] consecutive events below LOW
    self._exc_len = slice(self.end + n, self.end + 2 * n)  # [C] events at or above LOW since disarmed
    self.end += 2 * n


def _init_row(self: CalibratedChannels, row: Tensor) -> None:
    _row0(self, row)
    row[self._calm] = 0.0
    row[self._exc_len] = 0.0


def policy(
    self: CalibratedChannels, aux: Tensor, steps: Tensor, is_open: Tensor, below: Tensor, since: Tensor
) -> tuple[Tensor, ...]:
    """``CalibratedChannels.policy`` with re-arming after a calm as long as the excursion."""
    k, c = self._k(aux.device), self.config
    low = float(os.environ.get("REARM_LOW", c.close_threshold))
    quiet = float(os.environ.get("REARM_QUIET", c.close_after))
    sc = aux[:, self._score].masked_fill((steps < 2.0).unsqueeze(1), 0.0)  # [B, C]
    score = sc.amax(1)  # [B]
    arm, calm, exc = aux[:, self._csince], aux[:, self._calm], aux[:, self._exc_len]  # [B, C] views
    armed = arm > 0.0  # [B, C]
    best = sc.masked_fill(~armed, 0.0).amax(1)  # [B]
    was_open = is_open > 0.0  # [B]
    fire = (best >= k["open"]) & ~was_open  # [B]
    below_new = (below + 1.0).masked_fill_(score >= k["close"], 0.0)  # [B]
    resolves = was_open & (below_new >= k["close_after"])  # [B]
    opens = fire & (steps >= k["warmup"])  # [B]
    now_open = (was_open | opens) & ~resolves  # [B]
    above = sc >= k["open"]  # [B, C]
    low_now = sc < low  # [B, C]
    exc.copy_(torch.where(above & armed, torch.ones_like(exc), exc + (~armed & ~low_now).float()).clamp_max(_CAP))
    calm.copy_(torch.where(low_now, (calm + 1.0).clamp_max(_CAP), torch.zeros_like(calm)))  # [B, C]
    still = armed & ~above  # [B, C]
    rearmed = ~armed & (calm >= torch.maximum(exc, torch.full_like(exc, quiet)))  # [B, C]
    arm.copy_((still | rearmed).float())  # [B, C]
    exc.masked_fill_(rearmed, 0.0)
    since.add_(1.0).masked_fill_(fire, 0.0).clamp_max_(self._since_cap)  # [B]
    return score, now_open, below_new.masked_fill_(~now_open, 0.0)


def install() -> None:
    """Patch the layout and the policy in (torch scorer only)."""
    assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "set SEQSTREAM_SCORER_KERNEL=0"
    CalibratedChannels.__init__ = _init  # type: ignore[method-assign]
    CalibratedChannels.init_row = _init_row  # type: ignore[method-assign]
    CalibratedChannels.policy = policy  # type: ignore[method-assign]
