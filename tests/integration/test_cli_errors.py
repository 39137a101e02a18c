"""A bad configuration stops the worker with one clear line and a non-zero exit, never a traceback.

Against real brokers: Kafka down (nothing listens), a wrong listener (Kafka's controller port),
``exactly_once`` on a broker without transactions (Tansu with the production profile) and with
the Tansu profile (refused by the settings before anything connects).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream.tools.brokers import EmbeddedBroker, free_port
from stream.tools.kafka_broker import KafkaBroker

pytestmark = pytest.mark.integration


def _worker(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    p = subprocess.run(
        [sys.executable, "-m", "stream.cli", "worker", *args],
        env={**os.environ, "SEQSTREAM_WEB_PORT": str(free_port()), **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    print(f"rc {p.returncode}: {lines}")
    return p.returncode, lines


def _one_line(rc: int, lines: list[str], *words: str) -> None:
    assert rc == 2, lines
    assert len(lines) == 1 and lines[0].startswith("seqstream: error: "), lines
    assert "Traceback" not in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_kafka_down_at_start(tmp_path: Path) -> None:
    rc, lines = _worker(tmp_path, {}, "--broker", f"kafka://127.0.0.1:{free_port()}")
    _one_line(rc, lines, "no Kafka broker answered", "SEQSTREAM_BROKER_URL")


def test_wrong_listener(kafka: KafkaBroker, tmp_path: Path) -> None:
    """The controller listener speaks Kafka's protocol but serves no client: it is not a broker address."""
    rc, lines = _worker(tmp_path, {}, "--broker", f"kafka://127.0.0.1:{kafka.controller_port}")
    _one_line(rc, lines, "does not answer as a Kafka broker", "client listener")


def test_exactly_once_on_a_broker_without_transactions(tmp_path: Path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as tansu:
        rc, lines = _worker(tmp_path, {"SEQSTREAM_GUARANTEE": "exactly_once"}, "--broker", tansu.url)
    _one_line(rc, lines, "exactly_once", "refused a transactional producer", "at_least_once")


def test_exactly_once_with_the_tansu_profile(tmp_path: Path) -> None:
    env = {"SEQSTREAM_GUARANTEE": "exactly_once", "SEQSTREAM_PROFILE": "tansu"}
    rc, lines = _worker(tmp_path, env, "--broker", "kafka://127.0.0.1:9")
    _one_line(rc, lines, "exactly_once needs Kafka transactions")


def test_bad_broker_url(tmp_path: Path) -> None:
    rc, lines = _worker(tmp_path, {}, "--broker", "http://localhost")
    _one_line(rc, lines, "is not host:port")


@pytest.mark.parametrize("kind", ["kafka", "tansu"])
def test_seqstream_broker_starts_answers_and_stops(kind: str, tmp_path: Path) -> None:
    """``seqstream broker --kind K``: one line with the URL once it answers; SIGTERM stops it with exit 0."""
    import asyncio
    import signal
    import time

    from stream.admin import check_brokers

    p = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "broker", "--kind", kind, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    try:
        t0 = time.monotonic()
        assert p.stdout is not None
        line = p.stdout.readline()
        ready_s = time.monotonic() - t0
        assert line.startswith(f"{kind} broker ready: SEQSTREAM_BROKER_URL=kafka://127.0.0.1:"), line
        url = line.split("SEQSTREAM_BROKER_URL=", 1)[1].split(",", 1)[0].split(";", 1)[0].strip()
        assert asyncio.run(check_brokers(url.removeprefix("kafka://"), timeout=10)) == 1
        print(f"{kind}: ready in {ready_s:.1f} s")
        assert ready_s < 30  # the start-up budget on 2 cores (Kafka's jars resolved already)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=40) == 0
    finally:
        if p.poll() is None:
            p.kill()
