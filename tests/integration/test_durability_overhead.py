"""Snapshot overhead on throughput: the same backlog through a worker with snapshots off and on.

Run: ``.venv/bin/python -m pytest -q -s -m integration tests/integration/test_durability_overhead.py``
(prints both rates; the numbers go to docs/reliability.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from .conftest import Broker, produce_records
from .test_durability import Setup

pytestmark = pytest.mark.integration

N_STREAMS, ROUNDS = 2000, 40  # 80k events


def _rate(broker: Broker, checkpoints: dict[str, Path], tmp: Path, **env: str) -> tuple[float, float]:
    tmp.mkdir(parents=True, exist_ok=True)
    setup = Setup(broker, checkpoints, tmp, **env)
    topic = setup.topics["sensors"]
    recs = []
    for k in range(ROUNDS):
        for i in range(N_STREAMS):
            sid = f"o{i:05d}"
            recs.append(
                (topic, sid.encode(), orjson.dumps({"stream": sid, "ts": 1.7e9 + k, "values": [float(np.sin(k + i))]}))
            )
    produce_records(broker.bootstrap, recs)
    w = setup.worker()
    try:
        w.wait_ready(timeout=90)
        t_first = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            n = sum(v for k, v in w.metrics().items() if k.startswith("seqstream_events_in_total"))
            if n > 0 and t_first is None:
                t_first, n_first = time.monotonic(), n
            if n >= len(recs):
                m = w.metrics()
                snaps = m.get("seqstream_state_snapshots_total", 0.0)
                return (n - n_first) / (time.monotonic() - t_first), snaps  # type: ignore[operator]
            time.sleep(0.05)
        raise AssertionError("backlog not drained")
    finally:
        w.stop()


def test_snapshot_overhead(broker: Broker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    off, _ = _rate(broker, checkpoints, tmp_path / "off", SEQSTREAM_STATE_ENABLED="false")
    on, snaps = _rate(broker, checkpoints, tmp_path / "on", SEQSTREAM_SNAPSHOT_INTERVAL_S="1.0")
    on_fast, snaps_fast = _rate(broker, checkpoints, tmp_path / "fast", SEQSTREAM_SNAPSHOT_INTERVAL_S="0.1")
    print(
        f"snapshot overhead ({N_STREAMS} streams, {N_STREAMS * ROUNDS} events): off {off:,.0f} ev/s; "
        f"every 1 s {on:,.0f} ev/s ({snaps:.0f} partition snapshots); "
        f"every 0.1 s {on_fast:,.0f} ev/s ({snaps_fast:.0f} partition snapshots)"
    )
    assert on > 0.3 * off
