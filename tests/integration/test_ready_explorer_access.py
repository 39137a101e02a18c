"""A real worker: ``/ready`` says 503 (with a reason) until the input partitions are assigned and
restored, then 200; ``/metrics`` has the process collectors; the explorer served on its own port behind
a bearer token (and not on the web port), or not at all with ``SEQSTREAM_EXPLORER=off``."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.admin import create_topics
from stream.settings import Settings
from stream.tools.brokers import free_port
from stream.tools.worker_process import WorkerProcess

from .conftest import Broker

pytestmark = pytest.mark.integration

TOKEN = "it-" + uuid.uuid4().hex


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


@pytest.fixture
def env(broker: Broker, checkpoints: dict[str, Path]) -> dict[str, str]:
    app_id = f"ready-{uuid.uuid4().hex[:6]}"
    s = Settings(broker_url=broker.url, profile=broker.profile, app_id=app_id, sources="sensors")
    create_topics(broker.bootstrap, [*s.input_topics, *s.output_topics], s.partitions)
    return {
        "SEQSTREAM_BROKER_URL": broker.url,
        "SEQSTREAM_PROFILE": broker.profile,
        "SEQSTREAM_APP_ID": app_id,
        "SEQSTREAM_SOURCES": "sensors",
        "SEQSTREAM_CHECKPOINT_SENSORS": str(checkpoints["sensors"]),
    }


@pytest.fixture
def run_worker(tmp_path: Path) -> Iterator[Any]:
    procs: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        w = WorkerProcess(env, log_path=tmp_path / f"worker{len(procs)}.log").start()
        procs.append(w)
        return w

    yield start
    for w in procs:
        rc = w.stop()
        print(f"worker exited with {rc}; log {w.log_path}\n{w.log_tail(15)}")


def test_ready_metrics_and_explorer_on_its_own_port_with_a_token(env: dict[str, str], run_worker: Any) -> None:
    port = free_port()
    w = run_worker({**env, "SEQSTREAM_EXPLORER_PORT": str(port), "SEQSTREAM_EXPLORER_TOKEN": TOKEN})
    base = f"http://127.0.0.1:{w.web_port}"
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert w.alive(), w.log_tail(40)
        try:
            status, body, _ = _get(base + "/ready")
        except OSError:  # the web server is not listening yet
            time.sleep(0.05)
            continue
        doc = json.loads(body)
        if status == 200:
            assert doc["ready"] is True and doc["assigned_partitions"] > 0, doc
            break
        assert status == 503 and doc["ready"] is False, doc
        assert doc["reason"] in ("starting", "joining", "restoring", "broker_unreachable"), doc
        if not seen or seen[-1] != doc["reason"]:
            seen.append(doc["reason"])
        time.sleep(0.05)
    else:
        pytest.fail(f"/ready never answered 200; reasons seen {seen}\n{w.log_tail(40)}")
    print("/ready before 200:", seen)
    assert seen, "the web server answered /ready only once the worker was ready: no 503 was seen"
    assert _get(base + "/health")[0] == 200

    status, metrics, _ = _get(base + "/metrics")
    assert status == 200
    for name in (b"process_cpu_seconds_total", b"process_resident_memory_bytes", b"python_info", b"seqstream_"):
        assert name in metrics, name

    # the explorer is not on the web port; on its own port, only with the token
    for path in ("/explorer", "/api/streams"):
        assert _get(base + path)[0] == 404, path
    ex = f"http://127.0.0.1:{port}"
    for path in ("/explorer", "/api/streams", "/api/streams/pump-1"):
        status, _, headers = _get(ex + path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
        assert _get(ex + path, {"Authorization": "Bearer wrong"})[0] == 401, path
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, page, _ = _get(ex + "/explorer", auth)
    assert status == 200 and b"<html" in page.lower()
    status, body, _ = _get(ex + "/api/streams", auth)
    assert status == 200 and json.loads(body)["sources"][0]["source"] == "sensors"
    assert _get(ex + "/metrics")[0] == 404  # the explorer's site serves the explorer only


def test_explorer_off(env: dict[str, str], run_worker: Any) -> None:
    w = run_worker({**env, "SEQSTREAM_EXPLORER": "off"})
    w.wait_ready(timeout=120)
    base = f"http://127.0.0.1:{w.web_port}"
    for path in ("/explorer", "/api/streams", "/api/streams/pump-1"):
        assert _get(base + path)[0] == 404, path
    assert _get(base + "/metrics")[0] == 200
    assert _get(base + "/ready")[0] == 200
