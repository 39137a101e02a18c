"""`seqstream bench` end to end on a tiny matrix: every scenario runs and reports sane numbers.

Not a timing test (no speed is asserted): it checks that the benchmark itself works, so the numbers
in docs/benchmarks.md stay reproducible with the command they name.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from stream.tools import bench

from .conftest import BROKER_KIND

pytestmark = pytest.mark.integration


def test_bench_runs_the_matrix_and_every_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # bench.main quiets the log (this process's loggers, and SEQSTREAM_LOGLEVEL for its children): in
    # a test session that would silence the INFO lines later tests read from their workers' logs
    monkeypatch.setenv("SEQSTREAM_LOGLEVEL", "warning")
    levels = {name: logging.getLogger(name).level for name in ("aiokafka", "stream", "faust")}
    try:
        _run_and_check(tmp_path, capsys)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _run_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["--quick", "--broker-kind", BROKER_KIND, "--primary", "plain", "--events", "4000", "--streams", "200"]
    args += ["1000", "--cell", "gru", "lstm", "--hidden", "16"]
    args += ["--batch-max", "256", "1024", "--latency-seconds", "0.5", "--latency-fractions", "0.5", "--rounds", "2"]
    args += ["--memory-streams", "2000", "--step-batches", "8", "--per-event-n", "50", "--json-out", str(out)]
    args += ["--demo-mix", "3"]
    assert bench.main(args) == 0
    recs = json.loads(out.read_text())
    by: dict[str, list[dict]] = {}
    for r in recs:
        by.setdefault(r["scenario"], []).append(r)
    drains = {(r["streams"], r["cell"], r["hidden"], r["batch_max"]) for r in by["seqstream"]}
    # the primary configuration (first count here: 1000 is not 10k) drains at every batch_max, the rest at the largest
    assert drains == {(200, "gru", 16, 256), (200, "gru", 16, 1024), (200, "lstm", 16, 1024)} | {
        (1000, c, 16, 1024) for c in ("gru", "lstm")
    }
    # the second round: one more raw pass-through and one more primary drain, at round 1's best batch_max
    (again,) = [r for r in by["seqstream"] if r.get("round") == 1]
    best = max((r for r in by["seqstream"] if r.get("round") == 0), key=lambda r: r["events_per_s"])
    assert (again["streams"], again["cell"], again["batch_max"]) == (200, "gru", best["batch_max"])
    assert sorted(r["round"] for r in by["raw_passthrough"]) == [0, 1]
    (serial,) = by["raw_passthrough_serial"]  # the serial floor, once, beside the pipelined ceiling
    assert serial["events"] == 4000 and serial["events_per_s"] > 0
    for r in by["seqstream"] + by["raw_passthrough"]:
        assert r["cpu"] > 0 and r["broker_cpu"] is not None  # CPU use while draining, of both processes
    for r in by["seqstream"]:
        assert r["events"] == 4000 and r["events_per_s"] > 0  # every backlog event processed
        assert r["resident_streams"] == r["streams"]
    assert all(r["streams"] == 200 and r["events"] == 4000 for r in by["raw_passthrough"])
    assert by["per_event"][0]["per_event_events_per_s"] > 0
    for scenario in ("latency", "latency_raw", "latency_broker"):
        (lv,) = by[scenario]
        assert lv["received"] == lv["produced"] > 0 and 0 < lv["p50_ms"] <= lv["p99_ms"]
        assert lv["broker_cpu"] is not None and lv["broker_cpu"] >= 0  # the embedded broker's pid is known
    (mix,) = by["demo_mix"]  # the demo's five sources at its rates: every source's events counted, CPU per event
    assert mix["events"] > 0 and mix["worker_cpu_us_per_event"] > 0 and mix["streams_total"] == 188
    assert mix["p99_ms"] is not None and "error" not in mix
    # its floor on the same broker: a raw pass-through at the same rates, every event forwarded and timed
    assert mix["raw_events"] > 0 and mix["raw_cpu_us_per_event"] > 0 and "raw_error" not in mix
    assert mix["worker_vs_raw"] == round(mix["worker_cpu_us_per_event"] / mix["raw_cpu_us_per_event"], 2)
    (mem,) = by["memory"]
    assert mem["resident_streams"] == 2000 and mem["slab_vs_raw"] <= 1.25
    assert {r["mode"] for r in by["model_step"]} == {"model_step", "batched"}
    table = capsys.readouterr().out
    assert "raw aiokafka pass-through, serial" in table
    assert "**seqstream / pipelined raw**" in table and "best row of 200 streams, gru-16" in table
    assert "median of 2 rounds" in table and "broker only (one hop)" in table


def test_bench_on_a_broker_of_your_own(
    broker: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--broker``: every scenario on a running broker (the session's, with its profile), new topics per
    path, no broker process of its own to watch; the primary configuration is the shipped detector."""
    monkeypatch.setenv("SEQSTREAM_LOGLEVEL", "warning")
    levels = {name: logging.getLogger(name).level for name in ("aiokafka", "stream", "faust")}
    out = tmp_path / "bench.json"
    args = ["--quick", "--broker", broker.url, "--profile", broker.profile, "--events", "2000", "--streams", "100"]
    args += ["--batch-max", "512", "--latency-seconds", "0.5", "--latency-fractions", "0.5", "--memory-streams"]
    args += ["--step-batches", "--per-event-n", "20", "--json-out", str(out), "--demo-mix", "0"]
    try:
        assert bench.main(args) == 0
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    by: dict[str, list[dict]] = {}
    for r in json.loads(out.read_text()):
        by.setdefault(r["scenario"], []).append(r)
    # the shipped detector (primary; on Kafka once more with exactly_once) and the matrix's one plain
    # configuration, each over the whole backlog
    rows = [(r["cell"], r["primary"], r.get("guarantee"), r["events"]) for r in by["seqstream"]]
    eos = [("shipped", False, "exactly_once", 2000)] if broker.profile == "production" else []
    assert rows == [("shipped", True, None, 2000), *eos, ("gru", False, None, 2000)]
    assert by["raw_passthrough"][0]["events"] == 2000
    for scenario in ("latency", "latency_raw", "latency_broker"):
        (lv,) = by[scenario]
        assert lv["received"] == lv["produced"] > 0
        assert lv["broker_cpu"] is None  # not our process: nothing to read
    table = capsys.readouterr().out
    assert "**seqstream / pipelined raw**" in table
    assert "best row of 100 streams, shipped detector (sensor_gru.pt)" in table
