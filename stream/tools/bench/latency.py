"""The latency scenarios of ``seqstream bench``: a child process that forwards, this process that
produces at a fixed rate and reads the outputs back.

* the children: :func:`_latency_child` (the engine) and :func:`_raw_latency_child` (the floor: a
  plain aiokafka pass-through); the third path, the broker alone, needs none;
* :func:`_latency_level`: one rate for some seconds, latency = receive time - event ``ts``;
* :func:`_latency_levels`: a child started, warmed, then one level per rate.

The children run in spawned processes (``multiprocessing`` "spawn"), so they are module-level functions.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
import uuid
from typing import Any

import numpy as np
import orjson

from .drain import _CpuWindow, _engine, _settings


def _latency_child(settings_json: str, cell: str, hidden: int, ready: Any, stop: Any) -> None:
    """The engine until ``stop`` is set; ``ready`` once it holds its partitions. (Its settings come as
    JSON: what a spawned child can be handed.)"""
    from stream.settings import Settings

    settings = Settings(**json.loads(settings_json))

    async def go() -> None:
        eng = _engine(settings, cell, hidden)
        await eng.start()
        task = asyncio.create_task(eng.run())
        while not eng.consumer.assignment():
            await asyncio.sleep(0.05)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await eng.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())


def _raw_latency_child(bootstrap: str, topic: str, out_topic: str, profile: str, ready: Any, stop: Any) -> None:
    """The latency ceiling: a plain aiokafka consume -> produce -> acks -> commit loop (no decoding)."""

    async def go() -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        from stream.producer import BulkProducer, Output

        s = _settings(bootstrap, topic, out_topic, 4096, profile)
        c = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"raw-lat-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            auto_offset_reset="latest",
            # answered at the first byte (the engine holds a fetch for 64 KiB or this wait while records
            # flow): the lowest latency the client and broker give, the floor to compare with
            fetch_max_wait_ms=s.fetch_wait_ms,
            session_timeout_ms=int(s.broker_session_timeout * 1000),
            heartbeat_interval_ms=int(s.broker_heartbeat_interval * 1000),
        )
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=s.producer_linger_ms, max_batch_size=1 << 20)
        await c.start()
        await p.start()
        bulk = BulkProducer(p)
        while not c.assignment():
            await c.getmany(timeout_ms=100)
        ready.set()
        while not stop.is_set():
            data = await c.getmany(timeout_ms=200, max_records=4096)
            outs = [Output(out_topic, r.key, r.value) for recs in data.values() for r in recs]
            if outs:
                await asyncio.gather(*await bulk.send_all(outs))
                await c.commit({tp: recs[-1].offset + 1 for tp, recs in data.items() if recs})
        await c.stop()
        await p.stop()

    asyncio.run(go())


async def _latency_level(
    bootstrap: str,
    topic: str,
    out_topic: str,
    streams: int,
    rate: float,
    seconds: float,
    broker_pid: int | None = None,
    reader_wait_ms: int = 5,
) -> dict[str, Any]:
    """Produce at ``rate`` for ``seconds`` (rounds every 5 ms) and read the outputs back.

    ``out_topic == topic`` reads the input itself: one producer -> broker -> consumer hop, the
    broker's own latency at that rate. ``broker_cpu``: cores the broker process used meanwhile.
    ``reader_wait_ms``: the reader's fetch wait.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from stream.producer import BulkProducer, Output

    c = AIOKafkaConsumer(
        out_topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        fetch_max_wait_ms=reader_wait_ms,
        group_id=None,
    )
    await c.start()
    await c.seek_to_end()
    await asyncio.sleep(0.5)
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, max_batch_size=1 << 20)
    await p.start()
    bulk = BulkProducer(p)
    lat: list[float] = []
    produced = 0
    stop = asyncio.Event()
    rng = np.random.default_rng(1)

    t_level = time.time()  # outputs of events produced before this level (a lagging warm-up) are skipped

    async def reader() -> None:
        while not stop.is_set() or len(lat) < produced:
            data = await c.getmany(timeout_ms=100, max_records=10000)
            now = time.time()
            for recs in data.values():
                for r in recs:
                    ts = orjson.loads(r.value)["ts"]
                    if ts >= t_level:
                        lat.append(now - ts)
            if stop.is_set() and not data:
                break

    rtask = asyncio.create_task(reader())
    tick = 0.005
    cpu = _CpuWindow(broker_pid)  # "cpu": the load generator and the reader (this process)
    cpu.start()
    t0 = time.monotonic()
    k = 0
    pending: list[Any] = []
    while time.monotonic() - t0 < seconds:
        k += 1
        target = int(rate * (time.monotonic() - t0))
        m = target - produced
        if m > 0:
            now = time.time()
            xs = rng.standard_normal(m).tolist()
            outs = []
            for j in range(m):
                sid = f"s-{(produced + j) % streams:07d}"
                outs.append(Output(topic, sid.encode(), orjson.dumps({"stream": sid, "ts": now, "values": [xs[j]]})))
            pending.extend(await bulk.send_all(outs))
            produced += m
            if len(pending) > 64:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.sleep(max(0.0, t0 + k * tick - time.monotonic()))
    await asyncio.gather(*pending)
    achieved = produced / (time.monotonic() - t0)
    cpu.stop()
    t_wait = time.monotonic()
    while len(lat) < produced and time.monotonic() - t_wait < 15:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(rtask, 5)
    await p.stop()
    await c.stop()
    a = np.asarray(lat) * 1000.0
    # skip the first 10 % (warm-up after the idle gap)
    a = a[len(a) // 10 :] if len(a) > 100 else a
    q = (lambda x: round(float(np.percentile(a, x)), 2)) if len(a) else (lambda x: float("nan"))
    return {
        "target_rate": round(rate),
        "achieved_rate": round(achieved),
        "produced": produced,
        "received": len(lat),
        "p50_ms": q(50),
        "p99_ms": q(99),
        "p999_ms": q(99.9),
        "max_ms": round(float(a.max()), 2) if len(a) else float("nan"),
        "broker_cpu": cpu.result["broker_cpu"],
        "load_cpu": cpu.result["cpu"],
    }


def _latency_levels(
    target: Any,
    child_args: tuple[Any, ...],
    bootstrap: str,
    topic: str,
    out_topic: str,
    streams: int,
    rates: list[tuple[float, float]],
    seconds: float,
    warm_rate: float,
    warm_s: float,
    broker_pid: int | None = None,
    reader_wait_ms: int = 5,
) -> list[tuple[float, dict[str, Any]]]:
    """Start ``target(*child_args, ready, stop)`` in a child process, warm it, run each latency level.

    ``target=None``: no child; the levels read ``out_topic`` as it is (the broker-only hop).
    """

    def levels() -> list[tuple[float, dict[str, Any]]]:
        asyncio.run(_latency_level(bootstrap, topic, out_topic, streams, warm_rate, warm_s, None, reader_wait_ms))
        return [
            (
                frac,
                asyncio.run(
                    _latency_level(bootstrap, topic, out_topic, streams, rate, seconds, broker_pid, reader_wait_ms)
                ),
            )
            for frac, rate in rates
        ]

    if target is None:
        return levels()
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(target=target, args=(*child_args, ready, stop))
    child.start()
    try:
        if not ready.wait(60):
            raise RuntimeError(f"{target.__name__}: no partitions assigned within 60 s")
        return levels()
    finally:
        stop.set()
        child.join(30)
        if child.is_alive():
            child.terminate()
