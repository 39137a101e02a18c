"""The deployment's Prometheus configuration, rules and dashboard against two live workers (issue 7).

Two ``seqstream worker`` processes (one consumer group, different metrics ports) run against the
Tansu broker of the session; a real Prometheus server scrapes both with the scrape job and rule
file of ``deploy/prometheus`` (DNS discovery replaced by the two static targets); the simulator
(``seqstream produce``) feeds all three sources. The dashboard's own throughput and latency
queries must return data for each worker, every rule must evaluate without error, and every
metric name the dashboard and rules use must be one a live worker exports.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.admin import create_topics
from stream.tools.worker_process import WorkerProcess, free_port

from ..test_deploy import (
    PROM_CONFIG,
    PROM_K8S_CONFIG,
    PROMETHEUS_SYNTHETIC,
    RULES,
    all_promql,
    dashboard,
    discovered_pod_targets,
    grafana_to_promql,
    k8s_pods,
    load_yaml,
    metric_names,
    names_from_exposition,
    recording_rule_names,
)
from .conftest import Broker, produce_records, prometheus_query, run_prometheus

APP_ID = "deploylive"
PARTITIONS = 4
TOPICS = {
    "sensors": "deploy-sensor-readings",
    "speech": "deploy-speech-features",
    "ticks": "deploy-market-ticks",
    "machines": "deploy-machine-readings",
    "predictions": "deploy-predictions",
    "alerts": "deploy-anomaly-alerts",
    "dead_letter": "deploy-dead-letter",
    "control": "deploy-seqstream-control",
}
N_INPUTS = 4  # sensors, speech, ticks, machines: the default sources
RATE_WINDOW = "20s"  # stands in for Grafana's $__rate_interval (scrapes every second here)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def _target(w: WorkerProcess) -> str:
    return f"{w.host}:{w.web_port}"


@pytest.fixture(scope="module")
def two_workers(
    broker: Broker, checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[WorkerProcess]]:
    env = {
        "SEQSTREAM_BROKER_URL": broker.url,
        "SEQSTREAM_PROFILE": broker.profile,
        "SEQSTREAM_APP_ID": APP_ID,
        "SEQSTREAM_PARTITIONS": str(PARTITIONS),
        **{f"SEQSTREAM_TOPIC_{k.upper()}": v for k, v in TOPICS.items()},
        **{f"SEQSTREAM_CHECKPOINT_{s.upper()}": str(p) for s, p in checkpoints.items()},
    }
    create_topics(broker.bootstrap, [v for k, v in TOPICS.items() if k != "control"], PARTITIONS)
    create_topics(broker.bootstrap, [TOPICS["control"]], 1)
    logs = tmp_path_factory.mktemp("deploy-workers")
    workers = [WorkerProcess(env, log_path=logs / f"worker{i}.log").start() for i in range(2)]
    try:
        for w in workers:
            w.wait_ready(timeout=120)
        # both in the group: every input partition assigned, each worker holding some
        deadline = time.monotonic() + 90
        while True:
            assigned = [w.metrics().get("seqstream_assigned_partitions", 0) for w in workers]
            if all(a > 0 for a in assigned) and sum(assigned) == N_INPUTS * PARTITIONS:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the two workers never split the partitions: {assigned}")
            time.sleep(0.5)
        yield workers
    except BaseException:
        for w in workers:
            print(f"---- {w.log_path}\n{w.log_tail(60)}")
        raise
    finally:
        for w in workers:
            w.stop()


@pytest.fixture(scope="module")
def prometheus(two_workers: list[WorkerProcess], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("deploy-prometheus")
    port = free_port()
    cfg = load_yaml(PROM_CONFIG)
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(RULES)]
    for job in cfg["scrape_configs"]:
        if job["job_name"] == "seqstream":
            job.pop("dns_sd_configs")
            job["static_configs"] = [{"targets": [_target(w) for w in two_workers]}]
        else:
            job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    with run_prometheus(json.dumps(cfg), d, port) as base:
        yield base


@pytest.fixture(scope="module")
def prometheus_k8s(two_workers: list[WorkerProcess], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second Prometheus with the Kubernetes scrape job of deploy/prometheus/kubernetes.yml: its Kubernetes
    discovery is replaced by static targets that carry the labels the discovery gives the pods of deploy/k8s
    (the two live workers as the two Deployments' pods, the topics Job's and another application's pod at a
    dead address), so the job's own relabelling runs in a real Prometheus."""
    d = tmp_path_factory.mktemp("deploy-prometheus-k8s")
    port = free_port()
    cfg = load_yaml(PROM_K8S_CONFIG)
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(RULES)]
    (job,) = cfg["scrape_configs"]
    job.pop("kubernetes_sd_configs")  # Debian's Prometheus is built without it; its labels come statically
    pods = k8s_pods()
    workers = [p for p in pods if p["labels"].get("app.kubernetes.io/component") == "worker"]
    others = [p for p in pods if p not in workers]
    assert len(workers) == len(two_workers) == 2
    static = []
    for pod, address in [*zip(workers, map(_target, two_workers)), *((p, "127.0.0.1:9") for p in others)]:
        for t in discovered_pod_targets(pod, job["job_name"]):
            static.append({"targets": [address], "labels": {k: v for k, v in t.items() if k.startswith("__meta_")}})
    job["static_configs"] = static
    with run_prometheus(json.dumps(cfg), d, port) as base:
        yield base


