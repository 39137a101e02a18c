"""What a source is: :class:`Source` (topic, wire schema, decoders, simulator, model binding) and the
simulator's :class:`Event` and :class:`Anomaly`.

A source file in this folder defines one ``SOURCE = Source(...)``; the package finds it by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

import msgspec
import numpy as np
import orjson

from models.checkpoint import DEFAULT_CHECKPOINT

from ..codec.decode import CarefulFeatures, FastFeatures, lists_fast, vector

__all__ = ["Anomaly", "Event", "Round", "RunnerSettings", "Simulation", "Source", "Wire", "vector_wire"]


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

    A subclass names its streams (``prefix``) and its injected anomalies (``anomaly``: the default
    kind; ``kinds``: the kinds it knows, taken in turn when ``anomaly`` is empty), draws its
    parameters from ``rng`` in its constructor ``(n_streams, rng, seed)`` (the simulator's only
    generator, so the order of draws is the output: keep it when editing) and makes each round's
    events in :meth:`round`.
    """

    prefix: ClassVar[str] = "stream"
    anomaly: ClassVar[str] = "anomaly"
    kinds: ClassVar[tuple[str, ...]] = ()

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
class Wire:
    """A source's JSON value: its msgspec ``schema`` (the fast decoder parses into it, ``decoder``),
    ``careful(obj, n)`` (one parsed record -> its ``n`` features, or ``BadInput``: the careful
    path alone names the reasons of rejections) and ``fast(msgs, n)`` (many parsed structs ->
    ``x[m, n]`` and the rows it vouches for)."""

    schema: type[msgspec.Struct]
    careful: CarefulFeatures
    fast: FastFeatures
    decoder: Callable[[bytes], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", msgspec.json.Decoder(self.schema).decode)


def vector_wire(schema: type[msgspec.Struct], name: str, *, missing: bool) -> Wire:
    """The wire of a source whose features are one JSON list of numbers, field ``name`` of ``schema``
    (``missing``: ``null`` items are missing values, NaN, but not all of them)."""
    get = attrgetter(name)

    def careful(obj: dict[str, Any], n: int) -> list[float]:
        return vector(obj, name, n, missing=missing)

    def fast(msgs: list[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
        return lists_fast(list(map(get, msgs)), n, missing=missing)

    return Wire(schema, careful, fast)


@dataclass(frozen=True)
class Source:
    """One input source, everything about it in its own file of ``stream/sources/``.

    ``topic`` is its default input topic, ``wire`` its JSON value (:class:`Wire`), ``simulation``
    the class that makes its test streams, ``n_features`` the width of the rows its decoders yield
    for its own model; ``checkpoint`` is its bundled model file in ``models/checkpoints`` (``net``:
    that model's shape for ``seqstream train``), or ``load_runner`` builds a model of another kind
    (``find_checkpoint``: where its file is when none is configured). ``reorder``: the reorder
    buffer may hold its events. ``name`` is the file's name, set by the registry.

    Example:
        >>> from stream.sources import SOURCES
        >>> s = SOURCES["sensors"]
        >>> s.name, s.topic, s.simulation.prefix, s.wire.schema.__name__
        ('sensors', 'sensor-readings', 'sensor', 'SensorMsg')
    """

    topic: str
    wire: Wire
    simulation: type[Simulation]
    n_features: int
    checkpoint: str | None = None
    net: Mapping[str, Any] = field(default_factory=dict)  # NetConfig fields of its model besides cell and sizes
    find_checkpoint: Callable[[], Path] | None = None
    load_runner: Callable[[RunnerSettings], Any] | None = None  # None: a forecaster checkpoint
    reorder: bool = True
    name: str = ""

    def default_checkpoint(self) -> Path:
        """The model file used when ``SEQSTREAM_CHECKPOINT_<NAME>`` is not set."""
        if self.find_checkpoint is not None:
            return self.find_checkpoint()
        return _bundled(self)
