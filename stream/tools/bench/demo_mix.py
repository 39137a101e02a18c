"""The ``demo_mix`` scenario of ``seqstream bench``: what a worker costs at real-time rates.

A ``seqstream worker`` child serving every source of ``make demo`` (sensors, speech, ticks, machines and
Silero audio: the shipped checkpoints and scoring) on a fresh broker, fed by the demo's own simulators at
the demo's fixed rates (:func:`stream.tools.demo.demo_plan`, ~4.5k events/s over ~190 streams). After a
warm-up it measures over a window: the worker's CPU time per input event (µs; the fixed per-batch costs
of small batches show here, not in a saturated drain), the cores used by the worker and by the broker,
the end-to-end latency quantiles (event time to output acknowledged, the worker's histogram: each
figure is its bucket's upper bound) and the consumer lag at the end (is it keeping up?).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from .drain import _broker, _cpu_seconds

__all__ = ["demo_mix"]

_SOURCES = "sensors,speech,ticks,machines,audio"


def demo_mix(kind: str, url: str | None, seconds: float, warmup: float = 10.0) -> dict[str, Any]:
    """One measurement of the demo's mix on a fresh broker of ``kind`` (or the one at ``url``)."""
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
    res.update(broker=kind if url is None else "external", profile=prof, sources=_SOURCES)
    res["target_rate"] = round(sum(rates.values()))
    res["streams_total"] = sum(s.n_streams for s in sims.values())
    return res


async def _measure(
    settings: Any, worker: Any, sims: dict[str, Any], rates: dict[str, float], seconds: float, warmup: float, b: Any
) -> dict[str, Any]:
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
    wpid = worker.proc.pid
    bpid = b.proc.pid if getattr(b, "proc", None) is not None else None
    try:
        await asyncio.sleep(warmup)
        m0 = await asyncio.to_thread(worker.metrics, 5.0)
        t0, w0 = time.monotonic(), _cpu_seconds(wpid)
        b0 = _cpu_seconds(bpid) if bpid else None
        await asyncio.sleep(seconds)
        m1 = await asyncio.to_thread(worker.metrics, 5.0)
        t1, w1 = time.monotonic(), _cpu_seconds(wpid)
        b1 = _cpu_seconds(bpid) if bpid else None
    finally:
        stop.set()
        results = await asyncio.gather(*producers, return_exceptions=True)
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    wall = t1 - t0
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