def test_k8s_scrape_job_labels_the_live_workers_like_compose(
    two_workers: list[WorkerProcess], prometheus: str, prometheus_k8s: str
) -> None:
    instances = {_target(w) for w in two_workers}
    deadline = time.monotonic() + 30
    while True:
        up = prometheus_query(prometheus_k8s, 'up{job="seqstream"}')
        if {r["metric"]["instance"] for r in up if r["value"][1] == "1"} == instances or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # exactly the two workers (the topics Job and the other pod are dropped), with the k8s labels
    assert {r["metric"]["instance"]: r["value"][1] for r in up} == dict.fromkeys(instances, "1"), up
    pods = {p["name"] for p in k8s_pods() if p["labels"].get("app.kubernetes.io/component") == "worker"}
    assert {r["metric"]["pod"] for r in up} == pods and {r["metric"]["namespace"] for r in up} == {"seqstream"}
    time.sleep(6)  # a few scrapes for the rates
    # every dashboard and rule expression that finds the compose-labelled series finds the k8s-labelled ones
    missing = [
        f"{where}: {e}"
        for where, e in all_promql()
        if prometheus_query(prometheus, e) and not prometheus_query(prometheus_k8s, e)
    ]
    assert not missing, "no data with the Kubernetes labels:\n" + "\n".join(missing)
    groups = _get(f"{prometheus_k8s}/api/v1/rules")["data"]["groups"]
    bad = [f"{r['name']}: {r.get('lastError')}" for g in groups for r in g["rules"] if r.get("health") == "err"]
    assert not bad, bad


def _panel_exprs(title_prefix: str) -> list[str]:
    for p in dashboard()["panels"]:
        if p.get("title", "").startswith(title_prefix):
            return [t["expr"] for t in p["targets"]]
    raise AssertionError(f"no dashboard panel titled {title_prefix!r}")


def _for_instance(expr: str, instance: str) -> str:
    expr = expr.replace("$__rate_interval", RATE_WINDOW).replace("$instance", instance.replace(".", "\\\\."))
    return grafana_to_promql(expr)  # the remaining variables ($source) -> all


def _values(result: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in result]


