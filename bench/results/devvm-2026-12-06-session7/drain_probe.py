"""Experiment: where a seqstream drain's wall and CPU time go (docs/benchmarks.md, seventh session).

Starts a local Apache Kafka (or Tansu with ``--tansu``), produces a backlog of N sensor records over
10k streams and P partitions, optionally runs the raw pass-through (``--raw``), then drains it with
the real engine (shipped detector, batch_max 4096 or ``BMAX``), timing the engine's stages and
logging every ``getmany`` as (wall ms, CPU ms, records, partitions buffered, fetches in flight).

    .venv/bin/python bench/results/devvm-2026-12-06-session7/drain_probe.py 400000 8 [--tansu] [--raw]
"""

import asyncio
import collections
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiokafka.consumer.consumer as aiokafka_consumer

import stream.engine as engine
import stream.producer as producer
import stream.state.manager as manager
from stream.admin import create_topics
from stream.tools.bench.drain import (
    _broker,
    _produce_backlog,
    _raw_passthrough,
    _sensor_messages,
    _seqstream_drain,
    _settings,
)

acc: collections.Counter[str] = collections.Counter()
cnt: collections.Counter[str] = collections.Counter()
getmany_log: list[tuple[float, float, int, int, int]] = []


def wrap_async(cls: Any, name: str) -> None:
    f = getattr(cls, name)

    async def w(self: Any, *a: Any, **k: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        try:
            return await f(self, *a, **k)
        finally:
            acc[name + ".wall"] += time.perf_counter() - t
            acc[name + ".cpu"] += time.process_time() - c
            cnt[name] += 1

    setattr(cls, name, w)


def wrap(cls: Any, name: str) -> None:
    f: Callable[..., Any] = getattr(cls, name)

    def w(self: Any, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return f(self, *a, **k)
        finally:
            acc[name + ".wall"] += time.perf_counter() - t
            cnt[name] += 1

    setattr(cls, name, w)


def log_getmany() -> None:
    f = aiokafka_consumer.AIOKafkaConsumer.getmany

    async def getmany(self: Any, *a: Any, **k: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        r = await f(self, *a, **k)
        fetcher = self._fetcher
        getmany_log.append(
            (
                round((time.perf_counter() - t) * 1000, 1),
                round((time.process_time() - c) * 1000, 1),
                sum(map(len, r.values())),
                len(fetcher._records),
                len(fetcher._in_flight),
            )
        )
        return r

    aiokafka_consumer.AIOKafkaConsumer.getmany = getmany  # type: ignore[method-assign]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 200000
    parts = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 8
    kind = "tansu" if "--tansu" in sys.argv else "kafka"
    for name in ("_fetch", "process", "settle"):
        wrap_async(engine.BatchEngine, name)
    wrap(engine.BatchEngine, "_run_pipeline")
    wrap_async(producer.BulkProducer, "send_all")
    wrap(manager.StateManager, "admit")
    wrap_async(manager.StateManager, "maybe_snapshot")
    log_getmany()
    with _broker(None, kind) as broker:
        bs = broker.bootstrap
        pid = broker.proc.pid if broker.proc is not None else None
        rid = uuid.uuid4().hex[:6]
        t_in, out, t_raw = f"in-{rid}", f"out-{rid}", f"raw-{rid}"
        create_topics(bs, [t_in, t_raw], partitions=parts)
        create_topics(bs, [f"{out}{s}" for s in ("", "-alerts", "-dead")], partitions=parts)
        asyncio.run(_produce_backlog(bs, t_in, _sensor_messages(10000, n, time.time() - 86400.0, 1e-3)))
        if "--raw" in sys.argv:
            print("raw", asyncio.run(_raw_passthrough(bs, t_in, t_raw, n, 4096, pid)))
        getmany_log.clear()
        t0 = time.perf_counter()
        prof = "tansu" if kind == "tansu" else "production"
        st = _settings(bs, t_in, out, int(os.environ.get("BMAX", "4096")), prof)
        res = asyncio.run(_seqstream_drain(st, n, "shipped", 64, pid))
        print("seq", res, "total wall", time.perf_counter() - t0)
        print(getmany_log)
        for k in sorted(acc):
            print(f"{k:28s} {acc[k]:8.3f}  n={cnt[k.split('.')[0]]}")


if __name__ == "__main__":
    main()
