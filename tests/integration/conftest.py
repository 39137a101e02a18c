"""Fixtures for integration tests: a real broker (session) and a real worker process.

``SEQSTREAM_TEST_BROKER`` picks the broker of the ``broker`` fixture: ``kafka`` (the default: Apache
Kafka 4.4 in KRaft mode, ``stream/kafka_local.py``) or ``tansu`` (the embedded broker of the demo).
Tests that need what only Kafka has (transactions, compaction, storage that survives a restart)
take the ``kafka`` fixture, an Apache Kafka whatever ``SEQSTREAM_TEST_BROKER`` says. Tests here are
marked ``integration``; ``smoke`` marks the subset CI also runs on Tansu.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stream.admin import create_topics, partitions_of
from stream.settings import Settings
from stream.tools.brokers import EmbeddedBroker
from stream.tools.kafka_broker import KafkaBroker
from stream.tools.worker_process import WorkerProcess

N_FEATURES = {"sensors": 1, "speech": 8, "ticks": 2}

BROKER_KIND = os.environ.get("SEQSTREAM_TEST_BROKER", "kafka")
if BROKER_KIND not in ("kafka", "tansu"):
    raise pytest.UsageError(f"SEQSTREAM_TEST_BROKER={BROKER_KIND!r}; expected kafka or tansu")

Broker = KafkaBroker | EmbeddedBroker


def start_broker(kind: str, directory: Path, **kw: Any) -> Broker:
    """A started broker of this kind, its data and log under ``directory``."""
    if kind == "kafka":
        return KafkaBroker(data_dir=directory / "kafka-data", log_path=directory / "kafka.log", **kw).start()
    return EmbeddedBroker(log_path=directory / "tansu.log", **kw).start()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The session's broker (``SEQSTREAM_TEST_BROKER``) on free loopback ports."""
    b = start_broker(BROKER_KIND, tmp_path_factory.mktemp(BROKER_KIND))
    print(f"integration broker: {b.kind} at {b.url}")
    yield b
    b.stop()


@pytest.fixture(scope="session")
def kafka(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """An Apache Kafka broker: the session's when it is one, else one of its own (Kafka-only features)."""
    if isinstance(broker, KafkaBroker):
        yield broker
        return
    b = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka") / "data").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small deterministic checkpoints (untrained GRU, hidden 16, warm-up 20) for each source."""
    import torch

    from models import NetConfig, RecurrentForecaster, ScoringConfig, save_checkpoint

    d = tmp_path_factory.mktemp("checkpoints")
    out = {}
    torch.manual_seed(0)
    for source in ("sensors", "speech", "ticks"):
        net = RecurrentForecaster(NetConfig(input_size=N_FEATURES[source], hidden_size=16))
        out[source] = save_checkpoint(d / f"{source}.pt", net, ScoringConfig(warmup=20), {"model_id": f"test-{source}"})
    return out


@dataclass
class WorkerHandle:
    settings: Settings
    broker: Broker
    process: WorkerProcess
    checkpoints: dict[str, Path]
    startup_s: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="session")
def worker(
    broker: Broker, checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerHandle]:
    """A ``seqstream worker`` child process (the broker's profile) consuming all three sources."""
    env = {
        "SEQSTREAM_BROKER_URL": broker.url,
        "SEQSTREAM_PROFILE": broker.profile,
        "SEQSTREAM_APP_ID": "itest",
        **{f"SEQSTREAM_CHECKPOINT_{s.upper()}": str(p) for s, p in checkpoints.items()},
    }
    settings = Settings(
        broker_url=broker.url,
        profile=broker.profile,
        app_id="itest",
        **{f"checkpoint_{s}": p for s, p in checkpoints.items()},
    )
    create_topics(broker.bootstrap, [*settings.input_topics, *settings.output_topics], settings.partitions)
    proc = WorkerProcess(env, log_path=tmp_path_factory.mktemp("worker") / "worker.log").start()
    try:
        startup = proc.wait_ready(timeout=120)
    except Exception:
        print(proc.log_tail(80))
        proc.stop()
        raise
    yield WorkerHandle(settings, broker, proc, checkpoints, startup)
    rc = proc.stop()
    print(f"worker exited with {rc}; log {proc.log_path}")


def consume_until(
    bootstrap: str,
    topics: list[str],
    done: Callable[[dict[str, list[Any]]], bool],
    timeout: float = 90.0,
    isolation_level: str = "read_uncommitted",
) -> dict[str, list[Any]]:
    """Read topics from the beginning (no consumer group) until ``done(records_by_topic)``."""

    async def run() -> dict[str, list[Any]]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        c = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=isolation_level,
        )
        await c.start()
        try:
            tps = [TopicPartition(t, p) for t in topics for p in sorted(await partitions_of(c, t))]
            assert tps, f"none of {topics} exists"
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            got: dict[str, list[Any]] = {t: [] for t in topics}
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = await c.getmany(timeout_ms=200, max_records=10_000)
                for tp, recs in data.items():
                    got[tp.topic].extend(recs)
                if done(got):
                    # drain a little longer to catch extra (unexpected) records
                    await asyncio.sleep(1.0)
                    for tp, recs in (await c.getmany(timeout_ms=500)).items():
                        got[tp.topic].extend(recs)
                    return got
            return got
        finally:
            await c.stop()

    return asyncio.run(run())


def produce_records(bootstrap: str, records: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """Produce (topic, key, value) in order; per key, order is kept (same partition)."""

    async def run() -> None:
        from aiokafka import AIOKafkaProducer

        from stream.engine import BulkProducer
        from stream.pipeline import Output

        p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, max_request_size=4 << 20)
        await p.start()
        try:
            bulk = BulkProducer(p)
            futs = await bulk.send_all([Output(t, k, v) for t, k, v in records])  # type: ignore[arg-type]
            await asyncio.gather(*futs)
        finally:
            await p.stop()

    asyncio.run(run())


PROMETHEUS = os.environ.get("SEQSTREAM_PROMETHEUS_BIN") or shutil.which("prometheus") or "/usr/bin/prometheus"


def prometheus_query(base: str, promql: str) -> list[dict[str, Any]]:
    """An instant PromQL query against a running server; asserts the query succeeded."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@contextlib.contextmanager
def run_prometheus(config: str, directory: Path, port: int) -> Iterator[str]:
    """A real Prometheus server (Debian package) on 127.0.0.1:port with ``config``; yields its URL.

    Skips without the binary outside CI; in CI (``CI`` set) a missing binary fails the test.
    """
    if not os.path.exists(PROMETHEUS):
        if os.environ.get("CI"):
            pytest.fail(f"prometheus binary not found at {PROMETHEUS}; CI must install it (apt-get install prometheus)")
        pytest.skip("prometheus binary not installed (apt-get install -y prometheus); runs in CI")
    (directory / "prometheus.yml").write_text(config)
    log = open(directory / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail(f"prometheus did not become ready; see {directory / 'prometheus.log'}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
