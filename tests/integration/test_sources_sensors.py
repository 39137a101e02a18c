"""Multivariate sensors (source ``machines``) end to end: simulator -> real Tansu broker -> worker -> outputs.

A worker serving only ``machines`` with its default (masked, multivariate) checkpoint reads
``machine-readings`` with missing values (``null``) in them; machines with an injected channel
fault get an alert naming that channel, quiet machines none, every reading one prediction.
"""

from __future__ import annotations

import time
import uuid

import orjson
import pytest

from stream.admin import create_topics
from stream.settings import Settings
from stream.sources.simulator import Simulator
from stream.tools.worker_process import WorkerProcess

from .conftest import consume_until, produce_records

pytestmark = pytest.mark.integration

MACHINES, ROUNDS = 12, 420


def test_machines_worker_names_the_faulty_channel(broker, tmp_path) -> None:
    # topics of its own: the session's shared worker also serves the default topics
    topics = {
        k: f"itest-machines-{k}-{uuid.uuid4().hex[:6]}"
        for k in ("machines", "predictions", "alerts", "dead_letter", "control")
    }
    settings = Settings(
        broker_url=broker.url,
        profile=broker.profile,
        app_id="itest-machines",
        sources="machines",
        **{f"topic_{k}": v for k, v in topics.items()},
    )
    create_topics(broker.bootstrap, [*settings.input_topics, *settings.output_topics], settings.partitions)
    env = {
        "SEQSTREAM_BROKER_URL": broker.url,
        "SEQSTREAM_PROFILE": broker.profile,
        "SEQSTREAM_APP_ID": "itest-machines",
        "SEQSTREAM_SOURCES": "machines",
        "SEQSTREAM_STATE_ENABLED": "false",
        **{f"SEQSTREAM_TOPIC_{k.upper()}": v for k, v in topics.items()},
    }
    sim = Simulator("machines", MACHINES, seed=5, prefix="itmach")
    sim.inject(3, 300, 340, length=30)
    t0 = time.time() - 3600.0
    recs, missing = [], 0
    for r in range(ROUNDS):
        for e in sim.round(t0 + r):
            recs.append((settings.topic("machines"), e.key(), e.value()))
            missing += e.payload["values"].count(None)
    assert missing > 0  # the stream carries missing values
    planned = {a.stream: a for a in sim.labels}  # with the event time each fault started
    proc = WorkerProcess(env, log_path=tmp_path / "worker.log").start()
    try:
        proc.wait_ready(timeout=120)
        produce_records(broker.bootstrap, recs)

        def mine(got, topic):
            vals = (orjson.loads(r.value) for r in got[topic])
            return [v for v in vals if str(v.get("stream", "")).startswith("itmach")]

        out = consume_until(
            broker.bootstrap,
            [settings.topic_predictions, settings.topic_alerts, settings.topic_dead_letter],
            lambda got: len(mine(got, settings.topic_predictions)) >= len(recs),
            timeout=120,
        )
    except Exception:
        print(proc.log_tail(80))
        raise
    finally:
        proc.stop()
    preds = mine(out, settings.topic_predictions)
    assert len(preds) == len(recs) and not mine(out, settings.topic_dead_letter)
    assert all(p["source"] == "machines" and len(p["prediction"]) == 4 for p in preds)
    opened = [a for a in mine(out, settings.topic_alerts) if a["state"] == "open"]
    assert {a["stream"] for a in opened} == set(planned), [(a["stream"], a.get("channel")) for a in opened]
    for stream, label in planned.items():
        a = next(a for a in opened if a["stream"] == stream)
        assert a["channel"] == label.channel, (a["explanation"], label)
        assert label.channel in a["explanation"] and a["ts"] >= label.start_ts
