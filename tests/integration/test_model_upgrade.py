"""A model upgrade on a real broker: each SEQSTREAM_ON_MODEL_CHANGE policy, checkpoint A then checkpoint B.

In process (the batch engine, no Faust), per test on topics of its own: an engine with checkpoint
A processes the first part of a keyed stream and snapshots every partition; the second part is
produced; an engine with checkpoint B (A's weights perturbed: same shapes, another model) joins the
same consumer group. Then, from the output topics and the engine:

* rewarm: B's state and predictions equal a run of B over the whole input (the replay rebuilt the
  state through B), the first part's inputs have exactly one output each (the replay produced none);
* reset: B's predictions equal a run of B over the second part alone (fresh state), counted;
* refuse: B's engine stops with one line naming both fingerprints and produces nothing;
  and the ``seqstream worker`` process exits non-zero with that line.

``SEQSTREAM_TEST_BROKER`` picks Kafka (default) or Tansu; Run:
``.venv/bin/python -m pytest -q -s -m integration tests/integration/test_model_upgrade.py``
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
import torch

from models import load_checkpoint, save_checkpoint
from models.errors import ModelChangeError
from stream.admin import create_topics
from stream.engine import BatchEngine
from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings
from stream.tools.brokers import free_port

from .conftest import Broker, consume_until, produce_records

pytestmark = pytest.mark.integration

PARTITIONS, STREAMS, ROUNDS_A, ROUNDS_B = 2, 12, 30, 8


@pytest.fixture(scope="module")
def checkpoint_b(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Checkpoint A (the session's sensors checkpoint) with perturbed weights: same shapes, another model."""
    ck = load_checkpoint(checkpoints["sensors"])
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in ck.model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt-b") / "sensors-b.pt", ck.model, ck.scoring, {"model_id": "b"})


class Upgrade:
    """Topics, inputs and the two engines of one upgrade scenario."""

    def __init__(self, broker: Broker, a: Path, b: Path, policy: str) -> None:
        tag = uuid.uuid4().hex[:6]
        self.broker, self.a, self.b, self.policy = broker, a, b, policy
        self.topics = {k: f"up-{tag}-{k}" for k in ("sensors", "predictions", "alerts", "dead_letter", "state")}
        self.env = {
            "SEQSTREAM_BROKER_URL": broker.url,
            "SEQSTREAM_PROFILE": broker.profile,
            "SEQSTREAM_APP_ID": f"up-{tag}",
            "SEQSTREAM_SOURCES": "sensors",
            "SEQSTREAM_PARTITIONS": str(PARTITIONS),
            "SEQSTREAM_SNAPSHOT_INTERVAL_S": "0.3",
            **{f"SEQSTREAM_TOPIC_{k.upper()}": v for k, v in self.topics.items()},
        }
        create_topics(broker.bootstrap, [v for k, v in self.topics.items() if k != "state"], PARTITIONS)
        self.t0 = time.time() - 10 * (ROUNDS_A + ROUNDS_B) - 100

    def settings(self, checkpoint: Path) -> Settings:
        return Settings(
            broker_url=self.broker.url,
            profile=self.broker.profile,
            app_id=self.env["SEQSTREAM_APP_ID"],
            sources=("sensors",),
            partitions=PARTITIONS,
            snapshot_interval_s=0.3,
            checkpoint_sensors=checkpoint,
            on_model_change=self.policy,
            **{f"topic_{k}": v for k, v in self.topics.items()},
        )

    def produce(self, rounds: range) -> None:
        rng = np.random.default_rng(rounds.start)
        recs = []
        for k in rounds:
            for i in range(STREAMS):
                x = float(np.sin(k / 4 + i) + 0.1 * rng.standard_normal())
                value = orjson.dumps({"stream": f"m{i:02d}", "ts": self.t0 + 10 * k, "values": [x]})
                recs.append((self.topics["sensors"], f"m{i:02d}".encode(), value))
        produce_records(self.broker.bootstrap, recs)

    def run_engine(
        self, checkpoint: Path, n_inputs: int, timeout: float = 60.0
    ) -> tuple[BatchEngine, Exception | None]:
        """An engine with ``checkpoint`` until it processed and snapshotted ``n_inputs`` records (or raised)."""
        s = self.settings(checkpoint)
        metrics = Metrics()
        engine = BatchEngine(s, {"sensors": SourcePipeline("sensors", build_runner(s, "sensors"), s, metrics)}, metrics)

        async def go() -> Exception | None:
            await engine.start()
            task = asyncio.create_task(engine.run())
            err: Exception | None = None
            try:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    if task.done():
                        err = task.exception()  # type: ignore[assignment]
                        break
                    parts = [(st.next_offset or 0, st.snap_offset) for st in engine.state.parts.values()]
                    done = len(parts) == PARTITIONS and sum(nxt for nxt, _ in parts) >= n_inputs
                    if done and all(snap == nxt - 1 for nxt, snap in parts):
                        break
                else:
                    pytest.fail(f"the engine did not process {n_inputs} inputs within {timeout} s")
            finally:
                await engine.stop()
                if not task.done():
                    await asyncio.wait_for(task, 10)
            return err

        return engine, asyncio.run(go())

    def outputs(self, n_inputs: int) -> tuple[list[Any], dict[str, list[dict[str, Any]]]]:
        """The inputs, and every output (prediction or dead letter) by input id, once each input has one."""
        t = self.topics

        def done(got: dict[str, list[Any]]) -> bool:
            ids = {orjson.loads(r.value)["id"] for r in got[t["predictions"]] + got[t["dead_letter"]]}
            return len(got[t["sensors"]]) >= n_inputs and len(ids) >= n_inputs

        got = consume_until(self.broker.bootstrap, [t["sensors"], t["predictions"], t["dead_letter"]], done, 30)
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in got[t["predictions"]] + got[t["dead_letter"]]:
            d = orjson.loads(r.value)
            out[d["id"]].append(d)
        return sorted(got[t["sensors"]], key=lambda r: (r.partition, r.offset)), out

    def reference(self, checkpoint: Path, inputs: list[Any]) -> tuple[SourcePipeline, dict[str, dict[str, Any]]]:
        """A fresh pipeline with ``checkpoint`` over ``inputs`` (partition by partition, in offset order)."""
        s = self.settings(checkpoint)
        ref = SourcePipeline("sensors", build_runner(s, "sensors"), s)
        by_part: dict[int, list[Any]] = defaultdict(list)
        for r in inputs:
            by_part[r.partition].append(
                SimpleNamespace(
                    topic=r.topic, partition=r.partition, offset=r.offset, key=r.key, value=r.value, timestamp=0
                )
            )
        want = {}
        for recs in by_part.values():
            for i in range(0, len(recs), 64):
                for o in ref.process(recs[i : i + 64]).outputs:
                    d = orjson.loads(o.value)
                    want[d["id"]] = d
        return ref, want


