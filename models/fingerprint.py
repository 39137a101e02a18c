"""What produced a stream's state: a short digest of a model's weights and the configuration that shapes its state.

A runner's :attr:`~models.types.StreamRunner.fingerprint` is written into every state snapshot
(:mod:`stream.state.changelog`), so that a worker restoring a snapshot can tell whether the
hidden and scorer state in it were built by the model it runs now. Two runners have the same
fingerprint exactly when their weights (names, dtypes, shapes, values), architecture and
state-shaping configuration are equal; the device, the compute precision, the slab capacity and
the file name or ``model_id`` play no part (the same model on another device continues the same state).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["FINGERPRINT_HEX", "fingerprint"]

FINGERPRINT_HEX = 16  # hex digits kept (64 bits): a collision between two deployed models is not a concern


def fingerprint(model: torch.nn.Module, config: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over ``model``'s state dict and ``config`` (JSON with sorted keys).

    Example:
        >>> m = torch.nn.Linear(2, 1)
        >>> a = fingerprint(m, {"threshold": 0.5})
        >>> len(a), a == fingerprint(m, {"threshold": 0.5}), a == fingerprint(m, {"threshold": 0.6})
        (16, True, False)
    """
    h = hashlib.sha256(json.dumps(dict(config), sort_keys=True, default=str).encode())
    state = model.state_dict()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:FINGERPRINT_HEX]
