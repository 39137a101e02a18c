"""The ``demo_mix`` scenario of ``seqstream bench``: what a worker costs at real-time rates.

A ``seqstream worker`` child serving every source of ``make demo`` (sensors, speech, ticks, machines and
Silero audio: the shipped checkpoints and scoring) on a fresh broker, fed by the demo's own simulators at
the demo's fixed rates (:func:`stream.tools.demo.demo_plan`, ~4.5k events/s over ~190 streams). After a
warm-up it measures over a window: the worker's CPU time per input event (µs; the fixed per-batch costs
of small batches show here, not in a saturated drain), the cores used by the worker and by the broker,
the end-to-end latency quantiles (event time to output acknowledged, the worker's histogram: each
figure is its bucket's upper bound) and the consumer lag at the end (is it keeping up?).

Its floor (``raw=True``, the default): the same simulators at the same rates, on the same broker and fresh
topics, served by a plain aiokafka pass-through child (:func:`_raw_mix_child`) with the worker's
transport: its fetch hold while records flow (``fetch_min_bytes``/``fetch_max_wait_ms``), one output per
input with one ``send_batch`` per partition, acks awaited one batch later, offsets committed after their
acks every ``commit_interval_s``. Its CPU µs per event is what consuming and producing alone cost at
these rates, and ``worker_vs_raw`` the worker's multiple of it (2026-12-06: ~25-33 µs per event on the
dev VM, about half of the worker's; docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import time
import uuid
from typing import Any

from .drain import _broker, _cpu_seconds, _forward

__all__ = ["demo_mix"]

_SOURCES = "sensors,speech,ticks,machines,audio"


def demo_mix(kind: str, url: str | None, seconds: float, warmup: float = 10.0, raw: bool = True) -> dict[str, Any]:
    """One measurement of the demo's mix on a fresh broker of ``kind`` (or the one at ``url``); with ``raw``,
    then its floor on the same broker (the ``raw_*`` keys and ``worker_vs_raw``)."""
    from stream.admin import create_topics
    from stream.settings import load_settings
    from stream.tools.demo import demo_plan
    from stream.tools.worker_process import WorkerProcess

    with _broker(url, kind) as b:
        prof = "tansu" if kind == "tansu" and url is None else "production"
        # topics and groups of this run only (a broker of your own may hold the demo's or another run's)
        run = uuid.uuid4().hex[:6]
        env = {"SEQSTREAM_BROKER_URL": f"kafka://{b.bootstrap}", "SEQSTREAM_PROFILE": prof}
        env |= {"SEQSTREAM_SOURCES": _SOURCES, "SEQSTREAM_LOGLEVEL": "warning", "SEQSTREAM_APP_ID": f"mix-{run}"}
        env |= {f"SEQSTREAM_TOPIC_{s.upper()}": f"{s}-{run}" for s in _SOURCES.split(",")}
        for out in ("predictions", "alerts", "dead_letter", "state", "control"):
            env[f"SEQSTREAM_TOPIC_{out.upper()}"] = f"{out}-{run}"
        settings = load_settings(
            broker_url=env["SEQSTREAM_BROKER_URL"],
            profile=prof,
            sources=_SOURCES,
            topics={s: f"{s}-{run}" for s in _SOURCES.split(",")},
            topic_predictions=f"predictions-{run}",
            topic_alerts=f"alerts-{run}",
            topic_dead_letter=f"dead_letter-{run}",
        )
        topics = [settings.topic(s) for s in settings.sources] + settings.output_topics
        create_topics(settings.bootstrap_servers, topics, settings.partitions, settings.replication_factor)
        worker = WorkerProcess(env).start()
        try:
            worker.wait_ready(timeout=180.0)
            sims, rates = demo_plan(settings, warmup + seconds + 15.0)
            res = asyncio.run(_measure(settings, worker, sims, rates, seconds, warmup, b))
        finally:
            worker.stop()
        if res.get("error"):
            res["log_tail"] = worker.log_tail(10)
        if raw:
            res |= _raw_mix(settings, run, seconds, warmup, b)
            w, r = res.get("worker_cpu_us_per_event"), res.get("raw_cpu_us_per_event")
            res["worker_vs_raw"] = round(w / r, 2) if w and r else None
    res.update(broker=kind if url is None else "external", profile=prof, sources=_SOURCES)
    res["target_rate"] = round(sum(rates.values()))
    res["streams_total"] = sum(s.n_streams for s in sims.values())
    return res


def _raw_mix(settings: Any, run: str, seconds: float, warmup: float, b: Any) -> dict[str, Any]:
    """The floor at the demo's rates: :func:`_raw_mix_child` on fresh topics of the same broker, fed the same
    simulators at the same rates, measured over the same window; its keys start with ``raw_``."""
    from stream.admin import create_topics
    from stream.tools.demo import demo_plan

    topics = {s: f"{s}-raw-{run}" for s in settings.sources}
    out_topic = f"predictions-raw-{run}"
    raw_settings = settings.model_copy(update={"topics": topics, "topic_predictions": out_topic})
    create_topics(
        settings.bootstrap_servers, [*topics.values(), out_topic], settings.partitions, settings.replication_factor
    )
    ctx = mp.get_context("spawn")
    ready, stop, done = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    args = (
        ",".join(settings.bootstrap_servers),
        [raw_settings.topic(s) for s in settings.sources],
        out_topic,
        settings.fetch_min,
        settings.fetch_wait_ms,
        settings.producer_linger_ms,
        settings.commit_interval_s,
        done,
        ready,
        stop,
    )
    child = ctx.Process(target=_raw_mix_child, args=args, daemon=True)
    child.start()
    assert child.pid is not None
    try:
        if not ready.wait(60):
            return {"raw_error": "the raw pass-through child held no partition within 60 s"}
        sims, rates = demo_plan(raw_settings, warmup + seconds + 15.0)
        res = asyncio.run(_measure(raw_settings, None, sims, rates, seconds, warmup, b, raw=(child.pid, done)))
    finally:
        stop.set()
        child.join(30)
        if child.is_alive():
            child.kill()
    keep = ("events", "events_per_s", "cpu_us_per_event", "cores", "error")
    return {f"raw_{k}": v for k, v in res.items() if k in keep}


def _raw_mix_child(
    bootstrap: str,
    topics: list[str],
    out_topic: str,
    fetch_min: int,
    fetch_wait_ms: int,
    linger_ms: int,
    commit_interval_s: float,
    done: Any,
    ready: Any,
    stop: Any,
) -> None:
    """The pass-through at the worker's transport settings until ``stop``; ``done`` counts the records
    whose outputs were sent (a spawned child: a module-level function)."""

    async def go() -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        c = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=f"raw-mix-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_min_bytes=fetch_min,  # the engine's hold while records flow (they always do here)
            fetch_max_wait_ms=fetch_wait_ms,
            max_partition_fetch_bytes=4 << 20,
        )
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, max_batch_size=1 << 20, acks="all")
        await p.start()
        await c.start()
        while not c.assignment():
            await c.getmany(timeout_ms=100)
        ready.set()
        pending: tuple[list[Any], dict[Any, int]] | None = None
        to_commit: dict[Any, int] = {}
        last = time.monotonic()
        while not stop.is_set():
            data = await c.getmany(timeout_ms=200, max_records=1024)
            futs, offsets, got = await _forward(p, data, out_topic)
            done.value += got
            if pending is not None:  # the previous batch's acks, after this one is on its way
                await asyncio.gather(*pending[0])
                to_commit.update(pending[1])
            pending = (futs, offsets) if futs else None
            now = time.monotonic()
            if to_commit and now - last >= commit_interval_s:
                last = now
                await c.commit(to_commit)
                to_commit = {}
        await c.stop()
        await p.stop()

    asyncio.run(go())


async def _measure(
    settings: Any,
    worker: Any,
    sims: dict[str, Any],
    rates: dict[str, float],
    seconds: float,
    warmup: float,
    b: Any,
    raw: tuple[int, Any] | None = None,
) -> dict[str, Any]:
    """The window's numbers for ``worker``, or with ``raw`` (pid, count of records) for the raw child."""
    from stream.tools.produce import produce
    from stream.tools.worker_process import metric_quantile, metric_sum

    stop = asyncio.Event()
    producers = [
        asyncio.create_task(
            produce(
                settings.bootstrap_servers, settings.topic(s), sim, rate=rates[s], seconds=warmup + seconds, stop=stop
            )
        )
        for s, sim in sims.items()
    ]
    wpid = raw[0] if raw is not None else worker.proc.pid
    bpid = b.proc.pid if getattr(b, "proc", None) is not None else None
    try:
        await asyncio.sleep(warmup)
        m0 = await asyncio.to_thread(worker.metrics, 5.0) if raw is None else raw[1].value
        t0, w0 = time.monotonic(), _cpu_seconds(wpid)
        b0 = _cpu_seconds(bpid) if bpid else None
        await asyncio.sleep(seconds)
        m1 = await asyncio.to_thread(worker.metrics, 5.0) if raw is None else raw[1].value
        t1, w1 = time.monotonic(), _cpu_seconds(wpid)
        b1 = _cpu_seconds(bpid) if bpid else None
    finally:
        stop.set()
        results = await asyncio.gather(*producers, return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    wall = t1 - t0
    if raw is not None:
        n = m1 - m0
        cpu = (w1 - w0) if w0 is not None and w1 is not None else None
        return {
            "events": n,
            "events_per_s": round(n / wall, 1),
            "cpu_us_per_event": round(cpu / max(n, 1) * 1e6, 1) if cpu is not None else None,
            "cores": round(cpu / wall, 3) if cpu is not None else None,
            **({"error": "; ".join(errors)} if errors else {}),
        }
    events = metric_sum(m1, "seqstream_events_in_total") - metric_sum(m0, "seqstream_events_in_total")
    lat = "seqstream_end_to_end_latency_seconds"
    out: dict[str, Any] = {
        "seconds": round(wall, 1),
        "events": int(events),
        "events_per_s": round(events / wall, 1),
        "worker_cpu_us_per_event": round((w1 - w0) / max(events, 1) * 1e6, 1) if w0 is not None and w1 else None,
        "worker_cores": round((w1 - w0) / wall, 3) if w0 is not None and w1 else None,
        "broker_cores": round((b1 - b0) / wall, 3) if b0 is not None and b1 is not None else None,
        "lag_end": metric_sum(m1, "seqstream_consumer_lag"),
    }
    # end to end (event time), and from the input record's broker timestamp (the worker's own share)
    for prefix, name in (("", lat), ("record_", "seqstream_processing_latency_seconds")):
        for q in (0.5, 0.99):
            v = metric_quantile(m1, m0, name, q)
            out[f"{prefix}p{int(q * 100)}_ms"] = (
                None if v is None else (round(v * 1000, 1) if v != float("inf") else "inf")
            )
    if errors:
        out["error"] = "; ".join(errors)
    with contextlib.suppress(Exception):
        out["batches"] = int(
            metric_sum(m1, "seqstream_batch_size_count") - metric_sum(m0, "seqstream_batch_size_count")
        )
    return out