def _worst(got: dict[str, list[dict[str, Any]]], want: dict[str, dict[str, Any]]) -> float:
    return max(float(np.max(np.abs(np.subtract(got[k][-1]["prediction"], w["prediction"])))) for k, w in want.items())


def _id(r: Any) -> str:
    return f"{r.topic}:{r.partition}:{r.offset}"


def _second_part(setup: Upgrade, inputs: list[Any]) -> list[Any]:
    """The inputs produced after engine A stopped (their rounds' event times come after ROUNDS_A's)."""
    out = [r for r in inputs if orjson.loads(r.value)["ts"] >= setup.t0 + 10 * ROUNDS_A]
    assert len(out) == STREAMS * ROUNDS_B
    return out


def _first_part(setup: Upgrade) -> int:
    n_a = STREAMS * ROUNDS_A
    setup.produce(range(ROUNDS_A))
    engine, err = setup.run_engine(setup.a, n_a)
    assert err is None and engine.state.snapshots_written >= PARTITIONS
    setup.produce(range(ROUNDS_A, ROUNDS_A + ROUNDS_B))
    return n_a


def _changes(engine: BatchEngine, action: str) -> float:
    return float(engine.metrics.state_model_change.labels(source="sensors", action=action)._value.get())


@pytest.mark.smoke
def test_rewarm_rebuilds_the_state_through_the_new_model(
    broker: Broker, checkpoints: dict[str, Path], checkpoint_b: Path
) -> None:
    setup = Upgrade(broker, checkpoints["sensors"], checkpoint_b, "rewarm")
    n = _first_part(setup) + STREAMS * ROUNDS_B
    engine, err = setup.run_engine(checkpoint_b, n)
    assert err is None and _changes(engine, "rewarm") == PARTITIONS and _changes(engine, "reset") == 0
    inputs, got = setup.outputs(n)
    assert len(got) == n and not [k for k, v in got.items() if len(v) > 1], "the re-warm replay produced outputs"
    second = _second_part(setup, inputs)
    ref_b, want_all = setup.reference(checkpoint_b, inputs)  # B over all the input: what a re-warm rebuilds
    _, want_fresh = setup.reference(checkpoint_b, second)  # B from fresh state: what a reset gives
    worst = _worst(got, {_id(r): want_all[_id(r)] for r in second})
    fresh = _worst(got, want_fresh)
    print(f"rewarm: second part vs B over all input {worst:.2e}, vs B from fresh state {fresh:.2e}")
    assert worst <= 1e-5 and fresh > 1e-3  # and the check tells a re-warm from a reset
    live = engine.pipelines["sensors"]  # the state itself: each stream's as B's run over all the input left it
    for p in range(PARTITIONS):
        mine, ref = live.partition_snapshot(p), ref_b.partition_snapshot(p)
        assert sorted(mine.stream_ids) == sorted(ref.stream_ids) and len(mine) > 0
        order = [ref.stream_ids.index(sid) for sid in mine.stream_ids]
        torch.testing.assert_close(mine.hidden, ref.hidden[order], atol=1e-5, rtol=0)


