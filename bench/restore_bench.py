"""Restore time of 100k streams' state from the changelog, on Apache Kafka and on Tansu, in one run.

    .venv/bin/python bench/restore_bench.py [--streams 100000] [--snapshots 12] [--partitions 8]

The shipped sensor model (bundled checkpoint and scoring) runs one event for each of ``--streams``
streams spread over ``--partitions`` input partitions; then the state manager writes ``--snapshots``
rounds of snapshots of every partition (what a worker writes every ``SEQSTREAM_SNAPSHOT_INTERVAL_S``),
and a fresh state manager restores all partitions (read the changelog, decode, load into a new
pipeline): the restore a worker does when it gets partitions. Per broker one JSON line:

* ``kafka``: the changelog topic as the worker creates it (``STATE_TOPIC_CONFIGS``: compacted,
  64 MiB / 10 min segments); restored once right after writing, and once more after the log
  cleaner ran on closed segments (``segment.ms`` lowered to 1 s and the cleaner's back-off to 1 s
  for this run, so it happens within the benchmark rather than after minutes).
* ``tansu``: no compaction: a restore reads every snapshot ever written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
import torch


def _records(topic: str, n: int, partitions: int) -> list[SimpleNamespace]:
    from stream.producer import BulkProducer

    out = []
    offsets = [0] * partitions
    for i in range(n):
        sid = f"sensor-{i:07d}"
        p = BulkProducer.partition_of(sid.encode(), partitions)
        value = orjson.dumps({"stream": sid, "ts": 1_700_000_000.0, "values": [float(i % 13)]})
        out.append(
            SimpleNamespace(topic=topic, partition=p, offset=offsets[p], key=sid.encode(), value=value, timestamp=0)
        )
        offsets[p] += 1
    return out


async def _restore(settings: Any, tps: list[Any]) -> dict[str, Any]:
    from stream.metrics import Metrics
    from stream.pipeline import SourcePipeline, build_runner
    from stream.state import StateManager

    pipe = SourcePipeline("sensors", build_runner(settings, "sensors"), settings)
    sm = StateManager(settings, {"sensors": pipe}, Metrics())
    await sm.start(None)
    t0 = time.perf_counter()
    snaps = await sm._read_latest(tps)
    t_read = time.perf_counter() - t0
    for tp, got in snaps.items():
        pipe.load_partition(tp.partition, got.snap, got.held)
    total = time.perf_counter() - t0
    await sm.stop()
    return {
        "restore_s": round(total, 3),
        "read_decode_s": round(t_read, 3),
        "records_read": sm.last_restore_records,
        "mb_read": round(sm.last_restore_bytes / 1e6, 1),
        "streams_restored": sum(len(s[2]) for s in snaps.values()),
    }


async def _run(kind: str, broker: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from stream.metrics import Metrics
    from stream.pipeline import SourcePipeline, build_runner
    from stream.settings import Settings
    from stream.state import STATE_TOPIC_CONFIGS, StateManager

    tag = uuid.uuid4().hex[:6]
    settings = Settings(
        broker_url=broker.url,
        profile=broker.profile,
        sources="sensors",
        topic_sensors=f"rb-{tag}-in",
        topic_state=f"rb-{tag}-state",
        partitions=args.partitions,
    )
    configs = dict(STATE_TOPIC_CONFIGS)
    if kind == "kafka":
        configs["segment.ms"] = "1000"  # closed segments within the run, so the cleaner can act
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(settings.topic_state, args.partitions, 1, topic_configs=configs)])
    await admin.close()
    pipe = SourcePipeline("sensors", build_runner(settings, "sensors"), settings)
    recs = _records(settings.topic("sensors"), args.streams, args.partitions)
    t0 = time.perf_counter()
    for i in range(0, len(recs), 4096):
        pipe.process(recs[i : i + 4096], now=1_700_000_100.0)
    t_fill = time.perf_counter() - t0
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_batch_size=1 << 20, max_request_size=8 << 20)
    await producer.start()
    sm = StateManager(settings, {"sensors": pipe}, Metrics())
    await sm.start(producer)
    tps = [TopicPartition(settings.topic("sensors"), p) for p in range(args.partitions)]
    by_part: dict[int, list[Any]] = {}
    for r in recs:
        by_part.setdefault(r.partition, []).append(r)
    from stream.state import PartitionProgress

    for tp in tps:
        sm.parts[tp] = PartitionProgress("sensors", 0, 0)
        sm.advanced({tp: by_part.get(tp.partition, [])})
    t0 = time.perf_counter()
    nbytes = 0
    for _ in range(args.snapshots):
        for st in sm.parts.values():
            st.dirty = True  # the same state again: what a snapshot round writes when streams changed
        nbytes += await sm.snapshot(tps)
        await asyncio.sleep(1.1 if kind == "kafka" else 0.0)  # Kafka: the next round in a new segment
    t_write = time.perf_counter() - t0
    await producer.send_and_wait(settings.topic_state, b"roll", key=b"roll", partition=0)
    await sm.stop()
    await producer.stop()
    base = {
        "broker": kind,
        "streams": args.streams,
        "partitions": args.partitions,
        "snapshots": args.snapshots,
        "snapshot_mb": round(nbytes / args.snapshots / 1e6, 1),
        "fill_s": round(t_fill, 1),
        "write_s": round(t_write, 1),
    }
    out = [{**base, "when": "after writing", **await _restore(settings, tps)}]
    if kind == "kafka":
        live = out[0]["records_read"]
        deadline = time.monotonic() + args.compaction_wait
        while time.monotonic() < deadline:
            await asyncio.sleep(3.0)
            r = await _restore(settings, tps)
            if r["records_read"] < live:
                live = r["records_read"]
            if r["mb_read"] <= 2.5 * base["snapshot_mb"]:
                break
        out.append({**base, "when": "after compaction", **await _restore(settings, tps)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=100_000)
    p.add_argument("--snapshots", type=int, default=12)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--brokers", nargs="+", default=["kafka", "tansu"], choices=["kafka", "tansu"])
    p.add_argument("--compaction-wait", type=float, default=120.0, help="Kafka: seconds to wait for the cleaner")
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from stream.tools.brokers import EmbeddedBroker
    from stream.tools.kafka_broker import KafkaBroker

    rows: list[dict[str, Any]] = []
    for kind in args.brokers:
        if kind == "kafka":  # its data folder is temporary: removed when it stops
            broker: Any = KafkaBroker(heap="1g", properties={"log.cleaner.backoff.ms": "1000"})
        else:
            broker = EmbeddedBroker()
        broker.start()
        try:
            for row in asyncio.run(_run(kind, broker, args)):
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            broker.stop()
    print("\n| broker | when | snapshots written | MB per round | records read | MB read | restore s (read+decode s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['broker']} | {r['when']} | {r['snapshots']} | {r['snapshot_mb']} | {r['records_read']} | "
            f"{r['mb_read']} | {r['restore_s']} ({r['read_decode_s']}) |"
        )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
