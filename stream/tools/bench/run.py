"""``seqstream bench``: end-to-end throughput, latency, step and memory benchmarks in one run.

Starts its own broker: Apache Kafka (:class:`stream.tools.kafka_broker.KafkaBroker`, the default where Java
and Maven are installed) or Tansu (``--broker-kind tansu``, :class:`stream.tools.brokers.EmbeddedBroker`);
``--broker HOST:PORT`` uses a Kafka of your own instead. Prints one JSON line per scenario, then a
Markdown table. The primary configuration is the shipped detector (``--primary shipped``: the
bundled sensor checkpoint with its scoring) at 10k streams; ``--primary plain`` makes it the first
cell and hidden size of the matrix instead. Scenarios (all measured in the same run, so ratios hold):

* ``raw_passthrough``: the ceiling. A plain aiokafka consumer (``getmany``) forwards a pre-produced
  backlog of the same sensor messages to an output topic (one ``send_batch`` per partition, acks
  awaited, offsets committed), no decoding.
* ``seqstream``: for every (streams, cell, hidden) of ``--streams`` x ``--cell`` x ``--hidden``
  (default 1k/10k/100k x GRU/LSTM x 64/128), the real :class:`stream.engine.BatchEngine` in this
  process (aiokafka consumer in its consumer group, :class:`stream.pipeline.SourcePipeline`
  decode -> state -> model -> score -> encode, bulk produce, commit, state snapshots, explorer
  buffers) draining the same backlog; the rate is counted from the first processed batch (and the
  one-time heap freeze after it) to the last event (group join excluded).
* ``per_event``: the naive baseline, one ``Runner.process`` per event (model work only, no Kafka:
  an upper bound of what a per-event consumer reaches), and ``rerun64``: re-running the last 64
  steps of the stream from a zero state per event (``model.forward`` on a [1, 64, F] window).
* ``latency``: the engine in a child process; this process produces at 10/25/50/90 % of the measured
  seqstream drain rate and reads the ``predictions`` topic; latency = receive time - event ``ts``.
  The floors at the same rates: ``latency_raw`` (a plain aiokafka pass-through child instead of the
  engine) and ``latency_broker`` (the input topic read back: one hop through the broker, nothing
  in between). Each level records the cores the broker process used (``broker_cpu``). Each of the
  three paths runs on a fresh broker of its own (Tansu slows down as it fills up; on Kafka it keeps
  the paths apart).
* ``--rounds``: more (raw pass-through, primary drain) pairs, alternating; the ratio is their median.
* ``model_step``: ``bench/step_bench.py``'s ``model_step`` and ``batched`` cells by batch size.
* ``memory``: a CPU Runner with N resident streams in a child process: slab bytes per stream vs
  the raw tensor bytes, and process RSS.

Example:
    $ seqstream bench                         # on a fresh local Apache Kafka; ~8 minutes on 2 cores
    $ seqstream bench --broker-kind tansu     # the same on the embedded Tansu
    $ seqstream bench --quick                 # smaller backlog and shorter latency levels
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = ["main", "register_args"]

ROOT = Path(__file__).resolve().parents[3]


def _emit(rec: dict[str, Any], out: list[dict[str, Any]]) -> None:
    out.append(rec)
    print(json.dumps(rec), flush=True)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _values(streams: int, n: int, t0: float, dt: float) -> list[tuple[bytes, bytes]]:
    """``n`` sensor events cycling over ``streams`` streams; event i has ts = t0 + i*dt."""
    rng = np.random.default_rng(0)
    xs = rng.standard_normal(n).astype(np.float64).tolist()
    out = []
    for i in range(n):
        sid = f"s-{i % streams:07d}"
        out.append((sid.encode(), orjson.dumps({"stream": sid, "ts": t0 + i * dt, "values": [xs[i]]})))
    return out


async def _produce_backlog(bootstrap: str, topic: str, msgs: list[tuple[bytes, bytes]]) -> float:
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


async def _raw_passthrough(
    bootstrap: str, topic: str, out_topic: str, n: int, batch_max: int, broker_pid: int | None = None
) -> dict[str, Any]:
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
    try:
        while done < n:
            data = await c.getmany(timeout_ms=200, max_records=batch_max)
            if not data:
                continue
            if not t_first:
                t_first = time.perf_counter()
                cpu.start()
            futs = []
            offsets = {}
            got = 0
            for tp, recs in data.items():
                b = p.create_batch()
                for r in recs:
                    if b.append(key=r.key, value=r.value, timestamp=None) is None:
                        futs.append(await p.send_batch(b, out_topic, partition=tp.partition))
                        b = p.create_batch()
                        b.append(key=r.key, value=r.value, timestamp=None)
                if b.record_count():
                    futs.append(await p.send_batch(b, out_topic, partition=tp.partition))
                offsets[tp] = recs[-1].offset + 1
                got += len(recs)
            await asyncio.gather(*futs)
            await c.commit(offsets)
            if not first_n:
                first_n = got
            done += got
        t_end = time.perf_counter()
        cpu.stop()
    finally:
        await c.stop()
        await p.stop()
    rate = (done - first_n) / max(t_end - t_first, 1e-9) if done > first_n else float("nan")  # NaN: one batch
    return {"events": done, "events_per_s": rate, **cpu.result}


class _External:
    """A Kafka broker that is already running (``--broker``): nothing to start or stop, no process to watch."""

    proc = None

    def __init__(self, url: str) -> None:
        # host:port[,host:port...], each optionally kafka://host:port
        self.bootstrap = ",".join(u.strip().removeprefix("kafka://") for u in url.split(",") if u.strip())

    def __enter__(self) -> _External:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _broker(url: str | None, kind: str = "kafka") -> Any:
    """A fresh local broker of ``kind`` (Apache Kafka or Tansu), or the broker at ``url``."""
    if url is not None:
        return _External(url)
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


SHIPPED = "shipped"  # the cell name of the primary configuration: the bundled sensor checkpoint and scoring


def _label(cell: str, hidden: int) -> str:
    return "shipped detector (sensor_gru.pt)" if cell == SHIPPED else f"{cell}-{hidden}"


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
    from stream.settings import Settings

    return Settings(
        broker_url=f"kafka://{bootstrap}",
        profile=profile,  # type: ignore[arg-type]  # "tansu" or "production", checked by Settings
        sources=("sensors",),
        topic_sensors=topic,
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
    from stream.engine import BatchEngine
    from stream.metrics import Metrics
    from stream.pipeline import SourcePipeline

    metrics = Metrics()
    pipe = SourcePipeline("sensors", _runner(cell, hidden), settings, metrics)
    return BatchEngine(settings, {"sensors": pipe}, metrics)


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


async def _seqstream_drain(
    settings: Any, n: int, cell: str, hidden: int, broker_pid: int | None = None
) -> dict[str, Any]:
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


def _latency_child(settings_json: str, cell: str, hidden: int, ready: Any, stop: Any) -> None:
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
            fetch_max_wait_ms=s.fetch_wait_ms,  # the engine's fetch wait, for a like-for-like floor
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


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, s) a process has used so far (Linux ``/proc``; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


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


def _per_event(cell: str, hidden: int, streams: int, n: int) -> dict[str, Any]:
    import torch

    from models import Batch

    runner = _runner(cell, hidden, capacity=streams)
    model = runner.model
    ids = [f"s-{i:07d}" for i in range(streams)]
    runner.process(Batch(ids, np.zeros(streams), np.zeros((streams, 1), np.float32)))  # resident
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((n, 1, 1)).astype(np.float32)
    evs = [Batch([ids[(i * 7919) % streams]], np.array([1.0 + i]), xs[i]) for i in range(n)]
    t0 = time.perf_counter()
    for b in evs:
        runner.process(b)
    per_event = n / (time.perf_counter() - t0)
    # re-run the last 64 steps from a zero state per event
    m = max(50, n // 20)
    win = torch.randn(1, 64, 1)
    with torch.inference_mode():
        model(win)
        t0 = time.perf_counter()
        for _ in range(m):
            model(win)
        rerun = m / (time.perf_counter() - t0)
    return {"per_event_events_per_s": per_event, "rerun64_events_per_s": rerun, "events": n, "rerun_events": m}


def _memory_child(n: int, cell: str, hidden: int, q: Any) -> None:
    from models import Batch

    rss0 = _rss_mb()
    runner = _runner(cell, hidden, capacity=n, max_capacity=n)
    model = runner.model
    rss_empty = _rss_mb()
    chunk = 65536
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        ids = [f"s-{i:07d}" for i in range(a, b)]
        runner.process(Batch(ids, np.zeros(b - a), np.zeros((b - a, 1), np.float32)))
    rss = _rss_mb()
    slab = runner.slab
    c = model.config
    raw = 4 * (c.num_layers * c.state_parts * c.hidden_size + runner.scorer.size)
    q.put(
        {
            "resident_streams": len(slab),
            "slab_bytes_per_stream": slab.bytes_per_stream,
            "raw_tensor_bytes_per_stream": raw,
            "slab_vs_raw": round(slab.bytes_per_stream / raw, 3),
            "slab_mb": round(slab.nbytes / 2**20, 1),
            "rss_mb": round(rss, 1),
            "rss_before_torch_model_mb": round(rss0, 1),
            "rss_growth_per_stream_bytes": round((rss - rss_empty) * 2**20 / n, 1),
        }
    )


def _step_cells(cell: str, hidden: int, batches: list[int], budget: float) -> list[dict[str, Any]]:
    import torch

    if cell == SHIPPED:  # the shipped detector's cell
        cell, hidden = "gru", 64

    sys.path.insert(0, str(ROOT / "bench"))
    import step_bench  # type: ignore[import-not-found]

    torch.set_num_threads(1)
    dev = torch.device("cpu")
    out = []
    for b in batches:
        for mode, fn in (("model_step", step_bench.bench_model_step), ("batched", step_bench.bench_batched)):
            t = fn(cell, hidden, b, dev, budget)
            per_call = float(np.median(t.reported()))
            out.append({"mode": mode, "batch": b, "stream_steps_per_s": b / per_call})
    return out


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


def _rounds(
    args: argparse.Namespace,
    bs: str,
    pid: int | None,
    prof: str,
    t_in: str,
    t_raw: str,
    out_prefix: str,
    seq: dict[str, Any],
    common: dict[str, Any],
    records: list[dict[str, Any]],
) -> None:
    """Rounds 2.. of (raw pass-through, primary drain at its best batch_max), alternating, so the
    ratio is a median over pairs measured a minute apart rather than one pair of drains. They run
    right after the first round, while the broker holds no more than the primary backlog."""
    from stream.admin import create_topics

    bmax, bm = max(args.batch_max), seq["batch_max"]
    for rnd in range(1, args.rounds):
        raw = asyncio.run(_raw_passthrough(bs, t_in, t_raw, args.events, bmax, pid))
        _emit({"scenario": "raw_passthrough", "batch_max": bmax, "round": rnd, **raw, **common}, records)
        out = f"{out_prefix}-{bm}-r{rnd}"
        create_topics(bs, [f"{out}{sfx}" for sfx in ("", "-alerts", "-dead")], partitions=args.partitions)
        res = asyncio.run(
            _seqstream_drain(_settings(bs, t_in, out, bm, prof), args.events, common["cell"], common["hidden"], pid)
        )
        row = {"scenario": "seqstream", "mode": "engine in-process", "batch_max": bm, **res, **common}
        _emit({**row, "primary": True, "round": rnd}, records)


def _fmt(r: float) -> str:
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.1f} k"


def run(args: argparse.Namespace) -> int:
    import logging

    from stream.admin import create_topics

    for name in ("aiokafka", "stream", "faust"):  # JSON lines and the table only
        logging.getLogger(name).setLevel(logging.WARNING)
    records: list[dict[str, Any]] = []
    t_start = time.time()
    # the primary configuration (10k streams, the first cell and hidden size) carries the ratios,
    # the latency levels, the per-event baseline, the step cells and the memory scenario; every other
    # (streams, cell, hidden) of the matrix gets one drain at the largest batch_max
    streams = 10000 if 10000 in args.streams else args.streams[0]
    cell, hidden = (SHIPPED, 64) if args.primary == SHIPPED else (args.cell[0], args.hidden[0])
    n = args.events
    common = {"cell": cell, "hidden": hidden, "streams": streams}
    kind = args.broker_kind or ("kafka" if args.broker is not None else _default_kind())
    # Tansu's quirks only in its own profile; Apache Kafka (ours or --broker) with the production one
    prof = args.profile or ("tansu" if kind == "tansu" and args.broker is None else "production")
    print(f"seqstream bench on {'the broker at ' + args.broker if args.broker else 'a local ' + kind} ({prof} profile)")
    with _broker(args.broker, kind) as broker:
        bs = broker.bootstrap
        pid = broker.proc.pid if broker.proc is not None else None
        parts = args.partitions
        run_id = uuid.uuid4().hex[:6]
        t_raw, t_out = f"raw-out-{run_id}", f"pred-{run_id}"
        create_topics(bs, [t_raw], partitions=parts)
        bmax = max(args.batch_max)
        seq: dict[str, Any] = {}
        for st in sorted(args.streams, key=lambda k: k != streams):  # the primary stream count first
            t_in = f"in-{run_id}-{st}"
            create_topics(bs, [t_in], partitions=parts)
            msgs = _values(st, n, time.time() - 86400.0, 1e-3)
            prate = asyncio.run(_produce_backlog(bs, t_in, msgs))
            del msgs
            here = {"cell": cell, "hidden": hidden, "streams": st}
            _emit({"scenario": "produce_backlog", "events": n, "events_per_s": round(prate), **here}, records)
            if st == streams:
                raw = asyncio.run(_raw_passthrough(bs, t_in, t_raw, n, bmax, pid))
                _emit({"scenario": "raw_passthrough", "batch_max": bmax, "round": 0, **raw, **here}, records)
            matrix = [(c, h) for c in args.cell for h in args.hidden]
            if st == streams and (cell, hidden) not in matrix:
                matrix.insert(0, (cell, hidden))  # the shipped detector: the primary configuration
            for c, h in matrix:
                primary = (st, c, h) == (streams, cell, hidden)
                for bm in args.batch_max if primary else [bmax]:
                    # every drain: a fresh consumer group over the backlog and its own output topics
                    # (and so its own state changelog: a second drain must not restore the first one's
                    # snapshots and treat the backlog as already processed)
                    out = f"{t_out}-{st}-{c}{h}-{bm}"
                    create_topics(bs, [f"{out}{sfx}" for sfx in ("", "-alerts", "-dead")], partitions=parts)
                    res = asyncio.run(_seqstream_drain(_settings(bs, t_in, out, bm, prof), n, c, h, pid))
                    row = {"cell": c, "hidden": h, "streams": st, "primary": primary}
                    if primary:
                        row["round"] = 0
                    _emit(
                        {"scenario": "seqstream", "mode": "engine in-process", "batch_max": bm, **res, **row},
                        records,
                    )
                    if primary and res["events_per_s"] > seq.get("events_per_s", 0.0):
                        seq = {**res, "batch_max": bm}
                if primary:  # more rounds now, before the rest of the matrix fills the broker
                    _rounds(args, bs, pid, prof, t_in, t_raw, f"{t_out}-{st}-{c}{h}", seq, common, records)
                    if prof == "production" and args.exactly_once:  # the cost of transactions, same backlog
                        bm, out = seq["batch_max"], f"{t_out}-{st}-{c}{h}-eos"
                        create_topics(bs, [f"{out}{sfx}" for sfx in ("", "-alerts", "-dead")], partitions=parts)
                        eos = _settings(bs, t_in, out, bm, prof, guarantee="exactly_once")
                        res = asyncio.run(_seqstream_drain(eos, n, c, h, pid))
                        row = {"cell": c, "hidden": h, "streams": st, "primary": False, "guarantee": "exactly_once"}
                        _emit(
                            {"scenario": "seqstream", "mode": "engine in-process", "batch_max": bm, **res, **row},
                            records,
                        )

        pe = _per_event(cell, hidden, streams, args.per_event_n)
        _emit({"scenario": "per_event", **pe, **common}, records)

    # latency: the engine in a child process, this process produces and reads; then the same rates
    # through a plain pass-through child and through the broker alone (the floors). Each path on a
    # fresh broker of its own: Tansu (memory storage) answers more slowly the more it holds, and
    # the drains above leave millions of records in it
    if args.latency_seconds > 0:
        rates = [(frac, frac * seq["events_per_s"]) for frac in args.latency_fractions]
        # warm: make every stream resident so the levels measure steady state
        paths = [("latency", (min(streams * 2.0, 20000.0), streams / 10000.0 + 1.0))]
        if args.latency_raw:
            paths += [("latency_raw", (2000.0, 1.0)), ("latency_broker", (2000.0, 1.0))]
        for scenario, (warm_rate, warm_s) in paths:
            with _broker(args.broker, kind) as lb:  # (on a broker of your own: the same one, new topics)
                lbs, t_lin, t_lout = lb.bootstrap, f"{scenario}-in-{run_id}", f"{scenario}-out-{run_id}"
                target: Any = None
                child_args: tuple[Any, ...] = ()
                wait = 5  # the reader of an output topic: short, so it adds little latency of its own
                if scenario == "latency":
                    outs = [f"{t_lout}{sfx}" for sfx in ("", "-alerts", "-dead")]
                    create_topics(lbs, [t_lin, *outs], partitions=args.partitions)
                    ls = _settings(lbs, t_lin, t_lout, seq["batch_max"], prof)
                    target, child_args = _latency_child, (ls.model_dump_json(), cell, hidden)
                elif scenario == "latency_raw":
                    create_topics(lbs, [t_lin, t_lout], partitions=args.partitions)
                    target, child_args = _raw_latency_child, (lbs, t_lin, t_lout, prof)
                else:  # one hop, nothing in between: the load generator's own topic read back
                    create_topics(lbs, [t_lin], partitions=args.partitions)
                    # with the engine's fetch wait: what the engine's own fetch of the input sees
                    # (a 5 ms poll on the generator's many small batches costs Tansu more than it saves)
                    t_lout, wait = t_lin, _settings(lbs, t_lin, t_lin, 4096, prof).fetch_wait_ms
                lpid = lb.proc.pid if lb.proc is not None else None
                for frac, lv in _latency_levels(
                    target,
                    child_args,
                    lbs,
                    t_lin,
                    t_lout,
                    streams,
                    rates,
                    args.latency_seconds,
                    warm_rate,
                    warm_s,
                    lpid,
                    wait,
                ):
                    _emit({"scenario": scenario, "fraction_of_max": frac, **lv, **common}, records)

    if args.step_batches:
        for r in _step_cells(cell, hidden, args.step_batches, args.step_budget):
            _emit({"scenario": "model_step", **r, "cell": cell, "hidden": hidden}, records)

    ctx = mp.get_context("spawn")
    for m in args.memory_streams:
        q = ctx.Queue()
        pr = ctx.Process(target=_memory_child, args=(m, cell, hidden, q))
        pr.start()
        res = q.get(timeout=300)
        pr.join(30)
        _emit({"scenario": "memory", **res, "cell": cell, "hidden": hidden}, records)

    print(markdown(records, time.time() - t_start))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(records, indent=1))
    return 0


def markdown(records: list[dict[str, Any]], seconds: float) -> str:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by[r["scenario"]].append(r)
    lines = [f"\nseqstream bench ({seconds:.0f} s)\n", "| scenario | events/s | note |", "|---|---:|---|"]
    raws = {r.get("round", 0): r["events_per_s"] for r in by["raw_passthrough"]}
    raw = raws.get(0)
    primary = [r for r in by["seqstream"] if r.get("primary", True)]
    first = [r for r in primary if r.get("round", 0) == 0]
    seq = max(first, key=lambda r: r["events_per_s"]) if first else None
    # per round: the primary drain vs the raw pass-through measured just before it
    ratios = [seq["events_per_s"] / raw] if seq and raw else []
    ratios += [r["events_per_s"] / raws[r["round"]] for r in primary if r.get("round", 0) > 0 and raws.get(r["round"])]
    pe = by["per_event"][0] if by["per_event"] else None

    def cores(r: dict[str, Any]) -> str:  # CPU use while draining: is the path CPU-bound or waiting?
        return f"; {r['cpu']} cores, broker {r['broker_cpu']}" if r.get("cpu") is not None else ""

    for r in by["raw_passthrough"]:
        rnd = r.get("round", 0)
        lines.append(
            f"| raw aiokafka pass-through | {_fmt(r['events_per_s'])} | ceiling{f', round {rnd + 1}' if rnd else ''}"
            f"{cores(r)} |"
        )
    for r in by["seqstream"]:
        rnd = r.get("round", 0)
        g = ", **exactly_once**" if r.get("guarantee") == "exactly_once" else ""
        lines.append(
            f"| seqstream end to end{g} | {_fmt(r['events_per_s'])} | {r['streams']} streams, "
            f"{_label(r['cell'], r['hidden'])}, batch_max {r['batch_max']}, mean batch {r['mean_batch']:.0f}"
            f"{f', round {rnd + 1}' if rnd else ''}{cores(r)} |"
        )
    if pe:
        lines.append(f"| one Runner.process per event | {_fmt(pe['per_event_events_per_s'])} | model only, no Kafka |")
        lines.append(f"| re-run last 64 steps per event | {_fmt(pe['rerun64_events_per_s'])} | model.forward only |")
    if seq and ratios:
        each = (
            f"median of {len(ratios)} rounds: " + ", ".join(f"{x:.2f}" for x in ratios) + "; "
            if len(ratios) > 1
            else ""
        )
        lines.append(
            f"| **seqstream / raw** | {float(np.median(ratios)):.2f}x | {each}best row of {seq['streams']} streams, "
            f"{_label(seq['cell'], seq['hidden'])}; target >= 0.5x |"
        )
    eos = [r for r in by["seqstream"] if r.get("guarantee") == "exactly_once"]
    if seq and eos:
        lines.append(
            f"| **exactly_once / at_least_once** | {eos[0]['events_per_s'] / seq['events_per_s']:.2f}x | the same "
            f"drain with one transaction per input partition and batch |"
        )
    if seq and pe:
        lines.append(
            f"| **seqstream / per-event** | {seq['events_per_s'] / pe['per_event_events_per_s']:.1f}x | target >= 20x |"
        )
    if by["latency"]:
        lines += [
            "",
            "| path | fraction of seqstream max | target rate | achieved | p50 ms | p99 ms | p999 ms | p99 / raw p99 "
            "| broker cores |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        raw_p99 = {r["fraction_of_max"]: r["p99_ms"] for r in by["latency_raw"]}
        paths = (
            ("seqstream", by["latency"]),
            ("raw pass-through", by["latency_raw"]),
            ("broker only (one hop)", by["latency_broker"]),
        )
        for path, rows in paths:
            for r in rows:
                base = raw_p99.get(r["fraction_of_max"])
                vs = f"{r['p99_ms'] / base:.2f}x" if path == "seqstream" and base else ""
                lines.append(
                    f"| {path} | {r['fraction_of_max']:.0%} | {r['target_rate']} | {r['achieved_rate']} | "
                    f"{r['p50_ms']} | {r['p99_ms']} | {r['p999_ms']} | {vs} | {r.get('broker_cpu')} |"
                )
    if by["model_step"]:
        lines += ["", "| mode | batch | stream-steps/s |", "|---|---:|---:|"]
        for r in by["model_step"]:
            lines.append(f"| {r['mode']} | {r['batch']} | {_fmt(r['stream_steps_per_s'])} |")
    if by["memory"]:
        lines += [
            "",
            "| resident streams | slab B/stream | raw B/stream | ratio | slab MB | RSS MB |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in by["memory"]:
            lines.append(
                f"| {r['resident_streams']:,} | {r['slab_bytes_per_stream']} | {r['raw_tensor_bytes_per_stream']} | "
                f"{r['slab_vs_raw']} | {r['slab_mb']} | {r['rss_mb']} |"
            )
    return "\n".join(lines)


def register_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smaller backlog, shorter latency levels, no 1M memory")
    p.add_argument(
        "--cell", choices=["gru", "lstm"], nargs="+", default=None, help="cells to drain with (default: gru lstm)"
    )
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden sizes (default: 64 128)")
    p.add_argument(
        "--streams",
        type=int,
        nargs="+",
        default=None,
        help="distinct stream keys per backlog (default: 1000 10000 100000); the first cell and hidden size at "
        "10k streams (else the first count) is the primary configuration behind the ratios and latency",
    )
    p.add_argument("--events", type=int, default=None, help="backlog size (default 200k; 50k with --quick)")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument(
        "--broker",
        default=None,
        metavar="HOST:PORT",
        help="a Kafka broker of your own (host:port[,...] or kafka://...) instead of the embedded Tansu; the "
        "workers use the production profile and every path uses new topics on it",
    )
    p.add_argument(
        "--broker-kind",
        choices=["kafka", "tansu"],
        default=None,
        help="the local broker to start: kafka (Apache Kafka, the default where Java and Maven are installed) or "
        "tansu (the embedded broker of the demo)",
    )
    p.add_argument(
        "--profile",
        choices=["tansu", "production"],
        default=None,
        help="the workers' settings profile (default: tansu on the local Tansu, production on Kafka and with "
        "--broker; tansu for a Tansu of your own)",
    )
    p.add_argument(
        "--primary",
        choices=[SHIPPED, "plain"],
        default=SHIPPED,
        help="the configuration behind the ratios and the latency levels: the shipped sensor detector (default) or "
        "the first --cell/--hidden of the matrix (untrained, plain scoring)",
    )
    p.add_argument(
        "--batch-max",
        type=int,
        nargs="+",
        default=[1024, 4096],
        help="engine micro-batch caps to drain with (best one: latency)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="(raw pass-through, primary drain) pairs; the ratio is their median (default 3; 1 with --quick)",
    )
    p.add_argument(
        "--no-exactly-once",
        dest="exactly_once",
        action="store_false",
        help="skip the primary drain with SEQSTREAM_GUARANTEE=exactly_once (only on Kafka: Tansu has no transactions)",
    )
    p.add_argument("--per-event-n", type=int, default=2000)
    p.add_argument("--latency-seconds", type=float, default=None, help="seconds per latency level (0: skip)")
    p.add_argument("--latency-fractions", type=float, nargs="*", default=[0.1, 0.25, 0.5, 0.9])
    p.add_argument(
        "--no-latency-raw",
        dest="latency_raw",
        action="store_false",
        help="skip the floors: the same latency levels through a plain aiokafka pass-through and through the "
        "broker alone (one hop)",
    )
    p.add_argument("--step-batches", type=int, nargs="*", default=None, help="model step batch sizes")
    p.add_argument("--step-budget", type=float, default=0.5)
    p.add_argument("--memory-streams", type=int, nargs="*", default=None)
    p.add_argument("--json-out", default=None)


def _defaults(args: argparse.Namespace) -> argparse.Namespace:
    q = args.quick
    if args.cell is None:
        args.cell = ["gru"] if q else ["gru", "lstm"]
    if args.hidden is None:
        args.hidden = [64] if q else [64, 128]
    if args.streams is None:
        args.streams = [10000] if q else [1000, 10000, 100000]
    for name in ("streams", "cell", "hidden"):  # a value given twice is drained once
        setattr(args, name, list(dict.fromkeys(getattr(args, name))))
    if args.rounds is None:
        args.rounds = 1 if q else 3
    if args.events is None:
        args.events = 50_000 if q else 200_000
    if args.latency_seconds is None:
        args.latency_seconds = 4.0 if q else 10.0
    if args.step_batches is None:
        args.step_batches = [64, 1024] if q else [1, 64, 1024, 4096]
    if args.memory_streams is None:
        args.memory_streams = [100_000] if q else [100_000, 1_000_000]
    return args


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="seqstream bench", description=__doc__.split("\n")[0])
    register_args(p)
    os.environ.setdefault("SEQSTREAM_LOGLEVEL", "warning")
    return run(_defaults(p.parse_args(argv)))


def cmd(args: argparse.Namespace) -> int:
    return run(_defaults(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