def test_reset_starts_fresh_and_counts(broker: Broker, checkpoints: dict[str, Path], checkpoint_b: Path) -> None:
    setup = Upgrade(broker, checkpoints["sensors"], checkpoint_b, "reset")
    n = _first_part(setup) + STREAMS * ROUNDS_B
    engine, err = setup.run_engine(checkpoint_b, n)
    assert err is None and _changes(engine, "reset") == PARTITIONS and _changes(engine, "rewarm") == 0
    inputs, got = setup.outputs(n)
    assert len(got) == n and not [k for k, v in got.items() if len(v) > 1]
    second = _second_part(setup, inputs)
    _, want_fresh = setup.reference(checkpoint_b, second)  # B from fresh state over the second part alone
    _, want_all = setup.reference(checkpoint_b, inputs)
    worst = _worst(got, want_fresh)
    rewarmed = _worst(got, {k: want_all[k] for k in want_fresh})
    print(f"reset: second part vs B from fresh state {worst:.2e}, vs B over all input {rewarmed:.2e}")
    assert worst <= 1e-5 and rewarmed > 1e-3


def test_refuse_stops_with_one_line(
    broker: Broker, checkpoints: dict[str, Path], checkpoint_b: Path, tmp_path: Path
) -> None:
    setup = Upgrade(broker, checkpoints["sensors"], checkpoint_b, "refuse")
    n_a = _first_part(setup)
    engine, err = setup.run_engine(checkpoint_b, n_a + STREAMS * ROUNDS_B)
    assert isinstance(err, ModelChangeError) and _changes(engine, "refuse") >= 1, err
    line = str(err)
    print(f"refuse (engine): {line}")
    assert "\n" not in line and "SEQSTREAM_ON_MODEL_CHANGE=refuse" in line
    assert engine.pipelines["sensors"].fingerprint in line and engine.events == 0  # nothing ran
    # the worker process: exit 2 with that line
    env = {**os.environ, **setup.env, "SEQSTREAM_CHECKPOINT_SENSORS": str(checkpoint_b)}
    env |= {"SEQSTREAM_ON_MODEL_CHANGE": "refuse", "SEQSTREAM_WEB_PORT": str(free_port())}
    cmd = [sys.executable, "-m", "stream.cli", "worker"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    lines = (p.stdout + p.stderr).splitlines()
    said = [ln for ln in lines if "SEQSTREAM_ON_MODEL_CHANGE=refuse" in ln]
    print(f"refuse (worker): rc {p.returncode}, {len(lines)} log lines; last: {lines[-3:]}")
    assert p.returncode == 2 and said, "\n".join(lines[-40:])
    # after a graceful stop, the command's last word is the refusal in one line, with no traceback
    assert lines[-1].startswith("seqstream: error: ") and "SEQSTREAM_ON_MODEL_CHANGE=refuse" in lines[-1], lines[-5:]
    assert not any("Traceback" in ln for ln in lines), "\n".join(lines[-40:])
    inputs, got = setup.outputs(n_a)
    assert len(got) == n_a and not set(got) & {_id(r) for r in _second_part(setup, inputs)}  # no output of B's
