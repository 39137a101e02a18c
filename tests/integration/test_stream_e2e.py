"""End to end against a real Tansu broker and a real worker process.

One module-scoped run produces N valid events over M streams (one labelled injected anomaly)
plus K bad records of every kind, then reads ``predictions``, ``anomaly-alerts`` and
``dead-letter`` back. The tests assert on that run.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from models import Batch, Runner
from models.replay import replay_path
from stream.sources.simulator import Simulator

from .conftest import WorkerHandle, consume_until, produce_records

pytestmark = [pytest.mark.integration, pytest.mark.smoke]

M_SENSORS, ROUNDS, ANOMALY_ROUND = 20, 400, 300


@dataclass
class E2E:
    handle: WorkerHandle
    sent: dict[str, list[tuple[str, float, bytes, bytes]]]  # source -> [(stream, ts, key, value)]
    anomaly_stream: str
    bad: list[tuple[str, str]]  # (source topic, expected reason)
    out: dict[str, list[Any]]
    seconds: float


def _bad_records(t: float) -> list[tuple[str, bytes | None, bytes | None, str]]:
    big = json.dumps({"stream": "bad-big", "ts": t, "values": [1.0], "pad": "x" * 100_000}).encode()
    return [
        ("sensor-readings", b"bad-a", b"this is not json", "not_json"),
        ("sensor-readings", b"bad-a", None, "not_json"),  # tombstone
        ("sensor-readings", b"bad-b", b"[1, 2, 3]", "bad_shape"),
        ("sensor-readings", b"bad-c", json.dumps({"stream": "bad-c", "values": [1.0]}).encode(), "missing_field"),
        (
            "sensor-readings",
            b"bad-d",
            json.dumps({"stream": "bad-d", "ts": t, "values": [1, 2]}).encode(),
            "wrong_length",
        ),
        (
            "sensor-readings",
            b"bad-e",
            json.dumps({"stream": "bad-e", "ts": t, "values": [math.nan]}).encode(),
            "non_finite",
        ),
        (
            "sensor-readings",
            b"bad-f",
            json.dumps({"stream": "bad-g", "ts": t, "values": [1.0]}).encode(),
            "key_mismatch",
        ),
        (
            "sensor-readings",
            b"bad-h",
            json.dumps({"stream": "bad-h", "ts": time.time() + 1e6, "values": [1.0]}).encode(),
            "future_timestamp",
        ),
        ("sensor-readings", b"bad-big", big, "too_large"),
        (
            "speech-features",
            b"bad-s",
            json.dumps({"stream": "bad-s", "ts": t, "features": [0.0] * 7}).encode(),
            "wrong_length",
        ),
        (
            "market-ticks",
            b"bad-t",
            json.dumps({"stream": "bad-t", "ts": t, "price": -1, "size": 1}).encode(),
            "out_of_range",
        ),
    ]


@pytest.fixture(scope="module")
def e2e(worker: WorkerHandle) -> E2E:
    t0 = time.time() - 3600.0
    sims = {
        "sensors": Simulator("sensors", M_SENSORS, seed=3, prefix="e2e"),
        "speech": Simulator("speech", 5, seed=4, prefix="e2e-call"),
        "ticks": Simulator("ticks", 5, seed=5, prefix="e2e-SYM"),
    }
    (anomaly,) = sims["sensors"].inject(1, ANOMALY_ROUND, ANOMALY_ROUND + 1, length=20)
    s = worker.settings
    records: list[tuple[str, bytes | None, bytes | None]] = []
    sent: dict[str, list[tuple[str, float, bytes, bytes]]] = {k: [] for k in sims}
    for k in range(ROUNDS):
        for source, sim in sims.items():
            if source != "sensors" and k >= 60:
                continue
            for e in sim.round(t0 + 0.1 * k):
                records.append((s.topic(source), e.key(), e.value()))
                sent[source].append((e.stream, e.ts, e.key(), e.value()))
    bad = _bad_records(t0 + 1)
    records += [(topic, k, v) for topic, k, v, _ in bad]
    # out of order: older than the stream's last event (the Runner rejects it)
    late = json.dumps({"stream": "e2e-0000", "ts": t0, "values": [1.0]}).encode()
    records.append(("sensor-readings", b"e2e-0000", late))
    expected_bad = [(topic, reason) for topic, _, _, reason in bad] + [("sensor-readings", "out_of_order")]

    n_valid = sum(len(v) for v in sent.values())
    start = time.monotonic()
    produce_records(s.bootstrap_servers[0], records)

    def done(got: dict[str, list[Any]]) -> bool:
        preds = sum(1 for r in got[s.topic_predictions] if r.key and r.key.startswith(b"e2e"))
        return preds >= n_valid and len(got[s.topic_dead_letter]) >= len(expected_bad)

    out = consume_until(
        s.bootstrap_servers[0], [s.topic_predictions, s.topic_alerts, s.topic_dead_letter], done, timeout=120
    )
    return E2E(worker, sent, anomaly.stream, expected_bad, out, time.monotonic() - start)


def _preds(e: E2E) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in e.out[e.handle.settings.topic_predictions] if r.key.startswith(b"e2e")]


def test_every_valid_event_has_exactly_one_prediction(e2e: E2E) -> None:
    preds = _preds(e2e)
    n_valid = sum(len(v) for v in e2e.sent.values())
    assert len(preds) == n_valid, f"{len(preds)} predictions for {n_valid} events"
    ids = [p["id"] for p in preds]
    assert len(set(ids)) == len(ids), "duplicate prediction ids"
    per_stream = Counter(p["stream"] for p in preds)
    sent_per_stream = Counter(st for v in e2e.sent.values() for st, *_ in v)
    assert per_stream == sent_per_stream
    for p in preds:  # the stable id names the input record
        topic, part, off = p["id"].rsplit(":", 2)
        assert p["input"] == {"topic": topic, "partition": int(part), "offset": int(off)}
    # every input offset of a valid event appears: offsets per (topic, partition) are contiguous
    # apart from the dead letters
    dead_ids = {orjson.loads(r.value)["id"] for r in e2e.out[e2e.handle.settings.topic_dead_letter]}
    by_tp: dict[tuple[str, int], set[int]] = {}
    for i in [*ids, *dead_ids]:
        topic, part, off = i.rsplit(":", 2)
        by_tp.setdefault((topic, int(part)), set()).add(int(off))
    for tp, offs in by_tp.items():
        assert offs == set(range(min(offs), max(offs) + 1)), f"gap in offsets of {tp}"
    print(f"e2e: {n_valid} events + {len(e2e.bad)} bad records processed in {e2e.seconds:.1f} s")


def test_injected_anomaly_alerts_only_its_stream(e2e: E2E) -> None:
    alerts = [orjson.loads(r.value) for r in e2e.out[e2e.handle.settings.topic_alerts]]
    opened = {a["stream"] for a in alerts if a["state"] == "open" and a["stream"].startswith("e2e")}
    assert opened == {e2e.anomaly_stream}
    a = next(a for a in alerts if a["stream"] == e2e.anomaly_stream and a["state"] == "open")
    assert a["source"] == "sensors" and a["score"] >= a["threshold"] and a["explanation"]
    assert a["severity"] in ("minor", "major", "critical") and len(a["expected"]) == len(a["actual"]) == 1


def test_bad_records_are_dead_lettered_with_reasons(e2e: E2E) -> None:
    dead = [orjson.loads(r.value) for r in e2e.out[e2e.handle.settings.topic_dead_letter]]
    got = Counter((d["input"]["topic"], d["reason"]) for d in dead)
    assert got == Counter(e2e.bad)
    for d in dead:
        assert d["message"] and d["source"] in ("sensors", "speech", "ticks")
    # N accepted + K rejected = N + K produced
    n_valid = sum(len(v) for v in e2e.sent.values())
    assert len(_preds(e2e)) + len(dead) == n_valid + len(e2e.bad)


def test_worker_keeps_running_and_counts(e2e: E2E) -> None:
    w = e2e.handle.process
    assert w.alive(), w.log_tail()
    m = w.metrics()
    dead = {k: v for k, v in m.items() if k.startswith("seqstream_dead_letters_total{")}
    assert sum(dead.values()) >= len(e2e.bad)
    assert any('reason="not_json"' in k for k in dead) and any('reason="out_of_order"' in k for k in dead)
    assert m['seqstream_active_streams{source="sensors"}'] >= M_SENSORS
    assert m['seqstream_model_info{model="test-sensors",source="sensors"}'] == 1.0
    assert m['seqstream_alerts_total{source="sensors",state="open"}'] >= 1


def test_predictions_equal_a_direct_runner(e2e: E2E) -> None:
    """Same checkpoint, same per-stream order through a fresh Runner: equal within 1e-5."""
    preds = {p["id"]: p for p in _preds(e2e)}
    by_stream_ts = {(p["stream"], p["ts"]): p for p in preds.values()}
    for source, events in e2e.sent.items():
        runner = Runner.from_checkpoint(e2e.handle.checkpoints[source], device="cpu")
        from types import SimpleNamespace

        from stream.codec import decode_batch
        from stream.sources import SOURCES

        recs = [
            SimpleNamespace(topic="x", partition=0, offset=i, key=k, value=v, timestamp=0)
            for i, (_, _, k, v) in enumerate(events)
        ]
        d = decode_batch(SOURCES[source].wire, recs, n_features=runner.n_features, now=time.time())
        worst = 0.0
        for a in range(0, len(d.index), 97):  # a batch size unlike the worker's
            res = runner.process(Batch(d.stream_ids[a : a + 97], d.ts[a : a + 97], d.x[a : a + 97]))
            for j in range(len(res.accepted)):
                p = by_stream_ts[(d.stream_ids[a + j], float(d.ts[a + j]))]
                worst = max(worst, float(np.abs(np.asarray(p["prediction"]) - res.prediction[j]).max()))
                assert abs(p["score"] - float(res.score[j])) <= 1e-5
                assert p["anomaly"] == bool(res.anomaly[j])
        assert worst <= 1e-5, f"{source}: max |kafka - runner| = {worst}"


def test_predictions_equal_seqstream_replay(e2e: E2E, tmp_path: Path) -> None:
    """The sensor events written as CSV and replayed offline give the same predictions."""
    src = tmp_path / "events.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "stream"])
        for stream, ts, _, v in e2e.sent["sensors"]:
            w.writerow([repr(ts), repr(orjson.loads(v)["values"][0]), stream])
    out = tmp_path / "out.csv"
    replay_path(src, out, checkpoint=e2e.handle.checkpoints["sensors"], batch_size=128, device="cpu")
    by_stream_ts = {(p["stream"], p["ts"]): p for p in _preds(e2e) if p["source"] == "sensors"}
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(e2e.sent["sensors"])
    for row in rows:
        p = by_stream_ts[(row["stream"], float(row["timestamp"]))]
        assert row["status"] == "ok"
        assert abs(float(row["prediction"]) - p["prediction"][0]) <= 1e-5
        assert abs(float(row["anomaly_score"]) - p["score"]) <= 1e-5
