"""exactly_once without a broker: what goes into each input partition's transaction, and what a failed one does.

A fake ``PartitionTransactions`` records every commit; the engine and the state manager are the real
ones. The properties checked are the ones the crash argument in ``stream/transactions.py`` rests on:
a partition's outputs, next offset and snapshot always share one transaction; a partition's outputs
never land in another partition's transaction; a failed transaction forgets the partition's state
until it is restored from what was committed.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import torch
from aiokafka import TopicPartition

from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig
from stream.engine import BatchEngine
from stream.metrics import Metrics
from stream.pipeline import SourcePipeline
from stream.settings import Settings
from stream.state import PartitionProgress, decode_chunk
from stream.transactions import TxnWork

TOPIC = "sensor-readings"


def _rec(stream: str, ts: float, offset: int, partition: int) -> SimpleNamespace:
    value = orjson.dumps({"stream": stream, "ts": ts, "values": [float(offset % 7)]})
    return SimpleNamespace(
        topic=TOPIC, partition=partition, offset=offset, key=stream.encode(), value=value, timestamp=0
    )


class FakeTxns:
    """Records each commit's work; partitions in ``fail`` raise."""

    def __init__(self) -> None:
        self.commits: list[dict[Any, TxnWork]] = []
        self.fail: set[Any] = set()

    async def commit(self, work: dict[Any, TxnWork]) -> dict[Any, BaseException]:
        self.commits.append(work)
        return {tp: RuntimeError("broker gone") for tp in work if tp in self.fail}

    async def open(self, tps: Any) -> None:
        pass


class FakeConsumer:
    def __init__(self, committed: dict[Any, int], owned: set[Any] | None = None) -> None:
        self._committed = committed
        self.owned = set(committed) if owned is None else owned
        self.seeks: list[tuple[Any, int]] = []

    def assignment(self) -> set[Any]:
        return self.owned

    async def committed(self, tp: Any) -> int | None:
        return self._committed.get(tp)

    async def beginning_offsets(self, tps: Any) -> dict[Any, int]:
        return {tp: 0 for tp in tps}

    def seek(self, tp: Any, off: int) -> None:
        self.seeks.append((tp, off))


def _engine(**kw: Any) -> tuple[BatchEngine, FakeTxns]:
    torch.manual_seed(0)
    settings = Settings(broker_url="kafka://k:9092", guarantee="exactly_once", **kw)
    runner = Runner(RecurrentForecaster(NetConfig(hidden_size=8)), ScoringConfig(warmup=2), device="cpu")
    engine = BatchEngine(settings, {"sensors": SourcePipeline("sensors", runner, settings, Metrics())}, Metrics())
    fake = FakeTxns()
    engine.txns = engine.state.txns = fake  # type: ignore[assignment]
    for p in (0, 1):
        engine.state.parts[TopicPartition(TOPIC, p)] = PartitionProgress("sensors", 0, 0)
    engine.state._stagger(list(engine.state.parts))  # as an assignment does
    return engine, fake


def _batch(start: int, n: int = 6) -> dict[Any, list[Any]]:
    data: dict[Any, list[Any]] = {}
    for p in (0, 1):
        data[TopicPartition(TOPIC, p)] = [
            _rec(f"s{p}-{i % 2}", 100.0 + start + i, start + i, p) for i in range(n)
        ]  # streams s0-* live on partition 0, s1-* on 1
    return data


def test_each_partitions_outputs_offset_and_snapshot_share_one_transaction() -> None:
    engine, fake = _engine(snapshot_interval_s=3600.0)
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)

    async def run() -> None:
        await engine.process(_batch(0))
        for st in engine.state.parts.values():
            st.snap_due = 0.0  # both periodic snapshots are due after the next batch
        await engine.process(_batch(6))  # one partition's snapshot per batch (the most overdue)
        await engine.process(_batch(12))  # the other's

    asyncio.run(run())
    assert len(fake.commits) == 3
    snapshotted = []
    for i, work in enumerate(fake.commits):
        assert set(work) == {tp0, tp1}
        for tp, w in work.items():
            assert w.offset == 6 * (i + 1)  # the next offset after this batch's records
            assert len(w.outputs) == 6 and {o.origin for o in w.outputs} == {tp.partition}
            ids = {orjson.loads(o.value)["id"] for o in w.outputs}
            assert ids == {f"{TOPIC}:{tp.partition}:{off}" for off in range(6 * i, 6 * i + 6)}
            if w.state:  # the snapshot in the same transaction covers exactly the committed offsets
                chunk = decode_chunk(w.state[0][1])
                assert chunk.offset == w.offset - 1 and chunk.key.endswith(f":{tp.partition}")
                assert set(chunk.snap.stream_ids) == {f"s{tp.partition}-0", f"s{tp.partition}-1"}
                assert w.state_partition == tp.partition % engine.state.n_state_partitions
                snapshotted.append((i, tp))
    assert snapshotted == [(1, tp0), (2, tp1)]  # none before they were due, then one per batch


