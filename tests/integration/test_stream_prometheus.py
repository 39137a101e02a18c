"""A real Prometheus server scrapes the worker; PromQL for throughput and p99 latency returns data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from stream.launch import free_port
from stream.simulator import Simulator

from .conftest import WorkerHandle, produce_records

pytestmark = pytest.mark.integration

PROMETHEUS = os.environ.get("SEQSTREAM_PROMETHEUS_BIN") or shutil.which("prometheus") or "/usr/bin/prometheus"


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.fixture
def prometheus(worker: WorkerHandle, tmp_path: Path) -> Any:
    if not os.path.exists(PROMETHEUS):
        if os.environ.get("CI"):
            pytest.fail(f"prometheus binary not found at {PROMETHEUS}; CI must install it (apt-get install prometheus)")
        pytest.skip("prometheus binary not installed (apt-get install -y prometheus); runs in CI")
    target = worker.process.metrics_url.split("//", 1)[1].split("/", 1)[0]
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: seqstream\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
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
            pytest.fail(f"prometheus did not become ready; see {tmp_path / 'prometheus.log'}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_prometheus_scrapes_throughput_and_latency(worker: WorkerHandle, prometheus: str) -> None:
    s = worker.settings
    sim = Simulator("sensors", 50, seed=9, prefix="prom")
    # ~12 s of real-time traffic in 0.25 s rounds so rate() windows see several scrapes
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        produce_records(s.bootstrap_servers[0], [(s.topic_sensors, e.key(), e.value()) for e in sim.round(time.time())])
        time.sleep(0.25)
    up = _query(prometheus, 'up{job="seqstream"}')
    assert up and up[0]["value"][1] == "1", up
    rate = _query(prometheus, 'sum(rate(seqstream_events_in_total{source="sensors"}[5s]))')
    assert rate and float(rate[0]["value"][1]) > 0, rate
    p99 = _query(
        prometheus,
        "histogram_quantile(0.99, sum by (le) "
        '(rate(seqstream_end_to_end_latency_seconds_bucket{source="sensors"}[5s])))',
    )
    assert p99, p99
    p99_s = float(p99[0]["value"][1])
    assert 0 < p99_s < 60, p99
    p50 = _query(
        prometheus, "histogram_quantile(0.5, sum by (le) (rate(seqstream_processing_latency_seconds_bucket[5s])))"
    )
    lag = _query(prometheus, "sum(seqstream_consumer_lag)")
    assert lag
    print(
        f"prometheus: {float(rate[0]['value'][1]):.0f} events/s, e2e p99 {p99_s * 1000:.0f} ms, "
        f"processing p50 {float(p50[0]['value'][1]) * 1000:.0f} ms"
    )


def test_health_endpoint_and_gpu_memory_metric(worker: WorkerHandle) -> None:
    """/health is 200 with the consumer running (the probes' target); GPU memory is always exported."""
    p = worker.proc
    with urllib.request.urlopen(f"http://{p.host}:{p.web_port}/health", timeout=10) as r:
        assert r.status == 200
        assert json.loads(r.read()) == {"status": "ok", "consumer_up": True}
    m = p.metrics(timeout=10)
    assert 'seqstream_gpu_memory_bytes{kind="allocated"}' in m
