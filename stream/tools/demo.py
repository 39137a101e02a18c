"""``seqstream demo``: broker (embedded Tansu unless one is configured) + worker + simulated streams.

Starts what is missing, prints a live summary every two seconds (events/s, active streams,
latency, latest alerts, whether each alert matches an injected anomaly) and stops everything it
started after ``--seconds`` of producing (counted once the worker is ready) or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.errors import CheckpointError
from stream.settings import Settings, load_settings
from stream.sources import Anomaly
from stream.sources.audio import AUDIO_FRAME, AUDIO_RATE
from stream.sources.simulator import Simulator
from stream.sources.ticks import TICK_KINDS, TickSim
from stream.tools.produce import produce
from stream.tools.worker_process import WorkerProcess, metric_quantile, metric_sum

__all__ = ["demo_plan", "run_demo"]

log = logging.getLogger(__name__)

# streams per source and how many of them get an injected anomaly (ticks: one event of each kind)
_STREAMS = {"sensors": 80, "speech": 30, "ticks": 40, "machines": 30, "audio": 8}
_ANOMALIES = {"sensors": 4, "speech": 1, "ticks": len(TICK_KINDS), "machines": 2, "audio": 2}


@dataclass
class _State:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    labels: list[Anomaly] = field(default_factory=list)
    produced: int = 0
    prev: dict[str, float] = field(default_factory=dict)
    prev_t: float = 0.0
    shown: int = 0


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "-"
    return ">60s" if v == float("inf") else (f"≤{v * 1000:.0f}ms" if v < 1 else f"≤{v:.1f}s")


def _labelled(alert: dict[str, Any], labels: list[Anomaly]) -> bool:
    return any(a.stream == alert.get("stream") and a.source == alert.get("source") for a in labels)


async def _watch_alerts(settings: Settings, st: _State, stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream.admin import partitions_of

    kw = settings.kafka_kwargs()
    c = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **kw)
    await c.start()
    try:
        parts = await partitions_of(c, settings.topic_alerts)
        c.assign([TopicPartition(settings.topic_alerts, p) for p in parts])
        while not stop.is_set():
            data = await c.getmany(timeout_ms=300)
            for recs in data.values():
                for r in recs:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        st.alerts.append(orjson.loads(r.value))
    finally:
        await c.stop()


def _print_summary(worker: WorkerProcess, st: _State, t0: float, quiet: bool) -> None:
    try:
        m = worker.metrics(timeout=1.5)
    except OSError:
        return
    now = time.monotonic()
    dt = now - st.prev_t if st.prev_t and now - st.prev_t > 0.5 else None
    ev_in = metric_sum(m, "seqstream_events_in_total")
    out = sum(v for k, v in m.items() if k.startswith("seqstream_events_out_total{") and "predictions" in k)
    dead = metric_sum(m, "seqstream_dead_letters_total")
    if dt is not None and not quiet:
        rate_in = (ev_in - metric_sum(st.prev, "seqstream_events_in_total")) / dt
        rate_out = (
            out
            - sum(v for k, v in st.prev.items() if k.startswith("seqstream_events_out_total{") and "predictions" in k)
        ) / dt
        p50 = metric_quantile(m, st.prev, "seqstream_end_to_end_latency_seconds", 0.5)
        p99 = metric_quantile(m, st.prev, "seqstream_end_to_end_latency_seconds", 0.99)
        opened = sum(1 for a in st.alerts if a.get("state") == "open")
        print(
            f"[{now - t0:5.1f}s] in {rate_in:7,.0f} ev/s | predictions {rate_out:7,.0f}/s | "
            f"active streams {metric_sum(m, 'seqstream_active_streams'):,.0f} | dead letters {dead:,.0f} | "
            f"lag {metric_sum(m, 'seqstream_consumer_lag'):,.0f} | latency p50 {_fmt_s(p50)} p99 {_fmt_s(p99)} | "
            f"alerts opened {opened}",
            flush=True,
        )
        new = st.alerts[st.shown :]
        for a in new[-5:]:
            tag = "injected anomaly ✓" if _labelled(a, st.labels) else "no injected anomaly"
            where = f"{a.get('source')}/{a.get('stream')}" + (f" ({a['kind']})" if a.get("kind") else "")
            print(f"    ALERT {a.get('state'):8s} {where}  {a.get('explanation')}  [{tag}]")
        if len(new) > 5:
            print(f"    ... and {len(new) - 5} more alert transitions")
        st.shown = len(st.alerts)
    st.prev, st.prev_t = m, now


def demo_plan(settings: Settings, seconds: float | None) -> tuple[dict[str, Simulator], dict[str, float]]:
    """Simulators and total rates per source.

    Each stream ticks at 20 Hz (faster if the model's warm-up is long) so that its scorer has a
    few hundred events of history before the first injected anomaly, ~13 s after producing starts.
    """
    from models.checkpoint import load_checkpoint

    sims: dict[str, Simulator] = {}
    rates: dict[str, float] = {}
    for i, source in enumerate(settings.sources):
        if source == "audio":  # real time: 512-sample frames of 16 kHz audio; Silero needs no warm-up
            warmup, hz = 0, AUDIO_RATE / AUDIO_FRAME
        else:
            warmup = load_checkpoint(settings.checkpoint(source)).scoring.warmup
            hz = min(40.0, max(20.0, warmup / 10.0))
        sim = Simulator(source, _STREAMS[source], seed=100 + i)
        first = max(250, warmup + 4 * int(hz))
        horizon = int(((seconds or 600.0) - 15.0) * hz)
        last = max(first + 1, int(first + 0.6 * (horizon - first)))
        if isinstance(sim.model, TickSim):  # one event of each kind, on the busiest symbols (warm by then)
            base = sim.model.base
            busy = sorted(range(sim.n_streams), key=lambda k: -base[k])[: len(TICK_KINDS)]
            for j, (k, kind) in enumerate(zip(busy, TICK_KINDS)):
                sim.plan(k, first + (last - first) * j // len(TICK_KINDS), kind)
        else:
            sim.inject(_ANOMALIES[source], first, last, length=int(2 * hz))
        sims[source] = sim
        rates[source] = hz * sim.mean_events_per_round()
    return sims, rates


def run_demo(seconds: float | None = None, broker: str | None = None, quiet: bool = False) -> int:
    from stream.admin import client_kwargs, create_topics
    from stream.preflight import preflight
    from stream.tools.brokers import EmbeddedBroker

    base = load_settings(broker_url=broker)
    embedded = base.broker_url is None
    sources = list(base.sources)
    if "SEQSTREAM_SOURCES" not in os.environ and "audio" not in sources:
        # the demo shows every source: raw PCM speech on the pretrained Silero VAD too (a worker
        # serves it only when asked, SEQSTREAM_SOURCES=...,audio)
        sources.append("audio")
    usable = []
    for source in sources:
        try:
            base.checkpoint(source)
            usable.append(source)
        except CheckpointError as exc:
            print(f"demo: skipping source {source}: {exc}")
    if not usable:
        raise CheckpointError("no source has a checkpoint; see the messages above")
    t0 = time.monotonic()
    broker_proc = None
    worker: WorkerProcess | None = None
    try:
        if embedded:
            broker_proc = EmbeddedBroker().start()
            print(f"demo: embedded Tansu broker at {broker_proc.url} (in memory)")
        url = broker_proc.url if broker_proc else base.broker_url
        settings = load_settings(
            broker_url=url, profile="tansu" if embedded else base.profile, sources=",".join(usable)
        )
        if not embedded:  # a broker that is down or refuses TLS/SASL: one line, exit 2 (not a traceback)
            preflight(settings)
        kw = client_kwargs(settings)
        topics = [settings.topic(s) for s in settings.sources] + settings.output_topics
        create_topics(settings.bootstrap_servers, topics, settings.partitions, settings.replication_factor, **kw)
        env = {
            "SEQSTREAM_BROKER_URL": str(url),
            "SEQSTREAM_PROFILE": settings.profile,
            "SEQSTREAM_SOURCES": ",".join(usable),
        }
        worker = WorkerProcess(env).start()
        print(f"demo: worker pid {worker.proc.pid if worker.proc else '?'}, log {worker.log_path}")
        print(f"demo: metrics at {worker.metrics_url}")
        print(f"demo: stream explorer at http://{worker.host}:{worker.web_port}/explorer", flush=True)
        waited = worker.wait_ready()
        # the demo's seconds count from here: a first run on a fresh machine compiles the scorer's loops and
        # loads torch (10-30 s), which must not eat the window the injected anomalies are planned in
        sims, rates = demo_plan(settings, seconds)
        print(
            f"demo: worker ready after {waited:.1f} s; producing "
            + ", ".join(f"{s} {sims[s].n_streams} streams {rates[s]:,.0f} ev/s" for s in sims)
            + " with injected anomalies",
            flush=True,
        )
        st = asyncio.run(_main(settings, worker, sims, rates, seconds, t0, quiet))
        opened = [a for a in st.alerts if a.get("state") == "open"]
        hits = {(a.source, a.stream) for a in st.labels}
        found = {(a.get("source"), a.get("stream")) for a in opened} & hits
        false = [a for a in opened if (a.get("source"), a.get("stream")) not in hits]
        print(
            f"demo: done in {time.monotonic() - t0:.1f} s: produced {st.produced:,} events, "
            f"{len(opened)} alerts opened, "
            f"{len(found)}/{len(hits)} injected anomalies (that started) alerted, {len(false)} alerts on other streams"
        )
        if worker is not None and not worker.alive():
            print(f"demo: the worker exited early; log tail:\n{worker.log_tail()}")
            return 1
        return 0
    finally:
        if worker is not None:
            worker.stop()
        if broker_proc is not None:
            broker_proc.stop()


async def _main(
    settings: Settings,
    worker: WorkerProcess,
    sims: dict[str, Simulator],
    rates: dict[str, float],
    seconds: float | None,
    t0: float,
    quiet: bool,
) -> _State:
    st = _State()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    kw = {k: v for k, v in settings.kafka_kwargs().items() if k != "bootstrap_servers"}
    horizon = seconds if seconds is not None else float("inf")
    producers = [
        asyncio.create_task(
            produce(
                settings.bootstrap_servers,
                settings.topic(s),
                sim,
                rate=rates[s],
                seconds=horizon,
                kafka_kwargs=kw,
                stop=stop,
            )
        )
        for s, sim in sims.items()
    ]
    watcher = asyncio.create_task(_watch_alerts(settings, st, stop))
    deadline = time.monotonic() + horizon
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(2.0, max(0.01, deadline - time.monotonic())))
            st.labels = [a for sim in sims.values() for a in sim.labels]
            await asyncio.to_thread(_print_summary, worker, st, t0, quiet)
            if not worker.alive():
                print("demo: worker exited unexpectedly")
                break
    finally:
        stop.set()
        results = await asyncio.gather(*producers, return_exceptions=True)
        st.produced = sum(r for r in results if isinstance(r, int))
        for r in results:
            if isinstance(r, BaseException):
                print(f"demo: a producer failed: {r!r}")
        await asyncio.sleep(1.0)  # let the last alerts arrive
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        st.labels = [a for sim in sims.values() for a in sim.labels]
    return st
