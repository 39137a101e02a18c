"""A broker restart: the worker survives, says so (log line, health metric) and resumes.

Runs on both brokers, which differ here. Apache Kafka keeps every topic, offset and group on disk
across the restart: the worker simply continues. Tansu's memory storage loses them all, the
harshest form of an outage: after it is back the test re-creates the topics (as an operator or
the compose stack's topic service would). Either way new records produced after the restart each
get exactly one output.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest

from stream.admin import create_topics
from stream.tools.brokers import EmbeddedBroker
from stream.tools.kafka_broker import KafkaBroker
from stream.tools.worker_process import WorkerProcess

from .conftest import consume_until, produce_records, start_broker

pytestmark = pytest.mark.integration


def _wait(cond, timeout: float, what: str, proc: WorkerProcess) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.alive(), f"worker died while waiting for {what}:\n{proc.log_tail(60)}"
        try:
            if cond():
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{proc.log_tail(60)}")


def _records(topic: str, tag: str, n: int, t0: float) -> list[tuple[str, bytes | None, bytes | None]]:
    return [
        (topic, f"{tag}-{i % 5}".encode(), orjson.dumps({"stream": f"{tag}-{i % 5}", "ts": t0 + i, "values": [i % 7]}))
        for i in range(n)
    ]


@pytest.mark.parametrize("kind", ["kafka", "tansu"])
def test_worker_survives_broker_restart(kind: str, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    topics = {
        "sensors": f"out-{tag}-in",
        "predictions": f"out-{tag}-pred",
        "alerts": f"out-{tag}-alerts",
        "dead_letter": f"out-{tag}-dead",
        "state": f"out-{tag}-state",
        "control": f"out-{tag}-control",
    }
    created = [v for k, v in topics.items() if k != "state"]
    broker = start_broker(kind, tmp_path)
    env = {
        "SEQSTREAM_BROKER_URL": broker.url,
        "SEQSTREAM_PROFILE": broker.profile,
        "SEQSTREAM_APP_ID": f"out-{tag}",
        "SEQSTREAM_SOURCES": "sensors",
        "SEQSTREAM_PARTITIONS": "2",
        "SEQSTREAM_CHECKPOINT_SENSORS": str(checkpoints["sensors"]),
        "SEQSTREAM_SNAPSHOT_INTERVAL_S": "1",
        **{f"SEQSTREAM_TOPIC_{k.upper()}": v for k, v in topics.items()},
    }
    create_topics(broker.bootstrap, created, 2)
    worker = WorkerProcess(env, log_path=tmp_path / "worker.log").start()
    try:
        worker.wait_ready(timeout=120)
        assert worker.metrics()["seqstream_broker_connected"] == 1

        kept = 0  # outputs from before the outage that the broker still has afterwards

        def outputs_for(n: int) -> None:
            n += kept
            got = consume_until(
                broker.bootstrap,
                [topics["predictions"], topics["dead_letter"]],
                lambda g: sum(len(v) for v in g.values()) >= n,
                timeout=90,
            )
            assert sum(len(v) for v in got.values()) == n, {k: len(v) for k, v in got.items()}

        t0 = time.time() - 1000
        produce_records(broker.bootstrap, _records(topics["sensors"], tag, 40, t0))
        outputs_for(40)

        # the outage: the worker stays up, reports the broker down and logs it
        if isinstance(broker, KafkaBroker):
            broker.stop(keep_data=True)
        else:
            broker.stop()
        down = _wait(lambda: worker.metrics()["seqstream_broker_connected"] == 0, 60, "broker_connected == 0", worker)
        time.sleep(3.0)  # a few failed reconnects
        assert worker.alive()
        assert worker.metrics()["seqstream_broker_connected"] == 0
        text = worker.log_path.read_text(errors="replace")
        assert "broker unreachable" in text, worker.log_tail(40)

        # back on the same port: Kafka with its data, Tansu empty (memory storage: topics re-created)
        if isinstance(broker, KafkaBroker):
            broker.start()
            kept = 40
        else:
            broker = EmbeddedBroker(port=broker.port, log_path=tmp_path / "tansu-2.log").start()
            create_topics(broker.bootstrap, created, 2)
        up = _wait(lambda: worker.metrics()["seqstream_broker_connected"] == 1, 60, "broker_connected == 1", worker)
        produce_records(broker.bootstrap, _records(topics["sensors"], tag, 30, t0 + 100))
        outputs_for(30)
        text = worker.log_path.read_text(errors="replace")
        assert "broker reachable again" in text, worker.log_tail(40)
        # aiokafka's per-retry connection errors are rate-limited: a few lines, not one per 100 ms
        noisy = sum("Unable connect to node" in line for line in text.splitlines())
        assert noisy <= 20, f"{noisy} 'Unable connect' lines during a ~10 s outage"
        print(f"outage: noticed after {down:.1f} s, reconnected {up:.1f} s after the restart")
    finally:
        worker.stop()
        broker.stop()
