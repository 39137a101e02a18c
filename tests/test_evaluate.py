"""`seqstream evaluate nab`: replay through the Runner, scored by models.nab, equal to the independent scorer."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint
from models.evaluate import bench_detector, evaluate_nab, lockstep_scores
from models.nab import NabCorpus, read_scores
from models.replay import read_csv
from stream.cli import main

from .conftest import NAB_DEV as NAB_DATA
from .conftest import NAB_SCORE

FILES = ["realTraffic/speed_7578.csv", "realKnownCause/rogue_agent_key_hold.csv"]

needs_nab = pytest.mark.usefixtures("nab_scorer")  # ../shared data and scorer, pandas: skipped without, failed in CI


@pytest.fixture
def small_nab(tmp_path: Path) -> tuple[Path, Path]:
    """Two short NAB files and their windows."""
    data = tmp_path / "data"
    for rel in FILES:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes((NAB_DATA / "data" / rel).read_bytes())
    windows = json.loads((NAB_DATA / "combined_windows.json").read_text())
    labels = tmp_path / "windows.json"
    labels.write_text(json.dumps({rel: windows[rel] for rel in FILES}))
    return data, labels


@needs_nab
def test_evaluate_nab_matches_independent_scorer(small_nab: tuple[Path, Path], tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data, labels = small_nab
    out = tmp_path / "results"
    rep = evaluate_nab(data, labels, out)
    assert rep.events == sum(len(read_csv(data / rel)) for rel in FILES)
    proc = subprocess.run(
        [sys.executable, str(NAB_SCORE), "--data", str(data), "--labels", str(labels), "--results", str(out), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    ref = json.loads(proc.stdout)["results"]
    for profile, r in rep.swept.items():
        assert abs(r.normalized - ref[profile]["normalized"]) <= 0.1, profile
    assert rep.fixed_threshold == load_checkpoint().scoring.open_threshold
    assert "standard" in rep.table() and "fixed" in rep.table()

    # the lock-step experiment path gives the replay's scores
    ck = load_checkpoint()
    corpus = NabCorpus.load(data, labels)
    tables = [read_csv(data / rel) for rel in corpus.files]
    fast = lockstep_scores(ck.model, ck.scoring, [t.x for t in tables], [t.ts for t in tables])
    replayed = read_scores(out, corpus.files)
    for rel, s in zip(corpus.files, fast):
        np.testing.assert_allclose(s, replayed[rel], atol=1e-4)


@needs_nab
def test_cli_evaluate_nab(small_nab: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    data, labels = small_nab
    assert main(["evaluate", "nab", str(data), str(labels), "--threshold", "0.6", "--json", "-q"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["fixed_threshold"] == 0.6
    assert set(res["swept"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}


def test_bench_detector_reports_both_rates() -> None:
    torch.set_num_threads(1)
    rows = bench_detector(batch_sizes=(1, 8), seconds=0.05)
    assert [r["batch"] for r in rows] == [1, 8]
    assert all(r["model_steps_per_s"] > 0 and r["detector_steps_per_s"] > 0 for r in rows)
