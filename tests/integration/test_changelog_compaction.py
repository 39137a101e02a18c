"""The state changelog on Apache Kafka is compacted: a restore after many snapshots reads only the live ones.

In process, against a Kafka broker of its own (its log cleaner checks every 0.5 s instead of every
15 s, so the test waits seconds, not minutes): 12 snapshots of one partition (slots alternating
0/1, several chunks each) go to a compacted topic whose segments roll every 100 ms. Once Kafka's
cleaner ran, a fresh state manager restores the partition reading just the two live snapshots'
records (one per slot) and gets the latest state exactly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
import torch

from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings
from stream.state import PartitionProgress, StateManager, encode_snapshot
from stream.tools.kafka_broker import KafkaBroker

pytestmark = pytest.mark.integration

SNAPSHOTS = 12
STREAMS = 300


def test_restore_after_compaction_reads_only_live_snapshots(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    from aiokafka import AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    broker = KafkaBroker(
        data_dir=tmp_path / "kafka", log_path=tmp_path / "kafka.log", properties={"log.cleaner.backoff.ms": "500"}
    ).start()
    tag = uuid.uuid4().hex[:6]
    settings = Settings(
        broker_url=broker.url,
        sources="sensors",
        checkpoint_sensors=checkpoints["sensors"],
        topic_sensors=f"cl-{tag}-in",
        topic_state=f"cl-{tag}-state",
        partitions=1,
        snapshot_chunk_bytes=4096,
    )
    tp = TopicPartition(settings.topic("sensors"), 0)

    def records(k: int) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(
                topic=tp.topic,
                partition=0,
                offset=k * STREAMS + i,
                key=f"s{i}".encode(),
                value=orjson.dumps({"stream": f"s{i}", "ts": 1000.0 + k, "values": [float((i * k) % 11)]}),
                timestamp=0,
            )
            for i in range(STREAMS)
        ]

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        small_segments = {
            "cleanup.policy": "compact",
            "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "0",
        }
        await admin.create_topics([NewTopic(settings.topic_state, 1, 1, topic_configs=small_segments)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=1 << 20)
        await producer.start()
        writer = SourcePipeline("sensors", build_runner(settings, "sensors"), settings)
        sm = StateManager(settings, {"sensors": writer}, Metrics())
        await sm.start(producer)
        sm.parts[tp] = PartitionProgress("sensors", 0, 0)
        for k in range(SNAPSHOTS):
            recs = records(k)
            writer.process(recs, now=2000.0)
            sm.advanced({tp: recs})
            await sm.snapshot([tp])
            await asyncio.sleep(0.15)  # the next snapshot lands in a new segment
        assert sm.snapshot_records(tp) is None and sm.snapshots_written == SNAPSHOTS  # all written
        live_keys = 2 * _chunks(settings, writer)  # one snapshot per slot
        await producer.send_and_wait(settings.topic_state, b"roll", key=b"other#0.0")  # closes the last segment
        await sm.stop()
        await producer.stop()

        fresh = StateManager(
            settings, {"sensors": SourcePipeline("sensors", build_runner(settings, "sensors"), settings)}, Metrics()
        )
        await fresh.start(None)
        reads = []
        deadline = time.monotonic() + 60
        while True:
            got = await fresh._read_latest([tp])
            reads.append(fresh.last_restore_records)
            if reads[-1] <= live_keys + 1 or time.monotonic() > deadline:  # +1: the roll record
                break
            await asyncio.sleep(1.0)
        await fresh.stop()
        print(
            f"changelog on Kafka: {SNAPSHOTS} snapshots of {STREAMS} streams, {live_keys // 2} chunks each; "
            f"records a restore read: {reads[0]} at first, {reads[-1]} after compaction ({len(reads)} tries)"
        )
        assert reads[-1] <= live_keys + 1, f"{reads[-1]} records read: not compacted within 60 s"
        offset, snap = got[tp].offset, got[tp].snap
        want = writer.partition_snapshot(0)
        assert offset == SNAPSHOTS * STREAMS - 1
        assert list(snap.stream_ids) == list(want.stream_ids) and len(snap) == STREAMS
        assert torch.equal(snap.hidden, want.hidden) and torch.equal(snap.aux, want.aux)

    try:
        asyncio.run(run())
    finally:
        broker.stop()


def _chunks(settings: Settings, pipe: SourcePipeline) -> int:
    """Changelog records per snapshot of partition 0."""
    snap = pipe.partition_snapshot(0)
    return len(encode_snapshot("k", snap, offset=0, snap_id=0, slot=0, chunk_bytes=settings.snapshot_chunk_bytes))
