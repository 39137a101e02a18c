"""Reorder buffer against a real Tansu broker and real worker processes, with a ``kill -9``.

Events arrive up to 25 s of event time out of order (grace 30 s) and 1 in 40 far too late; the
worker is killed mid-stream and restarted. Then: every input offset has exactly one kind of
output (a prediction or a dead letter ``late``), duplicates are equal, and the predictions equal
an uninterrupted run of the same buffer over the same input (= the event-time-sorted run). Held
events survive the kill because they are part of the partition snapshots.

Run: ``.venv/bin/python -m pytest -q -s -m integration tests/integration/test_reorder_durability.py``
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings

from .conftest import Broker
from .test_durability import Setup, _kill, read_all

pytestmark = pytest.mark.integration

GRACE, JITTER, STEP, LATE_EVERY = 30.0, 25.0, 10.0, 40


def produce_shuffled(bootstrap: str, topic: str, n_streams: int, rounds: int, seconds: float) -> None:
    """Rounds of one event per stream; arrival order is event time + U(0, JITTER); some far too late."""

    async def run() -> None:
        from aiokafka import AIOKafkaProducer

        from stream.engine import BulkProducer
        from stream.pipeline import Output

        rng = np.random.default_rng(5)
        t0 = time.time() - STEP * rounds - 1000
        events = []
        for k in range(rounds):
            for i in range(n_streams):
                ts = t0 + STEP * k
                late = (k * n_streams + i) % LATE_EVERY == LATE_EVERY - 1 and k > 5
                events.append((ts + float(rng.uniform(0, JITTER)), f"r{i:03d}", float(ts - 200.0 if late else ts), k))
        events.sort()
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
        await p.start()
        bulk = BulkProducer(p)
        start = time.monotonic()
        try:
            per = len(events) // rounds
            for r in range(rounds):
                outs = [
                    Output(
                        topic, sid.encode(), orjson.dumps({"stream": sid, "ts": ts, "values": [float(np.sin(k / 5))]})
                    )
                    for _, sid, ts, k in events[r * per : (r + 1) * per]
                ]
                await asyncio.gather(*await bulk.send_all(outs))
                lag = start + seconds * (r + 1) / rounds - time.monotonic()
                if lag > 0:
                    await asyncio.sleep(lag)
        finally:
            await p.stop()

    asyncio.run(run())


def test_reorder_buffer_survives_kill9(broker: Broker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    env = {"SEQSTREAM_REORDER_GRACE_S": str(GRACE), "SEQSTREAM_REORDER_MAX_HOLD_S": "6"}
    setup = Setup(broker, checkpoints, tmp_path, **env)
    n_streams, rounds, seconds = 24, 150, 18.0
    n_inputs = n_streams * rounds
    w = setup.worker()
    workers = [w]
    try:
        w.wait_ready(timeout=90)
        prod = threading.Thread(
            target=produce_shuffled, args=(broker.bootstrap, setup.topics["sensors"], n_streams, rounds, seconds)
        )
        prod.start()
        time.sleep(random.Random(3).uniform(4.0, 7.0))
        assert prod.is_alive(), "the kill must happen mid-stream"
        _kill(w)
        w = setup.worker()
        workers.append(w)
        w.wait_ready(timeout=90)
        prod.join()
        got = read_all(setup, n_inputs, timeout=120)
        t = setup.topics
        inputs = sorted(got[t["sensors"]], key=lambda r: (r.partition, r.offset))
        assert len(inputs) == n_inputs
        preds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        dead: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in got[t["predictions"]]:
            d = orjson.loads(r.value)
            preds[d["id"]].append(d)
        for r in got[t["dead_letter"]]:
            d = orjson.loads(r.value)
            dead[d["id"]].append(d)
        ids_in = {f"{r.topic}:{r.partition}:{r.offset}" for r in inputs}
        lost = ids_in - set(preds) - set(dead)
        assert not lost, f"{len(lost)} input offsets without output, e.g. {sorted(lost)[:5]}"
        assert not (set(preds) & set(dead)), "an input has both a prediction and a dead letter"
        assert {d["reason"] for v in dead.values() for d in v} == {"late"}
        # the uninterrupted run: the same buffer over the same records, flushed at the end
        settings = Settings(
            broker_url=broker.url,
            sources=("sensors",),
            checkpoint_sensors=checkpoints["sensors"],
            topic_sensors=t["sensors"],
            reorder_grace_s=GRACE,
        )
        ref = SourcePipeline("sensors", build_runner(settings, "sensors"), settings)
        recs = [
            SimpleNamespace(
                topic=r.topic, partition=r.partition, offset=r.offset, key=r.key, value=r.value, timestamp=0
            )
            for r in inputs
        ]
        outs = [o for i in range(0, len(recs), 256) for o in ref.process(recs[i : i + 256]).outputs]
        outs += ref.release_due(now=float("inf")).outputs  # type: ignore[union-attr]
        want = {d["id"]: d for d in map(orjson.loads, (o.value for o in outs if o.topic == settings.topic_predictions))}
        want_dead = {orjson.loads(o.value)["id"] for o in outs if o.topic == settings.topic_dead_letter}
        assert set(want) == set(preds) and want_dead == set(dead)
        assert len(want_dead) >= n_inputs // LATE_EVERY - n_streams * 6
        worst, dups = 0.0, 0
        for k, w_ in want.items():
            dups += len(preds[k]) - 1
            for c in preds[k]:
                worst = max(worst, float(np.max(np.abs(np.subtract(c["prediction"], w_["prediction"])))))
                worst = max(worst, abs(c["score"] - w_["score"]))
        logs = "\n".join(x.log_path.read_text(errors="replace") for x in workers)
        held = [int(n) for n in re.findall(r"restored snapshot @ \d+ \(\d+ streams, (\d+) held events\)", logs)]
        print(f"reorder kill -9: {len(want)} predictions, {len(want_dead)} late, {dups} duplicates, worst {worst:g}, "
              f"held events restored per partition {held}")  # fmt: skip
        assert worst <= 1e-5, f"predictions differ from the uninterrupted run by {worst}"
        assert held and sum(held) > 0, "no held event was restored from a snapshot"
    finally:
        for x in workers:
            x.stop()
