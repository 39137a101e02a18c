"""Durable state against a real Tansu broker and real worker processes (``kill -9``, rebalances).

Each test runs its own workers on its own topics (unique names), produces a long keyed stream in
a background thread, kills workers mid-stream and checks, from the output topics:

* 0 lost: every input offset has a prediction or a dead letter;
* duplicates are identifiable by their id ``topic:partition:offset`` and all copies are equal;
* for every stream, the predictions equal an uninterrupted reference run (a fresh Runner over
  the same events in per-stream order) within 1e-5.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from stream.admin import create_topics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings
from stream.tools.worker_process import WorkerProcess

from .conftest import Broker, consume_until

pytestmark = pytest.mark.integration

PARTITIONS = 4


class Setup:
    """Topics, settings and worker factory of one durability scenario."""

    def __init__(self, broker: Broker, checkpoints: dict[str, Path], tmp: Path, **extra: str) -> None:
        tag = uuid.uuid4().hex[:6]
        self.broker, self.tmp = broker, tmp
        self.topics = {
            "sensors": f"dur-{tag}-in",
            "predictions": f"dur-{tag}-pred",
            "alerts": f"dur-{tag}-alerts",
            "dead_letter": f"dur-{tag}-dead",
            "state": f"dur-{tag}-state",
            "control": f"dur-{tag}-control",
        }
        self.env = {
            "SEQSTREAM_BROKER_URL": broker.url,
            "SEQSTREAM_PROFILE": broker.profile,
            "SEQSTREAM_APP_ID": f"dur-{tag}",
            "SEQSTREAM_SOURCES": "sensors",
            "SEQSTREAM_PARTITIONS": str(PARTITIONS),
            "SEQSTREAM_CHECKPOINT_SENSORS": str(checkpoints["sensors"]),
            "SEQSTREAM_SNAPSHOT_INTERVAL_S": "0.5",
            # kill -9 leaves the dead worker in the group until its session times out (Kafka's default: 45 s);
            # 6 s keeps these tests short, and nothing they check depends on how long the takeover waits
            "SEQSTREAM_SESSION_TIMEOUT_S": "6",
            **{f"SEQSTREAM_TOPIC_{k.upper()}": v for k, v in self.topics.items()},
            **extra,
        }
        self.settings = Settings(
            broker_url=broker.url,
            profile=broker.profile,
            sources=("sensors",),
            checkpoint_sensors=checkpoints["sensors"],
            topic_sensors=self.topics["sensors"],
        )
        create_topics(broker.bootstrap, [v for k, v in self.topics.items() if k != "state"], PARTITIONS)
        self.n = 0

    def worker(self) -> WorkerProcess:
        self.n += 1
        return WorkerProcess(self.env, log_path=self.tmp / f"worker-{self.n}.log").start()


def produce_stream(
    bootstrap: str,
    topic: str,
    n_streams: int,
    rounds: int,
    seconds: float,
    bad_every: int = 0,
    idempotent: bool = False,
) -> None:
    """Rounds of one event per stream, spread over ``seconds`` (a few bad records mixed in).

    ``idempotent``: a retried send (a broker restart) never writes an input twice (Kafka only)."""

    async def run() -> None:
        from aiokafka import AIOKafkaProducer

        from stream.engine import BulkProducer
        from stream.pipeline import Output

        p = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, enable_idempotence=idempotent
        )
        await p.start()
        bulk = BulkProducer(p)
        rng = np.random.default_rng(7)
        t0 = time.time() - 10 * rounds
        start = time.monotonic()
        try:
            for k in range(rounds):
                outs = []
                for i in rng.permutation(n_streams).tolist():
                    sid = f"d{i:03d}"
                    x = float(np.sin(k / 5 + i) + 0.1 * rng.standard_normal())
                    value = orjson.dumps({"stream": sid, "ts": t0 + 10 * k, "values": [x]})
                    if bad_every and (k * n_streams + i) % bad_every == 0:
                        value = b"not json"
                    outs.append(Output(topic, sid.encode(), value))
                await asyncio.gather(*await bulk.send_all(outs))
                lag = start + seconds * (k + 1) / rounds - time.monotonic()
                if lag > 0:
                    await asyncio.sleep(lag)
        finally:
            await p.stop()

    asyncio.run(run())


def read_all(
    setup: Setup, n_inputs: int, timeout: float = 120.0, isolation_level: str = "read_uncommitted"
) -> dict[str, list[Any]]:
    t = setup.topics
    topics = [t["sensors"], t["predictions"], t["dead_letter"]]

    def done(got: dict[str, list[Any]]) -> bool:
        if len(got[t["sensors"]]) < n_inputs:
            return False
        ids = {orjson.loads(r.value)["id"] for r in got[t["predictions"]] + got[t["dead_letter"]]}
        return len(ids) >= n_inputs

    return consume_until(setup.broker.bootstrap, topics, done, timeout=timeout, isolation_level=isolation_level)


def check_outputs(
    setup: Setup, got: dict[str, list[Any]], n_inputs: int, tol: float = 1e-5, exactly_once: bool = False
) -> dict[str, Any]:
    """0 lost, duplicates equal (``exactly_once``: none at all), predictions equal to an uninterrupted
    reference run within ``tol``; the result holds that run's pipeline (``"reference"``)."""
    t = setup.topics
    inputs = sorted(got[t["sensors"]], key=lambda r: (r.partition, r.offset))
    assert len(inputs) == n_inputs
    ids_in = {f"{r.topic}:{r.partition}:{r.offset}" for r in inputs}
    preds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in got[t["predictions"]]:
        d = orjson.loads(r.value)
        preds[d["id"]].append(d)
    dead: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in got[t["dead_letter"]]:
        d = orjson.loads(r.value)
        dead[d["id"]].append(d)
    lost = ids_in - set(preds) - set(dead)
    assert not lost, f"{len(lost)} input offsets without output, e.g. {sorted(lost)[:5]}"
    assert not (set(preds) & set(dead)), "an input has both a prediction and a dead letter"
    dups = sum(len(v) - 1 for v in preds.values()) + sum(len(v) - 1 for v in dead.values())
    if exactly_once:
        twice = sorted(k for k, v in [*preds.items(), *dead.items()] if len(v) > 1)
        assert not twice, f"{len(twice)} input ids have more than one output, e.g. {twice[:5]}"
    for copies in preds.values():
        for c in copies[1:]:
            np.testing.assert_allclose(c["prediction"], copies[0]["prediction"], atol=1e-5)
            assert abs(c["score"] - copies[0]["score"]) < 1e-5
    # reference: a fresh pipeline over the same records, partition by partition in offset order
    ref = SourcePipeline("sensors", build_runner(setup.settings, "sensors"), setup.settings)
    want: dict[str, dict[str, Any]] = {}
    by_part: dict[int, list[Any]] = defaultdict(list)
    for r in inputs:
        by_part[r.partition].append(
            SimpleNamespace(
                topic=r.topic, partition=r.partition, offset=r.offset, key=r.key, value=r.value, timestamp=0
            )
        )
    for recs in by_part.values():
        for i in range(0, len(recs), 256):
            for o in ref.process(recs[i : i + 256]).outputs:
                d = orjson.loads(o.value)
                if o.topic == setup.settings.topic_predictions:
                    want[d["id"]] = d
    assert set(want) == set(preds)
    worst = 0.0
    for k, w in want.items():
        last = preds[k][-1]
        worst = max(worst, float(np.max(np.abs(np.subtract(last["prediction"], w["prediction"])))))
        worst = max(worst, abs(last["score"] - w["score"]))
    assert worst <= tol, f"predictions differ from the uninterrupted run by {worst}"
    return {"duplicates": dups, "worst": worst, "dead": len(dead), "reference": ref}


