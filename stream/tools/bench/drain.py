"""The throughput paths of ``seqstream bench`` and what they stand on.

* the broker: a fresh local Apache Kafka or Tansu (:func:`_broker`, :func:`_default_kind`), or one of
  your own (:class:`_ExternalBroker`);
* the backlog: :func:`_sensor_messages` pre-produced by :func:`_produce_backlog`;
* its two drains: :func:`_raw_passthrough` (the ceiling: a plain aiokafka at-least-once
  pass-through, no decoding) and :func:`_seqstream_drain` (the real engine in this process);
* the engine they and the latency child run: :func:`_runner`, :func:`_settings`, :func:`_engine`
  (``bench/pipeline_bench.py`` and ``bench/resident_bound.py`` build on the last two);
* :class:`_CpuWindow`: the cores this process and the broker used while a path ran.

Nothing here imports the other modules of the package: they build on it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any

import numpy as np
import orjson

SHIPPED = "shipped"  # the cell name of the primary configuration: the bundled sensor checkpoint and scoring


# -- what a path costs: this process's memory, the cores of this process and of the broker ---------
def _rss_mb() -> float:
    """Resident set size of this process (MB; Linux ``/proc``, NaN elsewhere)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, s) a process has used so far (Linux ``/proc``; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class _CpuWindow:
    """Cores used by this process and by the broker between :meth:`start` and :meth:`stop`."""

    def __init__(self, broker_pid: int | None) -> None:
        self.pid = broker_pid
        self.t0 = self.own0 = 0.0
        self.b0: float | None = None
        self.result: dict[str, float | None] = {"cpu": None, "broker_cpu": None}

    def start(self) -> None:
        self.t0, self.own0 = time.perf_counter(), time.process_time()
        self.b0 = _cpu_seconds(self.pid) if self.pid else None

    def stop(self) -> None:
        if not self.t0:  # the window never opened (the drain ended first): nothing measured
            return
        wall = max(time.perf_counter() - self.t0, 1e-9)
        b1 = _cpu_seconds(self.pid) if self.pid else None
        self.result = {
            "cpu": round((time.process_time() - self.own0) / wall, 2),
            "broker_cpu": round((b1 - self.b0) / wall, 2) if b1 is not None and self.b0 is not None else None,
        }


# -- the backlog and its two drains: the raw ceiling, then the engine (_seqstream_drain, below) ----
def _sensor_messages(streams: int, n: int, t0: float, dt: float) -> list[tuple[bytes, bytes]]:
    """``n`` sensor events cycling over ``streams`` streams; event i has ts = t0 + i*dt."""
    rng = np.random.default_rng(0)
    xs = rng.standard_normal(n).astype(np.float64).tolist()
    out = []
    for i in range(n):
        sid = f"s-{i % streams:07d}"
        out.append((sid.encode(), orjson.dumps({"stream": sid, "ts": t0 + i * dt, "values": [xs[i]]})))
    return out


async def _produce_backlog(bootstrap: str, topic: str, msgs: list[tuple[bytes, bytes]]) -> float:
    """Produce ``msgs`` to ``topic`` ahead of a drain; returns the produce rate (events/s)."""
    from aiokafka import AIOKafkaProducer

    from stream.producer import BulkProducer, Output

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await p.start()
    t0 = time.perf_counter()
    try:
        bulk = BulkProducer(p)
        for i in range(0, len(msgs), 20000):
            futs = await bulk.send_all([Output(topic, k, v) for k, v in msgs[i : i + 20000]])
            await asyncio.gather(*futs)
    finally:
        await p.stop()
    return len(msgs) / (time.perf_counter() - t0)


async def _forward(p: Any, data: dict[Any, list[Any]], out_topic: str) -> tuple[list[Any], dict[Any, int], int]:
    """A raw pass-through's step: each input partition's records, undecoded, to the partition of the same
    number of ``out_topic`` (:func:`stream.producer.send_records`: one ``send_batch`` per producer batch).
    Returns the sends' futures (their acks), each input partition's next offset and the records forwarded."""
    from stream.producer import send_records

    futs, offsets, got = [], {}, 0
    for tp, recs in data.items():
        futs += await send_records(p, out_topic, tp.partition, recs)
        offsets[tp] = recs[-1].offset + 1
        got += len(recs)
    return futs, offsets, got


async def _raw_passthrough(
    bootstrap: str,
    topic: str,
    out_topic: str,
    n: int,
    batch_max: int,
    broker_pid: int | None = None,
    pipelined: bool = True,
) -> dict[str, Any]:
    """The ceiling: a plain aiokafka consumer forwards ``n`` backlog records to ``out_topic`` (one
    ``send_batch`` per partition, no decoding) with seqstream's guarantee: at least once, input offsets
    committed only after the broker acknowledged the outputs made from them.

    ``pipelined`` (the fair ceiling, as the engine runs with ``inflight_batches=2``): batch i's acks are
    awaited after batch i+1 was sent, so fetching and sending overlap the acks' round trip.
    ``pipelined=False``: every batch's acks are awaited before the next fetch (the serial floor)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=4 << 20,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, max_batch_size=1 << 20, acks="all")
    await p.start()
    await c.start()
    done = 0
    t_first = t_end = 0.0
    first_n = 0
    cpu = _CpuWindow(broker_pid)
    pending: tuple[list[Any], dict[Any, int]] | None = None  # the previous batch: (ack futures, offsets)
    try:
        while done < n:
            data = await c.getmany(timeout_ms=200, max_records=batch_max)
            if not data:
                continue
            if not t_first:
                t_first = time.perf_counter()
                cpu.start()
            futs, offsets, got = await _forward(p, data, out_topic)
            if pipelined:  # this batch is on its way: now settle the previous one (acks, then its offsets)
                if pending is not None:
                    await asyncio.gather(*pending[0])
                    await c.commit(pending[1])
                pending = (futs, offsets)
            else:
                await asyncio.gather(*futs)
                await c.commit(offsets)
            if not first_n:
                first_n = got
            done += got
        if pending is not None:
            await asyncio.gather(*pending[0])
            await c.commit(pending[1])
        t_end = time.perf_counter()
        cpu.stop()
    finally:
        await c.stop()
        await p.stop()
    rate = (done - first_n) / max(t_end - t_first, 1e-9) if done > first_n else float("nan")  # NaN: one batch
    return {"events": done, "events_per_s": rate, **cpu.result}


# -- the broker -----------------------------------------------------------------------------------
class _ExternalBroker:
    """A Kafka broker that is already running (``--broker``): nothing to start or stop, no process to watch."""

    proc = None

    def __init__(self, url: str) -> None:
        # host:port[,host:port...], each optionally kafka://host:port
        self.bootstrap = ",".join(u.strip().removeprefix("kafka://") for u in url.split(",") if u.strip())

    def __enter__(self) -> _ExternalBroker:
        # down, a malformed URL, TLS or SASL refused: one line and exit 2 before any scenario starts
        from stream.preflight import preflight
        from stream.settings import load_settings

        preflight(load_settings(broker_url=",".join(f"kafka://{hp}" for hp in self.bootstrap.split(","))))
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _broker(url: str | None, kind: str = "kafka") -> Any:
    """A fresh local broker of ``kind`` (Apache Kafka or Tansu), or the broker at ``url``."""
    if url is not None:
        return _ExternalBroker(url)
    if kind == "kafka":
        from stream.tools.kafka_broker import KafkaBroker

        return KafkaBroker(heap="1g")
    from stream.tools.brokers import EmbeddedBroker

    return EmbeddedBroker()


def _default_kind() -> str:
    """Apache Kafka where it can be started here (Java, and Maven or the jars already resolved), else Tansu,
    saying why on stderr (the numbers of the two brokers differ a lot: docs/benchmarks.md)."""
    import shutil

    from stream.tools.kafka_broker import kafka_classpath

    try:
        if shutil.which("java") is None:
            raise RuntimeError("no java on PATH")
        kafka_classpath(fetch=shutil.which("mvn") is not None)
    except Exception as exc:
        print(f"seqstream bench: Apache Kafka cannot start here ({exc}); running on Tansu instead", file=sys.stderr)
        return "tansu"
    return "kafka"


# -- the engine: the one pipeline the drains, the latency child and the model-only scenarios run ----
def _runner(cell: str, hidden: int, capacity: int = 1024, max_capacity: int = 1 << 20) -> Any:
    """The shipped sensor detector (``cell == "shipped"``), or an untrained model with the plain scoring."""
    import torch

    from models import NetConfig, RecurrentForecaster, Runner, ScoringConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if cell == SHIPPED:
        from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

        ck = load_checkpoint(DEFAULT_CHECKPOINT)  # the bundled sensor_gru.pt
        return Runner(
            ck.model, ck.scoring, device="cpu", capacity=capacity, max_capacity=max_capacity, model_id=ck.model_id
        )
    model = RecurrentForecaster(NetConfig(cell=cell, input_size=1, hidden_size=hidden))  # type: ignore[arg-type]
    return Runner(
        model,
        ScoringConfig(),
        device="cpu",
        capacity=capacity,
        max_capacity=max_capacity,
        model_id=f"bench-{cell}{hidden}",
    )


def _settings(bootstrap: str, topic: str, out_topic: str, batch_max: int, profile: str = "tansu", **extra: Any) -> Any:
    """Worker settings for one path: the sensors source on ``topic``, outputs on ``out_topic`` and its
    ``-alerts``/``-dead``/``-state`` topics, a fresh consumer group, CPU; ``extra``: more fields."""
    from stream.settings import Settings

    return Settings(
        broker_url=f"kafka://{bootstrap}",
        profile=profile,  # type: ignore[arg-type]  # "tansu" or "production", checked by Settings
        sources=("sensors",),
        topics={"sensors": topic},  # the sensors source reads the backlog topic
        topic_predictions=out_topic,
        topic_alerts=f"{out_topic}-alerts",
        topic_dead_letter=f"{out_topic}-dead",
        topic_state=f"{out_topic}-state",
        consumer_group=f"bench-{uuid.uuid4().hex[:8]}",
        batch_max=batch_max,
        device="cpu",
        slab_capacity=1024,
        **extra,
    )


def _engine(settings: Any, cell: str, hidden: int) -> Any:
    """A :class:`stream.engine.BatchEngine` with one sensors pipeline over :func:`_runner`."""
    from stream.engine import BatchEngine
    from stream.metrics import Metrics
    from stream.pipeline import SourcePipeline

    metrics = Metrics()
    pipe = SourcePipeline("sensors", _runner(cell, hidden), settings, metrics)
    return BatchEngine(settings, {"sensors": pipe}, metrics)


# -- the seqstream drain ---------------------------------------------------------------------------
async def _seqstream_drain(
    settings: Any, n: int, cell: str, hidden: int, broker_pid: int | None = None
) -> dict[str, Any]:
    """The real :class:`stream.engine.BatchEngine` in this process draining ``n`` backlog events."""
    eng = _engine(settings, cell, hidden)
    await eng.start()
    task = asyncio.create_task(eng.run())
    t_first = 0.0
    first_n = 0
    deadline = time.monotonic() + 180
    cpu = _CpuWindow(broker_pid)
    try:
        while eng.events < n and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
            # the window opens after the first settled batch and the one-time heap freeze that follows
            # it (a full collection of this process's heap; SEQSTREAM_GC_FREEZE), like the group join
            # before it: start-up, not steady state
            if not t_first and eng.events and (eng._frozen or not settings.gc_freeze):
                t_first, first_n = time.perf_counter(), eng.events
                cpu.start()
        t_end = time.perf_counter()
        cpu.stop()
        rss = _rss_mb()
    finally:
        await eng.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    pipe = eng.pipelines["sensors"]
    return {
        "events": eng.events,
        "batches": eng.batches,
        "mean_batch": eng.events / max(eng.batches, 1),
        # NaN: the drain ended before its window opened (a backlog of one batch, or the deadline)
        "events_per_s": (eng.events - first_n) / max(t_end - t_first, 1e-9) if t_first else float("nan"),
        "resident_streams": len(pipe.runner.slab),
        "rss_mb": round(rss, 1),
        "snapshots": eng.state.snapshots_written,  # partition snapshots written during the drain
        "snapshot_s": round(eng.state.snapshot_seconds_total, 3),  # time spent writing them
        **cpu.result,  # cores of this process (the engine) and of the broker while draining
    }
