"""The ``sensors`` source: readings of one or a few values per event (pumps, meters, CPU load).

Wire format (topic ``sensor-readings``; key = stream id):
``{"stream": "pump-7", "ts": 1718000000.5, "values": [float|null, ...]}``; ``null`` is a missing value
(NaN: a masked model handles it, another model rejects the row as ``non_finite``); all values
missing is ``all_missing``.

Simulated: per stream a daily-like seasonal wave + slow drift + noise; anomaly (``erratic``) = the
sensor goes erratic (jumps of 4-7 amplitudes of random sign) for a few dozen readings.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from .base import Event, Round, Simulation, Source, vector_wire

__all__ = ["SOURCE", "WIRE", "SensorMsg"]


class SensorMsg(msgspec.Struct, gc=False):
    stream: str
    ts: float | str
    values: list[float | None]


# readings: a list of numbers, null = missing
WIRE = vector_wire(SensorMsg, "values", missing=True)


class SensorSim(Simulation):
    """Seasonal sensors; see the module docstring."""

    prefix = "sensor"
    anomaly = "erratic"

    def __init__(self, n: int, rng: np.random.Generator, seed: int) -> None:
        self.n = n
        self.base = rng.uniform(10, 100, n)  # [n]
        self.amp = self.base * rng.uniform(0.05, 0.3, n)  # [n]
        self.period = rng.integers(50, 400, n).astype(np.float64)  # [n] rounds per cycle
        self.phase = rng.uniform(0, 2 * math.pi, n)  # [n]
        self.noise = self.amp * rng.uniform(0.02, 0.1, n)  # [n]
        self.drift = self.base * rng.normal(0, 1e-5, n)  # [n] per round

    def round(self, r: Round) -> list[Event]:
        streams, t, k, rng, active, _anomalies = r
        v = (
            self.base
            + self.amp * np.sin(2 * math.pi * k / self.period + self.phase)
            + self.drift * k
            + self.noise * rng.standard_normal(self.n)
        )  # [n]
        # anomaly: the sensor goes erratic (large jumps of random sign every reading)
        jump = rng.choice([-1.0, 1.0], self.n) * rng.uniform(4.0, 7.0, self.n) * self.amp  # [n]
        v = np.where(active, v + jump, v)  # [n]
        return [
            Event(s, t, {"stream": s, "ts": t, "values": [round(float(v[i]), 6)]}, bool(active[i]))
            for i, s in enumerate(streams)
        ]


SOURCE = Source("sensor-readings", WIRE, SensorSim, 1, "sensor_gru.pt")
