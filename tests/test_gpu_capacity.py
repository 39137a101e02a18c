"""bench/gpu_capacity.py (issue 20) without a card: its search, its workload, and the whole run in
quick mode on the CPU (the JSON lines, the equality guard); on CUDA one small scenario."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "gpu_capacity.py"
    spec = importlib.util.spec_from_file_location("gpu_capacity", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_capacity"] = mod
    spec.loader.exec_module(mod)
    return mod


gc = _load()
FOREVER = float("inf")


@pytest.mark.parametrize("limit", [1, 37, 1000, 5000, 123_457])
def test_search_finds_the_limit_within_its_tolerance(limit: int) -> None:
    calls: list[int] = []

    def ok(n: int) -> bool:
        calls.append(n)
        return n <= limit

    got = gc.search(ok, 64, 10**7, FOREVER, 0.05)
    assert got["bound"] == "latency"
    assert limit * 0.95 <= got["streams"] <= limit  # never above what passed
    # monotone: every probe that passed is below every probe that failed
    passed = [n for n, good in got["probes"] if good]
    failed = [n for n, good in got["probes"] if not good]
    assert max(passed) < min(failed)
    assert got["streams"] == max(passed)
    assert len(calls) < 40


def test_search_is_bounded_by_the_cap_the_budget_and_memory() -> None:
    got = gc.search(lambda n: True, 64, 1000, FOREVER)
    assert (got["streams"], got["bound"]) == (1000, "max_streams")
    assert max(n for n, _ in got["probes"]) == 1000  # never probes past the cap
    got = gc.search(lambda n: True, 64, 1000, time.perf_counter() - 1)
    assert (got["streams"], got["bound"], got["probes"]) == (0, "budget", [])
    got = gc.search(lambda n: None if n > 300 else True, 64, 10**6, FOREVER, 0.1)  # None: out of memory
    assert got["bound"] == "memory" and 270 <= got["streams"] <= 300
    assert gc.search(lambda n: False, 64, 10**6, FOREVER)["streams"] == 0


def test_workload_is_round_robin_at_the_natural_rate() -> None:
    pool = np.arange(3 * 4, dtype=np.float32).reshape(3, 4, 1)  # [S, L, F]
    w = gc.Workload(pool, rate=5.0)  # 5/s: 0.05 events per stream per 10 ms step
    n = 400
    assert w.per_step(n) == 20
    seen: dict[str, list[float]] = {}
    for _ in range(n // 20 * 3):  # three events of every stream
        b = w.batch(n)
        assert len(set(b.stream_ids)) == len(b)  # distinct streams per step: one wave
        for sid, t in zip(b.stream_ids, b.ts.tolist()):
            seen.setdefault(sid, []).append(t)
    assert len(seen) == n and all(len(v) == 3 for v in seen.values())
    assert all(np.allclose(np.diff(v), 1 / 5.0) for v in seen.values())  # in order, 1/rate apart
    with pytest.raises(ValueError):
        gc.Workload(pool, rate=1000.0)


def test_quick_run_on_the_cpu_prints_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.perf_counter()
    rc = gc.main(["--device", "cpu", "--quick", "--budget-s", "30", "--sources", "sensors", "audio"])
    took = time.perf_counter() - t0
    out = capsys.readouterr().out
    recs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    kinds = [r["scenario"] for r in recs]
    assert rc == 0, out
    assert kinds.count("equality") == 2 and kinds.count("capacity") == 4 and kinds.count("host") == 2
    assert kinds.count("gru128_step") == 6 and kinds.count("five_sources") == 1
    eq = {r["source"]: r for r in recs if r["scenario"] == "equality"}
    assert eq["sensors"]["pass"] and eq["sensors"]["float32"]["max_rel_pred_diff"] == 0.0  # CPU vs CPU
    assert eq["sensors"]["float32"]["events"] > 0 and "anomaly_flips" in eq["sensors"]["bfloat16"]
    assert "bfloat16" not in eq["audio"]  # the VAD has no compute dtype
    for r in recs:
        if r["scenario"] == "capacity" and "skipped" not in r:
            assert 0 < r["streams"] <= 4096 and r["bound"] in ("latency", "memory", "max_streams", "budget")
            assert r["events_per_s"] == pytest.approx(r["streams"] * gc.RATES[r["source"]])
            if r["bound"] != "budget":
                assert r["p99_ms"] < gc.P99_MS and r["mean_ms"] < gc.STEP_S * 1e3
    skipped = [r for r in recs if r["scenario"] == "capacity" and "skipped" in r]
    assert [(r["source"], r["dtype"]) for r in skipped] == [("audio", "bfloat16")]
    host = {r["source"]: r for r in recs if r["scenario"] == "host"}
    assert host["sensors"]["host_us_per_event"] > 0 and host["sensors"]["workers_per_card"] >= 1
    five = next(r for r in recs if r["scenario"] == "five_sources")
    assert 0 <= five["fraction"] <= 1
    assert "| source | rate /s |" in out and "equality (sensors, audio): PASS" in out
    assert took < 40


def test_a_spent_budget_skips_the_rest_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--device", "cpu", "--quick", "--sources", "sensors", "--dtypes", "float32", "--budget-s", "0.01"]
    assert gc.main(argv) == 0
    out = capsys.readouterr().out
    recs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert {r["scenario"] for r in recs if r.get("skipped") == "budget"} >= {"capacity", "host", "gru128_step"}
    assert "skipped for the budget:" in out


def test_scenarios_pick_a_part_of_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert gc.main(["--device", "cpu", "--quick", "--sources", "machines", "--scenarios", "host", "five"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["scenario"] for r in recs] == ["host", "five_sources"]
    assert "workers_per_card" not in recs[0]  # no capacity measured: nothing to divide
    assert recs[1]["skipped"].startswith("needs the capacity")


def test_without_cuda_and_without_a_device_it_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gc.main([]) == 0
    assert "no CUDA" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_capacity_and_equality_of_one_source() -> None:
    cfg = gc._config(gc.argparse.Namespace(quick=True, max_streams=8192), "cuda")
    eq = gc.equality("sensors", cfg)
    assert eq["pass"], eq
    rec = gc.capacity("sensors", "float32", cfg, time.perf_counter() + 30)
    assert rec["streams"] > 0 and rec["p99_ms"] < gc.P99_MS
    step = gc.gru128(4096, True, cfg)
    assert step["graphs_used"] and step["device_stream_steps_per_s"] > 0
