"""The reorder buffer's held events (:class:`HeldEvent`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["HeldEvent"]


@dataclass(frozen=True, slots=True)
class HeldEvent:
    """An accepted input event waiting in the reorder buffer (quacks like a Kafka record for the encoders).

    Example:
        >>> e = HeldEvent("a", 5.0, "sensor-readings", 0, 17, 0, b"a", b"{}", np.zeros(1, np.float32))
        >>> (e.topic, e.partition, e.offset)
        ('sensor-readings', 0, 17)
    """

    stream: str
    ts: float
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    x: np.ndarray  # [F] float32 model input

    @property
    def order(self) -> tuple[float, int, int]:
        """Release order: event time, then input position (deterministic on replay)."""
        return (self.ts, self.partition, self.offset)
