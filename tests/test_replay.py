"""Offline replay: row-aligned NAB-format output, bad rows counted, directories as concurrent streams."""

import csv
import math

import numpy as np
import pytest

from models import Batch, InputError
from models.replay import parse_timestamp, replay_path
from stream.cli import main

from .conftest import make_runner


def _write(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _series(n, start=0, period=20.0):
    return [
        (f"2020-01-01 00:{m // 60:02d}:{m % 60:02d}", f"{math.sin(m / period) * 10 + 50:.4f}")
        for m in range(start, start + n)
    ]


def test_single_file_rows_align_and_bad_rows_are_marked(tmp_path) -> None:
    rows = _series(50)
    rows[10] = (rows[10][0], "nan")
    rows[20] = (rows[20][0], "abc")
    rows[30] = ("not a time", "1.0")
    rows[40] = (rows[5][0], "1.0")  # goes back in time
    rows.insert(45, ("2020-01-01 00:00:59",))  # wrong field count
    _write(tmp_path / "in.csv", ["timestamp", "value"], rows)
    report = replay_path(tmp_path / "in.csv", tmp_path / "out.csv", runner=make_runner())
    out = _read(tmp_path / "out.csv")
    assert len(out) == len(rows) == report.rows
    assert list(out[0]) == ["timestamp", "value", "anomaly_score", "prediction", "status"]
    for i, r in enumerate(out):
        assert r["timestamp"] == rows[i][0]
    status = {i: r["status"] for i, r in enumerate(out) if r["status"] != "ok"}
    assert status == {
        10: "rejected:non_finite",
        20: "rejected:parse_error",
        30: "rejected:bad_timestamp",
        40: "rejected:out_of_order",
        45: "rejected:bad_row",
    }
    assert report.accepted == len(rows) - 5 and sum(report.rejected.values()) == 5
    assert "rejected" in report.summary()


def test_replay_equals_direct_runner(tmp_path) -> None:
    rows = _series(80)
    _write(tmp_path / "a.csv", ["timestamp", "value"], rows)
    replay_path(tmp_path / "a.csv", tmp_path / "o.csv", runner=make_runner(), batch_size=7)
    out = _read(tmp_path / "o.csv")
    r = make_runner()
    res = r.process(
        Batch(
            ["a"] * len(rows),
            np.array([parse_timestamp(t) for t, _ in rows]),
            np.array([[float(v)] for _, v in rows], np.float32),
        )
    )
    np.testing.assert_allclose([float(o["anomaly_score"]) for o in out], res.score, atol=1e-6)
    np.testing.assert_allclose([float(o["prediction"]) for o in out], res.prediction[:, 0], rtol=1e-6)


def test_directory_streams_concurrently_and_keeps_relative_paths(tmp_path) -> None:
    src = tmp_path / "data"
    _write(src / "x" / "one.csv", ["timestamp", "value"], _series(30))
    _write(src / "y" / "two.csv", ["timestamp", "value"], _series(40, start=10))
    _write(
        src / "multi.csv",
        ["timestamp", "stream", "value"],
        [(t, f"m{i % 3}", v) for i, (t, v) in enumerate(_series(30))],
    )
    (src / "empty.csv").write_text("")
    report = replay_path(src, tmp_path / "out", runner=make_runner(), batch_size=16)
    assert len(_read(tmp_path / "out" / "x" / "one.csv")) == 30
    assert len(_read(tmp_path / "out" / "y" / "two.csv")) == 40
    assert len(_read(tmp_path / "out" / "multi.csv")) == 30
    assert (tmp_path / "out" / "empty.csv").exists()
    assert report.empty_files == ["empty.csv"]
    assert report.streams == 2 + 3
    # the same file alone gives the same result: streams don't leak into each other
    replay_path(src / "x" / "one.csv", tmp_path / "alone.csv", runner=make_runner())
    a = [float(r["anomaly_score"]) for r in _read(tmp_path / "alone.csv")]
    b = [float(r["anomaly_score"]) for r in _read(tmp_path / "out" / "x" / "one.csv")]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_header_problems_are_clear_errors(tmp_path) -> None:
    _write(tmp_path / "nots.csv", ["time", "value"], [("1", "2")])
    with pytest.raises(InputError, match="timestamp"):
        replay_path(tmp_path / "nots.csv", tmp_path / "o.csv", runner=make_runner())
    _write(tmp_path / "two.csv", ["timestamp", "a", "b"], [("1", "2", "3")])
    with pytest.raises(InputError, match="--values"):
        replay_path(tmp_path / "two.csv", tmp_path / "o.csv", runner=make_runner())
    replay_path(tmp_path / "two.csv", tmp_path / "o.csv", runner=make_runner(), values=["b"])
    (tmp_path / "empty.csv").write_text("timestamp,value\n")
    with pytest.raises(InputError, match="empty"):
        replay_path(tmp_path / "empty.csv", tmp_path / "o.csv", runner=make_runner())


def test_multivariate_prediction_columns(tmp_path) -> None:
    _write(tmp_path / "m.csv", ["timestamp", "t1", "t2"], [(str(i), str(i), str(-i)) for i in range(10)])
    replay_path(tmp_path / "m.csv", tmp_path / "o.csv", runner=make_runner(features=2))
    assert list(_read(tmp_path / "o.csv")[0]) == [
        "timestamp",
        "t1",
        "t2",
        "anomaly_score",
        "prediction_t1",
        "prediction_t2",
        "status",
    ]


def test_cli_replay_with_bundled_checkpoint(tmp_path, capsys) -> None:
    _write(tmp_path / "in.csv", ["timestamp", "value"], _series(300))
    assert main(["replay", str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"), "-q"]) == 0
    assert len(_read(tmp_path / "out.csv")) == 300
    assert "300 rows" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "o.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
