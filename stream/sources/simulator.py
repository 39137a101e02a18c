"""Simulated input streams of any source, round by round, with optional labelled anomalies.

What each source's streams look like is in its own file (``stream/sources/<name>.py``); this is
the driver they share. Everything is a function of ``seed``: the same arguments give the same events.

Example:
    >>> sim = Simulator("sensors", n_streams=3, seed=1)
    >>> events = sim.round(t=1_700_000_000.0)
    >>> [e.stream for e in events]
    ['sensor-0000', 'sensor-0001', 'sensor-0002']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.errors import ConfigError

from . import SOURCES
from .base import Anomaly, Event, Round, Simulation

__all__ = ["Simulator"]


@dataclass
class Simulator:
    """Round-based generator: each :meth:`round` advances every stream by one tick.

    ``anomalies`` lists injected anomalies (see :meth:`inject`); ``labels`` records each one with
    the event time at which it started; ``model`` is the source's own simulation (e.g. the ticks
    market, whose symbols' base rates a caller may read).
    """

    source: str
    n_streams: int
    seed: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)
    labels: list[Anomaly] = field(default_factory=list)
    rounds: int = 0
    prefix: str | None = None

    def __post_init__(self) -> None:
        src = SOURCES.get(self.source)
        if src is None:
            raise ConfigError(f"unknown source {self.source!r}; expected one of {sorted(SOURCES)}")
        if self.n_streams < 1:
            raise ConfigError("the simulator needs at least one stream")
        self.rng = np.random.default_rng(self.seed)
        self.streams = [f"{self.prefix or src.simulation.prefix}-{i:04d}" for i in range(self.n_streams)]
        self._index = {s: i for i, s in enumerate(self.streams)}
        self._default_kind = src.simulation.anomaly
        self._kinds = src.simulation.kinds
        self.model: Simulation = src.simulation(self.n_streams, self.rng, self.seed)

    def inject(
        self, n: int, first_round: int, last_round: int, length: int = 30, kind: str | None = None
    ) -> list[Anomaly]:
        """Plan ``n`` anomalies on distinct streams, starting between the given rounds.

        ``kind``: ticks take one of their event kinds (default: the kinds in turn) and size each
        event themselves (``length`` is ignored); machines pick a random faulty channel.
        """
        n = min(n, self.n_streams)
        rng = np.random.default_rng(self.seed + 7919 + len(self.anomalies))
        streams = rng.choice(self.n_streams, n, replace=False)
        starts = rng.integers(first_round, max(first_round + 1, last_round), n)
        planned = []
        for st, r in zip(streams.tolist(), starts.tolist()):
            k = kind or self._default_kind or self._kinds[len(self.anomalies) % len(self._kinds)]
            planned.append(self.plan(st, int(r), k, length, rng))
        return planned

    def plan(
        self, stream: int, start_round: int, kind: str, length: int = 30, rng: np.random.Generator | None = None
    ) -> Anomaly:
        """Plan one anomaly of ``kind`` on stream number ``stream`` from ``start_round``."""
        rng = rng or np.random.default_rng(self.seed + 104729 + len(self.anomalies))
        ln, chan = self.model.plan(stream, kind, start_round, length, rng)
        a = Anomaly(self.source, self.streams[stream], kind, start_round, ln, channel=chan)
        self.anomalies.append(a)
        return a

    def _active(self) -> np.ndarray:
        act = np.zeros(self.n_streams, bool)  # [n]
        for a in self.anomalies:
            if a.start_round <= self.rounds < a.start_round + a.length:
                act[self._index[a.stream]] = True
        return act

    def round(self, t: float) -> list[Event]:
        """Events of one round at event time ``t`` (ticks: a bursty number per symbol)."""
        k = self.rounds
        events = self.model.round(Round(self.streams, t, k, self.rng, self._active(), self.anomalies))
        for a in self.anomalies:
            if a.start_round == k:
                # the stream's first event of the anomaly (ticks spread a round's events over time)
                start = next((e.ts for e in events if e.stream == a.stream and e.kind == a.kind), t)
                self.labels.append(
                    Anomaly(a.source, a.stream, a.kind, a.start_round, a.length, start, channel=a.channel)
                )
        self.rounds += 1
        return events

    def mean_events_per_round(self) -> float:
        return self.model.mean_rate()
