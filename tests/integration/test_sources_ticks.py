"""``ticks`` end to end: simulator -> real Tansu broker -> worker (bundled ticks model) -> outputs.

A worker serving only ``ticks`` with its default checkpoint reads ``market-ticks``; every
injected event (one of each kind on busy symbols) gets an ``open`` alert of its kind on its
symbol while the event lasts, quiet symbols get no alert, and every tick one prediction.
"""

from __future__ import annotations

import time
import uuid

import orjson
import pytest

from models.tick_alerts import KINDS
from stream.admin import create_topics
from stream.settings import Settings
from stream.sources.simulator import Simulator
from stream.tools.worker_process import WorkerProcess

from .conftest import consume_until, produce_records

pytestmark = pytest.mark.integration

SYMBOLS, ROUNDS, EVENT_ROUND = 12, 600, 420


def test_ticks_worker_alerts_injected_events_by_kind(broker, tmp_path) -> None:
    # topics of its own: the session's shared worker also serves the default topics
    topics = {
        k: f"itest-ticks-{k}-{uuid.uuid4().hex[:6]}"
        for k in ("ticks", "predictions", "alerts", "dead_letter", "control")
    }
    settings = Settings(
        broker_url=broker.url,
        profile=broker.profile,
        app_id="itest-ticks",
        sources="ticks",
        **{f"topic_{k}": v for k, v in topics.items()},
    )
    create_topics(broker.bootstrap, [*settings.input_topics, *settings.output_topics], settings.partitions)
    env = {
        "SEQSTREAM_BROKER_URL": broker.url,
        "SEQSTREAM_PROFILE": broker.profile,
        "SEQSTREAM_APP_ID": "itest-ticks",
        "SEQSTREAM_SOURCES": "ticks",
        "SEQSTREAM_STATE_ENABLED": "false",
        **{f"SEQSTREAM_TOPIC_{k.upper()}": v for k, v in topics.items()},
    }
    sim = Simulator("ticks", SYMBOLS, seed=11, prefix="itSYM")
    busy = sorted(range(SYMBOLS), key=lambda i: -sim.model.base[i])[: len(KINDS)]  # warm by the event
    for j, (i, kind) in enumerate(zip(busy, KINDS)):
        sim.plan(i, EVENT_ROUND + 7 * j, kind)
    t0 = time.time() - 3600.0
    recs = []
    for r in range(ROUNDS):
        for e in sim.round(t0 + r * 0.5):
            recs.append((settings.topic("ticks"), e.key(), e.value()))
    planned = {a.stream: a for a in sim.labels}  # with the event time of each event's first tick
    assert sorted(a.kind for a in planned.values()) == sorted(KINDS)
    proc = WorkerProcess(env, log_path=tmp_path / "worker.log").start()
    try:
        proc.wait_ready(timeout=120)
        produce_records(broker.bootstrap, recs)

        def mine(got, topic):
            vals = (orjson.loads(r.value) for r in got[topic])
            return [v for v in vals if str(v.get("stream", "")).startswith("itSYM")]

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
    assert len(preds) == len(recs)
    assert not mine(out, settings.topic_dead_letter)
    assert all(len(p["prediction"]) == 4 and p["model"] == "ticks-gru-h32" for p in preds)
    opened = [a for a in mine(out, settings.topic_alerts) if a["state"] == "open"]
    assert {a["stream"] for a in opened} == set(planned), [(a["stream"], a.get("kind")) for a in opened]
    for stream, label in planned.items():
        mine_open = [a for a in opened if a["stream"] == stream]
        assert label.kind in {a["kind"] for a in mine_open}, (stream, label.kind, mine_open)
        a = next(a for a in mine_open if a["kind"] == label.kind)
        assert a["source"] == "ticks" and a["explanation"] and a["score"] >= a["threshold"]
        assert a["ts"] >= label.start_ts  # alerted while (or right after) the event happened
