"""CPU of an idle five-source worker on a fresh Apache Kafka: 10 s warm-up, then 20 s measured.

    .venv/bin/python bench/results/devvm-2026-12-06-session6/idle_worker.py SEQSTREAM_FETCH_MAX_WAIT_MS=100 ...

Each argument is one run with that one environment setting (``X=1`` for none). Output: ``idle_worker.txt``.
"""

from __future__ import annotations

import sys
import time
import uuid

from stream.admin import create_topics
from stream.settings import load_settings
from stream.tools.bench.drain import _broker, _cpu_seconds
from stream.tools.worker_process import WorkerProcess

SOURCES = "sensors,speech,ticks,machines,audio"

with _broker(None, "kafka") as b:
    for arg in sys.argv[1:]:
        run = uuid.uuid4().hex[:6]
        topics = {s: f"{s}-{run}" for s in SOURCES.split(",")}
        outs = {o: f"{o}-{run}" for o in ("predictions", "alerts", "dead_letter", "state", "control")}
        env = {"SEQSTREAM_BROKER_URL": f"kafka://{b.bootstrap}", "SEQSTREAM_PROFILE": "production"}
        env |= {"SEQSTREAM_SOURCES": SOURCES, "SEQSTREAM_LOGLEVEL": "warning", "SEQSTREAM_APP_ID": f"idle-{run}"}
        env |= {f"SEQSTREAM_TOPIC_{k.upper()}": v for k, v in (topics | outs).items()}
        key, _, value = arg.partition("=")
        env[key] = value
        st = load_settings(
            broker_url=env["SEQSTREAM_BROKER_URL"],
            profile="production",
            sources=SOURCES,
            topics=topics,
            topic_predictions=outs["predictions"],
            topic_alerts=outs["alerts"],
            topic_dead_letter=outs["dead_letter"],
        )
        names = [st.topic(s) for s in st.sources] + st.output_topics
        create_topics(st.bootstrap_servers, names, st.partitions, st.replication_factor)
        worker = WorkerProcess(env).start()
        try:
            worker.wait_ready(timeout=180)
            time.sleep(10)
            assert worker.proc is not None
            c0, t0 = _cpu_seconds(worker.proc.pid), time.monotonic()
            time.sleep(20)
            c1 = _cpu_seconds(worker.proc.pid)
            print(arg, "idle worker cores", round(((c1 or 0) - (c0 or 0)) / (time.monotonic() - t0), 4), flush=True)
        finally:
            worker.stop()