def test_a_failed_transaction_forgets_the_partition_until_it_is_restored() -> None:
    engine, fake = _engine()
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    pipe = engine.pipelines["sensors"]

    async def run() -> None:
        await engine.process(_batch(0))
        fake.fail = {tp0}
        await engine.process(_batch(6))
        # partition 0 is forgotten: its streams are gone, its next records are dropped
        assert tp0 not in engine.state.parts and tp0 in engine.state.broken
        assert pipe.streams_of(0) == [] and sorted(pipe.streams_of(1)) == ["s1-0", "s1-1"]
        fake.fail = set()
        res = await engine.process(_batch(12))
        assert res[0].n_in == 6  # only partition 1's records ran
        assert set(fake.commits[-1]) == {tp1}
        # restored from what was committed (offset 6, no snapshot: replay from the beginning for state)
        engine.consumer = FakeConsumer({tp0: 6})

        async def no_snapshots(tps: Any) -> dict[Any, Any]:
            return {}

        engine.state._read_latest = no_snapshots  # type: ignore[method-assign]
        await engine._repair()
        assert tp0 in engine.state.parts and not engine.state.broken
        st = engine.state.parts[tp0]
        assert (st.next_offset, st.live_from) == (0, 6)
        assert (tp0, 0) in engine.consumer.seeks

    asyncio.run(run())


def test_every_output_names_its_input_partition() -> None:
    settings = Settings(broker_url="kafka://k:9092")
    runner = Runner(RecurrentForecaster(NetConfig(hidden_size=8)), ScoringConfig(warmup=0), device="cpu")
    pipe = SourcePipeline("sensors", runner, settings)
    recs = [_rec(f"s{i}", 100.0 + i, i, i % 3) for i in range(9)]
    recs.append(SimpleNamespace(topic=TOPIC, partition=2, offset=99, key=b"x", value=b"not json", timestamp=0))
    out = pipe.process(recs, now=1e9).outputs
    assert len(out) == 10 and {o.topic for o in out} == {settings.topic_predictions, settings.topic_dead_letter}
    for o in out:
        assert o.origin == orjson.loads(o.value)["input"]["partition"]


class FakeTxnProducer:
    """An aiokafka transactional producer's calls, recorded; ``fail_commit`` makes the commit raise."""

    def __init__(self, fail_commit: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_commit = fail_commit

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group_id: str) -> None:
        self.calls.append(f"offsets {sorted(offsets.values())} {group_id}")

    async def commit_transaction(self) -> None:
        if self.fail_commit:
            raise RuntimeError("broker gone")
        self.calls.append("commit")

    async def abort_transaction(self) -> None:
        self.calls.append("abort")

    async def stop(self) -> None:
        self.calls.append("stop")


def test_partition_transactions_commit_or_abort_and_count() -> None:
    from stream.producer import BulkProducer
    from stream.transactions import PartitionTransactions

    metrics = Metrics()
    tx = PartitionTransactions(Settings(broker_url="kafka://k:9092", guarantee="exactly_once"), metrics)
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    ok, bad = FakeTxnProducer(), FakeTxnProducer(fail_commit=True)
    tx._producers = {tp0: (ok, BulkProducer(ok)), tp1: (bad, BulkProducer(bad))}
    failed = asyncio.run(tx.commit({tp0: TxnWork(offset=7), tp1: TxnWork(offset=3)}))
    assert list(failed) == [tp1] and isinstance(failed[tp1], RuntimeError)
    assert ok.calls == ["begin", "offsets [7] seqstream-core", "commit"]
    assert bad.calls == ["begin", "offsets [3] seqstream-core", "abort", "stop"]  # a failed producer is closed
    assert tx.owns(tp0) and not tx.owns(tp1)
    text = metrics.render().decode()
    assert 'seqstream_transactions_total{outcome="committed"} 1.0' in text
    assert 'seqstream_transactions_total{outcome="aborted"} 1.0' in text


def test_a_fenced_partition_waits_for_the_rebalance_and_a_revoked_one_is_dropped() -> None:
    from aiokafka.errors import ProducerFenced

    engine, _ = _engine()
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    engine.consumer = FakeConsumer({tp0: 0, tp1: 0}, owned={tp0})  # tp1 was revoked meanwhile
    engine.state.fail({tp0: ProducerFenced(), tp1: RuntimeError("broker gone")})

    async def no_snapshots(tps: Any) -> dict[Any, Any]:
        return {}

    engine.state._read_latest = no_snapshots  # type: ignore[method-assign]

    async def run() -> None:
        await engine._repair()
        # fenced: another worker owns it now, restarting its producer would fence that owner in turn
        assert tp0 in engine.state.broken and tp0 not in engine.state.parts
        assert tp1 not in engine.state.broken  # not ours any more: nothing to restore
        engine.state.broken_at[tp0] -= 3 * engine.settings.broker_session_timeout
        await engine._repair()  # still ours long after: whoever fenced it is not its owner
        assert not engine.state.broken and tp0 in engine.state.parts

    asyncio.run(run())
