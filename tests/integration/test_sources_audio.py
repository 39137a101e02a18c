"""``audio`` source end to end: simulator PCM frames -> real Tansu broker -> worker -> outputs.

A worker serving only ``audio`` (Silero VAD) reads ``speech-audio``; streams with injected
utterances get a speech start and end on ``anomaly-alerts``, quiet streams none, and every
frame one prediction.
"""

from __future__ import annotations

import itertools
import time

import orjson
import pytest
import silero_vad  # noqa: F401  # a hard dependency: the worker loads the Silero weights from this package

from stream.admin import create_topics
from stream.settings import Settings
from stream.sources.simulator import Simulator
from stream.tools.worker_process import WorkerProcess

from .conftest import consume_until, produce_records

pytestmark = pytest.mark.integration

STREAMS, ROUNDS = 8, 250


def test_audio_worker_marks_speech_start_and_end(broker, tmp_path) -> None:
    settings = Settings(broker_url=broker.url, profile=broker.profile, app_id="itest-audio", sources="audio")
    create_topics(broker.bootstrap, [*settings.input_topics, *settings.output_topics], settings.partitions)
    env = {
        "SEQSTREAM_BROKER_URL": broker.url,
        "SEQSTREAM_PROFILE": broker.profile,
        "SEQSTREAM_APP_ID": "itest-audio",
        "SEQSTREAM_SOURCES": "audio",
        "SEQSTREAM_STATE_ENABLED": "false",
    }
    proc = WorkerProcess(env, log_path=tmp_path / "worker.log").start()
    try:
        proc.wait_ready(timeout=120)
        sim = Simulator("audio", n_streams=STREAMS, seed=3, prefix="itmic")
        planned = sim.inject(3, 10, 60)
        t0 = time.time() - 60.0
        recs = []
        for r in range(ROUNDS):
            recs += [("speech-audio", e.key(), e.value()) for e in sim.round(t0 + r * 0.032)]
        produce_records(broker.bootstrap, recs)

        def mine(got, topic):
            vals = (orjson.loads(r.value) for r in got[topic])
            return [v for v in vals if v.get("source") == "audio" and str(v.get("stream", "itmic")).startswith("itmic")]

        out = consume_until(
            broker.bootstrap,
            [settings.topic_predictions, settings.topic_alerts, settings.topic_dead_letter],
            lambda got: len(mine(got, settings.topic_predictions)) >= STREAMS * ROUNDS,
            timeout=120,
        )
    except Exception:
        print(proc.log_tail(80))
        raise
    finally:
        proc.stop()
    preds = mine(out, settings.topic_predictions)
    alerts = mine(out, settings.topic_alerts)
    assert len(preds) == STREAMS * ROUNDS
    assert not mine(out, settings.topic_dead_letter)
    talkers = {a.stream for a in planned}
    assert {a["stream"] for a in alerts} == talkers
    for s in talkers:
        events = [a["event"] for a in sorted((a for a in alerts if a["stream"] == s), key=lambda a: a["ts"])]
        assert events[0] == "speech_start" and events[-1] == "speech_end"
        assert all(x != y for x, y in itertools.pairwise(events))  # start/end alternate
