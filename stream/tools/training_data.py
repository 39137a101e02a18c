"""Training data from the simulator or a replayed Kafka topic, decoded by the worker's own codec.

A source's checkpoint must see in training exactly the features the worker feeds it, so series
are built by running simulated Kafka payloads through :func:`stream.codec.decode_batch`; the
featurisation that needs per-stream state (ticks, masked values) then runs in
:func:`models.train.featurise_series`, the serving code path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from models import ConfigError
from stream.codec import decode_batch
from stream.sources import SOURCES
from stream.sources.simulator import Simulator

__all__ = ["N_FEATURES", "TopicData", "net_shape", "simulated_data", "simulated_series", "topic_data"]

# decoded vector width per trainable source (a forecaster checkpoint: not audio's pretrained VAD)
N_FEATURES = {name: src.n_features for name, src in SOURCES.items() if src.load_runner is None}


def _trainable(source: str) -> Any:
    if source not in N_FEATURES:
        raise ConfigError(f"no forecaster source {source!r} to train; one of {sorted(N_FEATURES)}")
    return SOURCES[source]


def net_shape(source: str) -> dict[str, Any]:
    """``NetConfig`` fields of a source's model besides cell and sizes.

    Example:
        >>> net_shape("ticks")["inputs"], net_shape("machines")["input_size"]
        ('ticks', 8)
    """
    src = _trainable(source)
    return {"input_size": src.n_features, **src.net}


def simulated_data(
    source: str, n_streams: int, rounds: int, seed: int = 0, round_s: float = 1.0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One ``[T, F]`` decoded series and its ``[T]`` event times per simulated stream (no anomalies)."""
    _trainable(source)
    sim = Simulator(source, n_streams=n_streams, seed=seed)
    t0 = 1_700_000_000.0
    records = []
    for k in range(rounds):
        for e in sim.round(t0 + k * round_s):
            rec = SimpleNamespace(topic=source, partition=0, offset=0, key=e.key(), value=e.value(), timestamp=0)
            records.append(rec)
    dec = decode_batch(SOURCES[source].wire, records, n_features=N_FEATURES[source], now=t0 + rounds * round_s + 1.0)
    if dec.errors:
        raise RuntimeError(f"simulator produced undecodable records: {dec.errors[:3]}")
    series, times, _, _ = _series(dec.stream_ids, dec.ts, dec.x)
    return series, times


def simulated_series(source: str, n_streams: int, rounds: int, seed: int = 0) -> list[np.ndarray]:
    """One ``[T, F]`` feature series per simulated stream (no injected anomalies).

    Example:
        >>> [s.shape for s in simulated_series("ticks", n_streams=2, rounds=3)][0][1]
        4
    """
    return simulated_data(source, n_streams, rounds, seed)[0]


def _series(
    ids: Sequence[str], ts: np.ndarray, x: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray], list[str], int]:
    """Decoded events grouped per stream in event-time order (stable: ties keep arrival order):
    ``[T, F]`` values, ``[T]`` times, the stream ids, and how many events arrived after a later
    event of their stream."""
    by_stream: dict[str, list[int]] = {}
    for i, sid in enumerate(ids):
        by_stream.setdefault(sid, []).append(i)
    series, times, reordered = [], [], 0
    for idx in by_stream.values():
        t = ts[idx]  # [T] arrival order
        reordered += int((t < np.maximum.accumulate(t)).sum())
        order = np.asarray(idx)[np.argsort(t, kind="stable")]  # [T]
        series.append(x[order])
        times.append(ts[order])
    return series, times, list(by_stream), reordered


@dataclass
class TopicData:
    """What :func:`topic_data` read: per-stream series and times, and what was skipped (with why)."""

    series: list[np.ndarray]
    times: list[np.ndarray]
    stream_ids: list[str]
    records: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # decode error reason -> count
    reordered: int = 0  # events that arrived after a later event of their stream (trained on in time order)
    seconds: float = 0.0


def topic_data(
    kafka: dict[str, Any],
    topic: str,
    source: str,
    *,
    n_features: int | None = None,
    max_events: int = 5_000_000,
    idle_s: float = 3.0,
    max_payload_bytes: int = 65536,
) -> TopicData:
    """Replay ``topic`` from its first offset and decode it as ``source`` (the worker's codec).

    Reads every partition from the beginning, without a consumer group (no offsets are committed),
    until ``idle_s`` seconds pass without a record (at least 10 s for the first one) or
    ``max_events`` records were read: a topic that is still being written stops at ``max_events``.
    Fetched records are decoded chunk by chunk, so only decoded values are kept. Records the codec
    rejects are counted by reason and left out. Each stream's series is put in event-time order
    (stable): events that arrived after a later one of their stream (a producer's retry, keyless
    records spread over partitions) are counted as ``reordered`` and trained on in their place.

    Example (needs a broker)::

        >>> d = topic_data({"bootstrap_servers": "localhost:9092"}, "sensor-readings", "sensors")  # doctest: +SKIP
    """
    _trainable(source)
    width = N_FEATURES[source] if n_features is None else n_features
    t0 = time.monotonic()
    ids: list[str] = []
    ts_parts: list[np.ndarray] = []
    x_parts: list[np.ndarray] = []
    rejected: dict[str, int] = {}
    n_records = 0

    def decode(records: Sequence[Any]) -> None:
        nonlocal n_records
        n_records += len(records)
        dec = decode_batch(
            SOURCES[source].wire,
            records,
            n_features=width,
            now=time.time(),
            max_future_s=float("inf"),  # history: a clock ahead of this machine's is not a reason to drop it
            max_payload_bytes=max_payload_bytes,
        )
        for _, reason, _msg in dec.errors:
            rejected[reason] = rejected.get(reason, 0) + 1
        ids.extend(dec.stream_ids)
        ts_parts.append(dec.ts)
        x_parts.append(dec.x)

    asyncio.run(_read_topic(kafka, topic, max_events, idle_s, decode))
    all_ts = np.concatenate(ts_parts) if ts_parts else np.zeros(0)  # [N]
    all_x = np.concatenate(x_parts) if x_parts else np.zeros((0, width), np.float32)  # [N, F]
    series, times, stream_ids, reordered = _series(ids, all_ts, all_x)
    return TopicData(series, times, stream_ids, n_records, rejected, reordered, round(time.monotonic() - t0, 2))


async def _read_topic(
    kafka: dict[str, Any], topic: str, max_events: int, idle_s: float, sink: Callable[[Sequence[Any]], None]
) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream.admin import partitions_of

    consumer = AIOKafkaConsumer(
        group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=200, **kafka
    )
    await consumer.start()
    try:
        parts = await partitions_of(consumer, topic)
        if not parts:
            raise ConfigError(f"topic {topic!r} not found on the broker; check --topic and the broker address")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        read, last, wait = 0, time.monotonic(), max(idle_s, 10.0)  # a first fetch may take a while
        while read < max_events and time.monotonic() - last < wait:
            got = await consumer.getmany(timeout_ms=200, max_records=min(10_000, max_events - read))
            chunk = [r for recs in got.values() for r in recs]
            if chunk:
                sink(chunk)
                read += len(chunk)
                last, wait = time.monotonic(), idle_s
    finally:
        await consumer.stop()
