"""Experiment (issue 18, seventeenth session): the alert lifecycle without blocks ("rearm"), as a torch
policy patched into the scorer (``CalibratedChannels.policy``; the compiled loops keep the shipped one,
so set ``SEQSTREAM_SCORER_KERNEL=0``).

A channel whose score reached ``open_threshold`` is disarmed, whether or not it opened the alert; it
re-arms once its score stayed below ``LOW`` for ``QUIET`` events (env ``REARM_LOW``, ``REARM_QUIET``;
0.1 and 10 as the tenth session's ``lifecycle_probe.rule_rearm``). An alert opens on the strongest
armed channel at or above the threshold while none is open; the open/resolve lifecycle, the warm-up and
the hold release's count of events since an alert opened are as shipped. No R, no R_other. The
per-channel column of the blocks (``_csince``, initialised to R >= QUIET: armed) holds the calm count,
capped at QUIET.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from models.calibrated import CalibratedChannels

LOW = float(os.environ.get("REARM_LOW", "0.1"))
QUIET = float(os.environ.get("REARM_QUIET", "10"))


def policy(
    self: CalibratedChannels, aux: Tensor, steps: Tensor, is_open: Tensor, below: Tensor, since: Tensor
) -> tuple[Tensor, ...]:
    """``CalibratedChannels.policy`` with re-arming instead of blocks."""
    k = self._k(aux.device)
    sc = aux[:, self._score].masked_fill((steps < 2.0).unsqueeze(1), 0.0)  # [B, C]
    score = sc.amax(1)  # [B]
    calm = aux[:, self._csince]  # [B, C] view
    armed = calm >= QUIET  # [B, C]
    best = sc.masked_fill(~armed, 0.0).amax(1)  # [B]
    was_open = is_open > 0.0  # [B]
    fire = (best >= k["open"]) & ~was_open  # [B]
    below_new = (below + 1.0).masked_fill_(score >= k["close"], 0.0)  # [B]
    resolves = was_open & (below_new >= k["close_after"])  # [B]
    opens = fire & (steps >= k["warmup"])  # [B]
    now_open = (was_open | opens) & ~resolves  # [B]
    above = sc >= k["open"]  # [B, C]
    grown = torch.where(sc < LOW, (calm + 1.0).clamp_max(QUIET), torch.zeros_like(calm))  # [B, C]
    calm.copy_(torch.where(above, torch.zeros_like(calm), torch.where(armed, calm, grown)))  # [B, C]
    since.add_(1.0).masked_fill_(fire, 0.0).clamp_max_(self._since_cap)  # [B]
    return score, now_open, below_new.masked_fill_(~now_open, 0.0)


def install() -> None:
    """Patch the policy in (torch scorer only)."""
    assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "set SEQSTREAM_SCORER_KERNEL=0"
    CalibratedChannels.policy = policy  # type: ignore[method-assign]
