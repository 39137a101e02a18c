"""A real Prometheus server scrapes the worker; PromQL for throughput and p99 latency returns data."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from stream.sources.simulator import Simulator
from stream.tools.worker_process import free_port

from .conftest import WorkerHandle, produce_records, prometheus_query, run_prometheus

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


@pytest.fixture
def prometheus(worker: WorkerHandle, tmp_path: Path) -> Any:
    target = worker.process.metrics_url.split("//", 1)[1].split("/", 1)[0]
    config = (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: seqstream\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    with run_prometheus(config, tmp_path, free_port()) as base:
        yield base


def test_prometheus_scrapes_throughput_and_latency(worker: WorkerHandle, prometheus: str) -> None:
    s = worker.settings
    sim = Simulator("sensors", 50, seed=9, prefix="prom")
    # ~12 s of real-time traffic in 0.25 s rounds so rate() windows see several scrapes
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        produce_records(
            s.bootstrap_servers[0], [(s.topic("sensors"), e.key(), e.value()) for e in sim.round(time.time())]
        )
        time.sleep(0.25)
    up = prometheus_query(prometheus, 'up{job="seqstream"}')
    assert up and up[0]["value"][1] == "1", up
    rate = prometheus_query(prometheus, 'sum(rate(seqstream_events_in_total{source="sensors"}[5s]))')
    assert rate and float(rate[0]["value"][1]) > 0, rate
    p99 = prometheus_query(
        prometheus,
        "histogram_quantile(0.99, sum by (le) "
        '(rate(seqstream_end_to_end_latency_seconds_bucket{source="sensors"}[5s])))',
    )
    assert p99, p99
    p99_s = float(p99[0]["value"][1])
    assert 0 < p99_s < 60, p99
    p50 = prometheus_query(
        prometheus, "histogram_quantile(0.5, sum by (le) (rate(seqstream_processing_latency_seconds_bucket[5s])))"
    )
    lag = prometheus_query(prometheus, "sum(seqstream_consumer_lag)")
    assert lag
    print(
        f"prometheus: {float(rate[0]['value'][1]):.0f} events/s, e2e p99 {p99_s * 1000:.0f} ms, "
        f"processing p50 {float(p50[0]['value'][1]) * 1000:.0f} ms"
    )


def test_health_endpoint_and_gpu_memory_metric(worker: WorkerHandle) -> None:
    """/health is 200 with the consumer running (the probes' target); GPU memory is always exported."""
    p = worker.process
    with urllib.request.urlopen(f"http://{p.host}:{p.web_port}/health", timeout=10) as r:
        assert r.status == 200
        assert json.loads(r.read()) == {"status": "ok", "consumer_up": True, "broker_connected": True}
    m = p.metrics(timeout=10)
    assert 'seqstream_gpu_memory_bytes{kind="allocated"}' in m
