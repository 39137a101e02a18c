"""The ``machines`` source: multivariate machine telemetry, :data:`MACHINE_CHANNELS` per reading.

Wire format: the ``sensors`` one (topic ``machine-readings``): ``{"stream": "machine-0003",
"ts": ..., "values": [temperature, vibration, pressure, current]}`` with ``null`` for a missing
value (the masked model, :mod:`models.features`, takes them).

Simulated: all channels driven by one latent load (daily-like cycle + AR(1)) so they are
correlated; slow temperature drift; missing values (``null``: 2 % at random, and sensor dropouts of
5-30 readings on one channel); anomaly (``channel_fault``, labelled with its channel) = one channel
goes erratic (jumps of 3-6 amplitudes of random sign) while the others stay normal.
"""

from __future__ import annotations

import math

import numpy as np

from .base import Event, Round, Simulation, Source
from .sensors import WIRE

__all__ = ["MACHINE_CHANNELS", "SOURCE"]

MACHINE_CHANNELS = ("temperature", "vibration", "pressure", "current")


class MachineSim(Simulation):
    """Multivariate machines; see the module docstring (``machines``)."""

    prefix = "machine"
    anomaly = "channel_fault"

    def __init__(self, n: int, rng: np.random.Generator, seed: int) -> None:
        f = len(MACHINE_CHANNELS)
        self.n = n
        self.period = rng.integers(100, 400, n).astype(np.float64)  # [n] rounds per load cycle
        self.phase = rng.uniform(0, 2 * math.pi, n)  # [n]
        self.ar = np.zeros(n)  # [n] load AR(1) part
        # channel = offset + gain * load + noise; temperature also drifts slowly
        self.offset = np.array([40.0, 2.0, 5.0, 10.0]) * rng.uniform(0.8, 1.2, (n, f))  # [n, F]
        self.gain = np.array([30.0, 3.0, 2.0, 20.0]) * rng.uniform(0.7, 1.3, (n, f))  # [n, F]
        self.noise = np.array([0.3, 0.15, 0.05, 0.4]) * rng.uniform(0.7, 1.5, (n, f))  # [n, F]
        self.drift = rng.normal(0.0, 2e-3, n)  # [n] temperature units per round
        self.dropout = np.zeros((n, f), np.int64)  # [n, F] rounds left of a sensor dropout

    def plan(
        self, stream: int, kind: str, start_round: int, length: int, rng: np.random.Generator
    ) -> tuple[int, str | None]:
        return length, MACHINE_CHANNELS[int(rng.integers(0, len(MACHINE_CHANNELS)))]

    def round(self, r: Round) -> list[Event]:
        streams, t, k, rng, _active, anomalies = r
        index = {s: i for i, s in enumerate(streams)}
        faults = {index[a.stream]: a.channel for a in anomalies if a.start_round <= k < a.start_round + a.length}
        n, f = self.n, len(MACHINE_CHANNELS)
        self.ar = 0.95 * self.ar + 0.03 * rng.standard_normal(n)  # [n]
        load = 0.6 + 0.25 * np.sin(2 * math.pi * k / self.period + self.phase) + self.ar  # [n]
        v = self.offset + self.gain * load[:, None] + self.noise * rng.standard_normal((n, f))  # [n, F]
        v[:, 0] += self.drift * k
        amp = 0.25 * self.gain  # [n, F] the load cycle's amplitude per channel
        erratic = rng.choice([-1.0, 1.0], (n, f)) * rng.uniform(3.0, 6.0, (n, f)) * amp  # [n, F]
        start = (rng.random((n, f)) < 0.002) & (self.dropout == 0)  # [n, F]
        self.dropout = np.where(start, rng.integers(5, 31, (n, f)), np.maximum(self.dropout - 1, 0))  # [n, F]
        missing = (rng.random((n, f)) < 0.02) | (self.dropout > 0)  # [n, F]
        events = []
        for i, s in enumerate(streams):
            row = v[i]
            chan = faults.get(i)
            if chan is not None:
                c = MACHINE_CHANNELS.index(chan)
                row = row.copy()
                row[c] += erratic[i, c]
            vals: list[float | None] = [None if missing[i, c] else round(float(row[c]), 5) for c in range(f)]
            if chan is not None:
                vals[MACHINE_CHANNELS.index(chan)] = round(float(row[MACHINE_CHANNELS.index(chan)]), 5)
            if all(x is None for x in vals):
                vals[0] = round(float(row[0]), 5)
            fault = chan is not None
            events.append(
                Event(s, t, {"stream": s, "ts": t, "values": vals}, fault, "channel_fault" if fault else None)
            )
        return events


# the masked model sees each value and whether it is there (models/features.py)
_F = len(MACHINE_CHANNELS)
_NET = {"input_size": 2 * _F, "output_size": _F, "inputs": "masked", "channels": MACHINE_CHANNELS}
SOURCE = Source("machine-readings", WIRE, MachineSim, _F, "machine_gru.pt", _NET)  # the sensors' wire