def test_dashboard_queries_return_data_for_both_workers(
    broker: Broker, two_workers: list[WorkerProcess], prometheus: str
) -> None:
    instances = [_target(w) for w in two_workers]
    env = {**os.environ, "SEQSTREAM_BROKER_URL": broker.url}

    def simulator(source: str) -> subprocess.Popen[bytes]:
        args = ["produce", "--source", source, "--streams", "40", "--rate", "300", "--seconds", "40"]
        args += ["--seed", "3", "--topic", TOPICS[source]]
        return subprocess.Popen([sys.executable, "-m", "stream.cli", *args], env=env, stdout=subprocess.DEVNULL)

    producers = [simulator(source) for source in ("sensors", "speech", "ticks")]
    # a few undecodable records so that dead-letter series exist
    produce_records(broker.bootstrap, [(TOPICS["sensors"], f"bad-{i}".encode(), b"\xff not json") for i in range(8)])

    throughput = _panel_exprs("Throughput by source")[0]  # records in, by source
    by_worker = _panel_exprs("Throughput by worker")[0]
    latency = _panel_exprs("End-to-end latency")  # p50, p90, p99, processing p99
    latency_by_worker = _panel_exprs("End-to-end p99 by worker")[0]
    step = _panel_exprs("Inference step")

    def check() -> list[str]:
        problems = []
        for inst in instances:
            rate = _values(prometheus_query(prometheus, _for_instance(throughput, inst)))
            if not rate or max(rate) <= 0:
                problems.append(f"{inst}: throughput {rate}")
            per = {
                r["metric"].get("instance"): float(r["value"][1])
                for r in prometheus_query(prometheus, _for_instance(by_worker, inst))
            }
            if per.get(inst, 0) <= 0:
                problems.append(f"{inst}: throughput by worker {per}")
            for e in [*latency, latency_by_worker, *step]:
                vals = [v for v in _values(prometheus_query(prometheus, _for_instance(e, inst))) if math.isfinite(v)]
                if not vals or max(vals) <= 0:
                    problems.append(f"{inst}: no latency data for {e}")
        return problems

    problems = ["no check ran"]
    p99: list[float] = []
    rates: dict[str, float] = {}
    try:
        time.sleep(8)  # several scrapes of traffic
        deadline = time.monotonic() + 30
        while problems and time.monotonic() < deadline:
            problems = check()
            if problems:
                time.sleep(2)
        # what the dashboard shows over both workers (all instances), while traffic still flows
        p99 = _values(prometheus_query(prometheus, _all(latency[2])))
        rates = {r["metric"]["instance"]: float(r["value"][1]) for r in prometheus_query(prometheus, _all(by_worker))}
    finally:
        for p in producers:
            p.terminate()
            p.wait(timeout=20)
    assert not problems, "\n".join(problems)

    up = {r["metric"]["instance"]: r["value"][1] for r in prometheus_query(prometheus, 'up{job="seqstream"}')}
    assert up == dict.fromkeys(instances, "1"), up

    # every rule of deploy/prometheus evaluates without error against live series
    groups = _get(f"{prometheus}/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == sum(len(g["rules"]) for g in load_yaml(RULES)["groups"])
    bad = [f"{r['name']}: {r.get('lastError')}" for r in rules if r.get("health") == "err"]
    assert not bad, bad
    # none of the alerts fires on a healthy pair of workers
    firing = [a["labels"]["alertname"] for a in _get(f"{prometheus}/api/v1/alerts")["data"]["alerts"]]
    assert not firing, firing

    print(
        "dashboard over two workers: "
        + ", ".join(f"{inst} {rate:.0f} ev/s" for inst, rate in sorted(rates.items()))
        + f"; e2e p99 by source {[round(v * 1000) for v in p99]} ms"
    )
    # the p99 the dashboard shows is plausible for a light load on a loopback broker
    finite = [v for v in p99 if math.isfinite(v)]
    assert finite and max(finite) < 30, p99


def _all(expr: str) -> str:
    return grafana_to_promql(expr.replace("$__rate_interval", RATE_WINDOW))


def test_every_metric_name_used_is_exported_by_a_live_worker(two_workers: list[WorkerProcess], prometheus: str) -> None:
    live: set[str] = set()
    for w in two_workers:
        with urllib.request.urlopen(w.metrics_url, timeout=5) as r:
            live |= names_from_exposition(r.read().decode())
    allowed = live | PROMETHEUS_SYNTHETIC | recording_rule_names()
    missing = sorted({f"{n} ({where})" for where, e in all_promql() for n in metric_names(e) if n not in allowed})
    assert not missing, "used by the dashboard/rules but not exported by a live worker:\n" + "\n".join(missing)
    # and Prometheus stores the series the throughput and latency panels read
    stored = {r["metric"]["__name__"] for r in prometheus_query(prometheus, 'count by (__name__) ({job="seqstream"})')}
    for n in (
        "seqstream_events_in_total",
        "seqstream_end_to_end_latency_seconds_bucket",
        "seqstream_inference_step_seconds_bucket",
        "seqstream_consumer_lag",
        "seqstream_assigned_partitions",
    ):
        assert n in stored, (n, sorted(stored))
