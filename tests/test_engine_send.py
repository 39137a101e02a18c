"""``BulkProducer.send_all`` and ``Output``: the grouping loop and the record type were rewritten for
speed; the producer must see exactly the calls the previous implementation made (kept below verbatim
as ``_Reference.send_all``): the same ``send_batch`` per (topic, partition) in the same order, the
same records in each, the same round robin for keyless records, the same lone ``send`` for a record
larger than a batch."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

from stream.engine import BulkProducer
from stream.pipeline import Output

PARTS = {"predictions": 8, "anomaly-alerts": 3, "dead-letter": 1, "other": 5}


class _Reference(BulkProducer):
    """``BulkProducer`` with ``send_all`` of commit 71cc311, unchanged but for one fix: a record larger than a
    whole batch that comes first in a fresh batch no longer sends that empty batch before it."""

    async def send_all(self, outputs: Iterable[Output]) -> list[asyncio.Future[Any]]:
        """Queue every output; returns the futures of the submitted batches (await them to confirm)."""
        groups: dict[tuple[str, int], list[Output]] = defaultdict(list)
        cache: Any = self._key_part
        if len(cache) > 1_000_000:
            cache.clear()
        for o in outputs:
            n = self._nparts.get(o.topic) or await self._partitions(o.topic)
            if o.key is None:
                self._rr += 1
                part = self._rr % n
            else:
                part = cache.get((o.key, n), -1)
                if part < 0:
                    part = cache[(o.key, n)] = self.partition_of(o.key, n)
            groups[(o.topic, part)].append(o)
        futures: list[asyncio.Future[Any]] = []
        p = self.producer
        for (topic, part), recs in groups.items():
            batch = p.create_batch()
            for o in recs:
                if batch.append(key=o.key, value=o.value, timestamp=None) is None:
                    if batch.record_count():  # (since 2026-12-06: never an empty record batch)
                        futures.append(await p.send_batch(batch, topic, partition=part))
                    batch = p.create_batch()
                    if batch.append(key=o.key, value=o.value, timestamp=None) is None:
                        # larger than a whole batch: send it on its own
                        futures.append(await p.send(topic, o.value, key=o.key, partition=part))
                        batch = p.create_batch()
            if batch.record_count():
                futures.append(await p.send_batch(batch, topic, partition=part))
        return futures


class _Batch:
    def __init__(self, limit: int) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []
        self.size, self.limit = 0, limit

    def append(self, *, key: bytes | None, value: bytes, timestamp: Any) -> Any:
        size = len(value) + len(key or b"")
        if (self.records and self.size + size > self.limit) or size > self.limit:
            return None
        self.records.append((key, value))
        self.size += size
        return object()

    def record_count(self) -> int:
        return len(self.records)


class _Producer:
    """Records every call ``send_all`` makes; batches hold at most ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls: list[tuple[Any, ...]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        self.calls.append(("partitions_for", topic))
        return set(range(PARTS[topic]))

    def create_batch(self) -> _Batch:
        return _Batch(self.limit)

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
        self.calls.append(("send_batch", topic, partition, tuple(batch.records)))
        return len(self.calls)

    async def send(self, topic: str, value: bytes, *, key: bytes | None, partition: int) -> Any:
        self.calls.append(("send", topic, partition, key, value))
        return len(self.calls)


def _outputs(rng: np.random.Generator, n: int) -> list[Output]:
    out: list[Output] = []
    topics = list(PARTS)
    topic = topics[0]
    for i in range(n):
        if rng.random() < (0.02 if i % 7 else 0.5):  # mostly runs of one topic, sometimes alternating
            topic = topics[int(rng.integers(0, len(topics)))]
        key = None if rng.random() < 0.1 else f"k{int(rng.integers(0, 40))}".encode()
        size = 400 if rng.random() < 0.02 else int(rng.integers(1, 60))  # some larger than a whole batch
        out.append(Output(topic, key, bytes([i % 251]) * size))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_send_all_makes_the_same_producer_calls(seed: int) -> None:
    rng = np.random.default_rng(seed)
    limit = int(rng.choice([100, 300, 1 << 20]))
    new, ref = BulkProducer(_Producer(limit)), _Reference(_Producer(limit))

    async def run() -> None:
        for _ in range(5):  # several calls: the key cache and the round robin carry over
            outs = _outputs(rng, int(rng.choice([0, 1, 30, 400])))
            got = await new.send_all(iter(outs))  # any iterable, consumed once
            want = await ref.send_all(outs)
            assert got == want
            assert new.producer.calls == ref.producer.calls
            assert new._rr == ref._rr

    asyncio.run(run())


def test_output_is_an_immutable_record_with_the_old_fields() -> None:
    o = Output("predictions", b"pump-7", b"{}")
    assert (o.topic, o.key, o.value) == ("predictions", b"pump-7", b"{}")
    assert o == Output(topic="predictions", key=b"pump-7", value=b"{}") and hash(o) == hash(Output(*o))
    assert repr(o) == "Output(topic='predictions', key=b'pump-7', value=b'{}', origin=-1)"
    with pytest.raises(AttributeError):
        o.value = b"x"  # type: ignore[misc]
    ids, values = ["a", "café ✓", ""], [b"1", b"2", b"3"]
    many = Output.many("t", ids, values)
    assert many == [Output("t", sid.encode(), v) for sid, v in zip(ids, values)]
    assert all(type(m) is Output for m in many) and many[1].key == "café ✓".encode()
    assert Output.many("t", ids, values, [4, 0, 2]) == [
        Output("t", sid.encode(), v, o) for sid, v, o in zip(ids, values, [4, 0, 2])
    ]


def test_a_record_larger_than_a_batch_goes_alone_and_no_batch_is_empty() -> None:
    from stream.producer import send_records

    async def run() -> list[tuple[Any, ...]]:
        p = _Producer(100)
        recs = [Output("t", b"k", b"x" * 300), Output("t", b"k", b"a"), Output("t", b"k", b"y" * 300)]
        await send_records(p, "t", 0, recs)
        return p.calls

    calls = asyncio.run(run())
    assert [c[0] for c in calls] == ["send", "send_batch", "send"]
    assert all(c[3] for c in calls if c[0] == "send_batch")  # every record batch holds a record
