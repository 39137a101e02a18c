"""What a source is: :class:`Source` (topic, wire schema, decoders, simulator, model binding) and the
simulator's :class:`Event` and :class:`Anomaly`.

A source file in this folder defines one ``SOURCE = Source(...)``; the package finds it by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import msgspec
import numpy as np
import orjson

from models.checkpoint import DEFAULT_CHECKPOINT

from ..codec.decode import CarefulFeatures, FastFeatures

__all__ = ["Anomaly", "Event", "Round", "RunnerSettings", "Simulation", "Source"]


@dataclass(frozen=True)
class Anomaly:
    """An injected anomaly: ``stream`` misbehaves from its ``start_round`` for ``length`` rounds
    (ticks: ``length`` ticks of the symbol; machines: ``channel`` is the faulty channel)."""

    source: str
    stream: str
    kind: str
    start_round: int
    length: int
    start_ts: float | None = None  # event time of the first anomalous event, once emitted
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One simulated input record: the Kafka key is the stream id, the value the JSON payload."""

    stream: str
    ts: float
    payload: dict[str, Any]
    anomalous: bool = False
    kind: str | None = None  # the injected anomaly's kind on anomalous events

    def key(self) -> bytes:
        return self.stream.encode()

    def value(self) -> bytes:
        return orjson.dumps(self.payload)


class Round(NamedTuple):
    """What a simulation needs to make one round: the stream ids, event time ``t``, round number
    ``k``, the simulator's generator, ``active[n]`` (streams inside an injected anomaly now) and
    the planned anomalies."""

    streams: list[str]
    t: float
    k: int
    rng: np.random.Generator
    active: np.ndarray
    anomalies: list[Anomaly]


class Simulation:
    """A source's simulated streams; :class:`stream.sources.simulator.Simulator` drives it round by round.

    A subclass draws its parameters from ``rng`` in its constructor ``(n_streams, rng, seed)``
    (the simulator's only generator, so the order of draws is the output: keep it when editing)
    and makes each round's events in :meth:`round`.
    """

    def __init__(self, n: int, rng: np.random.Generator, seed: int) -> None:
        self.n = n

    def plan(
        self, stream: int, kind: str, start_round: int, length: int, rng: np.random.Generator
    ) -> tuple[int, str | None]:
        """Plan an anomaly of ``kind`` on stream number ``stream``: its (length, channel)."""
        return length, None

    def round(self, r: Round) -> list[Event]:
        """The events of round ``r.k`` at event time ``r.t``."""
        raise NotImplementedError

    def mean_rate(self) -> float:
        """Expected events per round over all streams."""
        return float(self.n)


class RunnerSettings(Protocol):
    """The settings a source's model loader reads (:class:`stream.settings.Settings` has them)."""

    device: str
    slab_capacity: int
    slab_max_capacity: int
    cuda_graphs: bool
    compute_dtype: Any
    open_threshold: float | None
    vad_threshold: float
    vad_min_silence_ms: float

    def checkpoint(self, source: str) -> Path: ...


def _bundled(source: Source) -> Path:
    if source.checkpoint is None:
        raise ValueError(f"source {source.name!r} ships no bundled checkpoint")
    return DEFAULT_CHECKPOINT.parent / source.checkpoint


@dataclass(frozen=True)
class Source:
    """One input source: everything about it in one place.

    ``schema`` is the msgspec struct of its JSON value (the fast decoder parses into it; the
    careful decoder, ``careful``, checks the same fields one record at a time and alone names the
    reasons of rejections); ``fast`` turns parsed structs into feature rows; ``simulation`` makes
    its test streams; ``checkpoint`` is the bundled model file in ``models/checkpoints`` and
    ``load_runner`` the model loader when the source is not served by a forecaster checkpoint.

    Example:
        >>> from stream.sources import SOURCES
        >>> s = SOURCES["sensors"]
        >>> s.topic, s.stream_prefix, s.schema.__name__
        ('sensor-readings', 'sensor', 'SensorMsg')
    """

    name: str
    topic: str
    doc: str  # one line: what the source carries (help texts, the settings reference)
    schema: type[msgspec.Struct]
    careful: CarefulFeatures
    fast: FastFeatures
    simulation: Callable[[int, np.random.Generator, int], Simulation]
    stream_prefix: str
    n_features: int  # width of the rows the decoders yield for the source's own model
    default_anomaly: str  # "" : the kinds of ``anomaly_kinds`` in turn
    anomaly_kinds: tuple[str, ...] = ()
    checkpoint: str | None = None
    net: Mapping[str, Any] = field(default_factory=dict)  # NetConfig fields of its model besides cell and sizes
    find_checkpoint: Callable[[], Path] | None = None  # the model file when none is configured nor bundled
    load_runner: Callable[[RunnerSettings], Any] | None = None  # None: a forecaster checkpoint
    reorder: bool = True  # the reorder buffer may hold its events (SEQSTREAM_REORDER_GRACE_S)
    decoder: Callable[[bytes], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", msgspec.json.Decoder(self.schema).decode)

    def default_checkpoint(self) -> Path:
        """The model file used when ``SEQSTREAM_CHECKPOINT_<NAME>`` is not set."""
        if self.find_checkpoint is not None:
            return self.find_checkpoint()
        return _bundled(self)