def _kill(w: WorkerProcess) -> None:
    assert w.proc is not None
    w.proc.kill()  # SIGKILL: no revocation, no flush, no commit
    w.proc.wait(timeout=10)


@pytest.mark.smoke
def test_kill9_crash_recovery(broker: Broker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    setup = Setup(broker, checkpoints, tmp_path)
    n_streams, rounds, seconds = 48, 220, 30.0
    n_inputs = n_streams * rounds
    rnd = random.Random(11)
    w = setup.worker()
    workers = [w]
    try:
        w.wait_ready(timeout=90)
        prod = threading.Thread(
            target=produce_stream,
            args=(broker.bootstrap, setup.topics["sensors"], n_streams, rounds, seconds, 97),
        )
        prod.start()
        restarts = []
        for _ in range(2):
            time.sleep(rnd.uniform(1.5, 3.5))
            assert prod.is_alive(), "the kill must happen mid-stream"
            _kill(w)
            t_kill = time.monotonic()
            w = setup.worker()
            workers.append(w)
            w.wait_ready(timeout=90)
            restarts.append(time.monotonic() - t_kill)
        prod.join()
        got = read_all(setup, n_inputs)
        res = check_outputs(setup, got, n_inputs)
        logs = "\n".join(x.log_path.read_text(errors="replace") for x in workers)
        restored = re.findall(r"restored snapshot @ (\d+)", logs)
        res.pop("reference")
        print(f"crash test: {res}, restarts (kill -> assigned) {[f'{s:.1f}' for s in restarts]} s, "
              f"{len(restored)} partition restores from snapshots")  # fmt: skip
        assert restored, "no partition was restored from a snapshot"
        assert res["dead"] >= n_inputs // 97 - 1
    finally:
        for x in workers:
            x.stop()


def test_rebalance_survivor_takes_over(broker: Broker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    setup = Setup(broker, checkpoints, tmp_path)
    n_streams, rounds, seconds = 48, 140, 16.0
    n_inputs = n_streams * rounds
    a = setup.worker()
    b = setup.worker()
    try:
        a.wait_ready(timeout=90)
        b.wait_ready(timeout=90)
        # wait until both hold partitions (the second join rebalanced the first)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pa = a.metrics().get("seqstream_assigned_partitions", 0)
            pb = b.metrics().get("seqstream_assigned_partitions", 0)
            if pa > 0 and pb > 0 and pa + pb == PARTITIONS:
                break
            time.sleep(0.3)
        assert pb > 0, "the second worker never got partitions"
        prod = threading.Thread(
            target=produce_stream, args=(broker.bootstrap, setup.topics["sensors"], n_streams, rounds, seconds)
        )
        prod.start()
        time.sleep(4.0)
        assigned = re.findall(r"partitions assigned: \[([^\]]*)\]", a.log_path.read_text())
        mine = {int(x.strip(" '").rsplit(":", 1)[1]) for x in assigned[-1].split(",") if x.strip()}
        moved = set(range(PARTITIONS)) - mine
        t_kill = time.time()
        _kill(b)
        prod.join()
        got = read_all(setup, n_inputs)
        res = check_outputs(setup, got, n_inputs)
        after = [
            r.timestamp / 1000.0 - t_kill
            for r in got[setup.topics["predictions"]]
            if r.timestamp / 1000.0 > t_kill and orjson.loads(r.value)["input"]["partition"] in moved
        ]
        recovery = min(after)
        res.pop("reference")
        print(
            f"rebalance test: {res}, moved partitions {sorted(moved)}, recovery (kill -> first output) {recovery:.2f} s"
        )
        assert a.alive()
        assert "restored snapshot @" in a.log_path.read_text()
        assert recovery < 30
    finally:
        a.stop()
        b.stop()
