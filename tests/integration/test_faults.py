"""Faults under load on Apache Kafka, for both delivery guarantees.

One run per guarantee, on a Kafka broker of its own (it is restarted mid-run): while a producer
writes a keyed stream (a bad record every 97th), the worker is killed with ``kill -9`` twice, a
second worker joins and later leaves (two rebalances), and the broker restarts. Then, read with
``isolation_level=read_committed`` as a downstream consumer would:

* every input offset has exactly one output (``exactly_once``) or at least one, all copies equal
  (``at_least_once``), and no input has both a prediction and a dead letter;
* dead letters balance: one per bad input;
* per-stream state equals an uninterrupted run within 1e-6: every prediction and score, and the
  final changelog snapshot of every partition (hidden state, scorer state, step counts);
* the time each partition was unowned in the two rebalances is reported (from the workers' logs).
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream.state import decode_chunk, join_chunks
from stream.tools.kafka_broker import KafkaBroker
from stream.tools.worker_process import WorkerProcess

from .conftest import consume_until
from .test_durability import PARTITIONS, Setup, _kill, check_outputs, produce_stream, read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BAD_EVERY = 97
TOL = 1e-6


def _wait_assigned(w: WorkerProcess, timeout: float = 90.0) -> float:
    t0 = time.monotonic()
    w.wait_ready(timeout=timeout)
    return time.monotonic() - t0


def _stamps(logs: list[Path], what: str) -> list[tuple[float, set[int]]]:
    """(wall time, partitions) of every ``partitions <what> at T: [...]`` line in the workers' logs."""
    out = []
    for path in logs:
        for m in re.finditer(rf"partitions {what} at ([\d.]+): \[([^\]]*)\]", path.read_text(errors="replace")):
            parts = {int(x.strip(" '").rsplit(":", 1)[1]) for x in m.group(2).split(",") if x.strip()}
            out.append((float(m.group(1)), parts))
    return sorted(out, key=lambda x: x[0])


def _unowned(logs: list[Path], since: float, until: float) -> dict[int, float]:
    """Per partition, the longest stretch between a revocation and the next ownership in [since, until]."""
    revoked = [(t, ps) for t, ps in _stamps(logs, "revoked") if since <= t <= until]
    owned = [(t, ps) for t, ps in _stamps(logs, "owned") if since <= t]
    gaps: dict[int, float] = {}
    for t, ps in revoked:
        for p in ps:
            back = next((t2 for t2, ps2 in owned if t2 >= t and p in ps2), None)
            if back is not None:
                gaps[p] = max(gaps.get(p, 0.0), back - t)
    return gaps


def _latest_snapshots(bootstrap: str, topic: str) -> dict[str, Any]:
    """The latest complete snapshot per changelog key prefix (``source:topic:partition``), read_committed."""
    got = consume_until(bootstrap, [topic], lambda g: False, timeout=8.0, isolation_level="read_committed")
    pending: dict[tuple[str, int], dict[int, Any]] = defaultdict(dict)
    best: dict[str, tuple[int, int, Any]] = {}
    for rec in got[topic]:
        ch = decode_chunk(rec.value)
        chunks = pending[(ch.key, ch.snap_id)]
        chunks[ch.chunk] = ch
        if len(chunks) == ch.nchunks and (ch.key not in best or (ch.offset, ch.snap_id) > best[ch.key][:2]):
            best[ch.key] = (ch.offset, ch.snap_id, join_chunks(chunks.values()))
    return {k: (off, snap) for k, (off, _, snap) in best.items()}


def _compare_state(setup: Setup, reference: Any, last_offsets: dict[int, int]) -> float:
    """The final changelog snapshot of each partition against the uninterrupted run's state; the worst gap."""
    snaps = _latest_snapshots(setup.broker.bootstrap, setup.topics["state"])
    topic = setup.topics["sensors"]
    worst = 0.0
    for p in range(PARTITIONS):
        off, snap = snaps[f"sensors:{topic}:{p}"]
        assert off == last_offsets[p], f"partition {p}: final snapshot at {off}, last input offset {last_offsets[p]}"
        want = reference.partition_snapshot(p)
        assert sorted(snap.stream_ids) == sorted(want.stream_ids)
        order = {sid: i for i, sid in enumerate(snap.stream_ids)}
        idx = [order[sid] for sid in want.stream_ids]
        np.testing.assert_array_equal(snap.steps[idx], want.steps)
        for a, b in ((snap.hidden[idx], want.hidden), (snap.aux[idx], want.aux)):
            worst = max(worst, float((a - b).abs().max()) if a.numel() else 0.0)
    return worst


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_kill9_rebalance_and_broker_restart_under_load(
    guarantee: str, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    broker = KafkaBroker(data_dir=tmp_path / "kafka", log_path=tmp_path / "kafka.log").start()
    eos = guarantee == "exactly_once"
    setup = Setup(broker, checkpoints, tmp_path, SEQSTREAM_GUARANTEE=guarantee)
    n_streams, rounds, seconds = 48, 600, 75.0
    n_inputs = n_streams * rounds
    workers: list[WorkerProcess] = []
    events: dict[str, Any] = {}
    try:
        w = setup.worker()
        workers.append(w)
        _wait_assigned(w)
        prod = threading.Thread(
            target=produce_stream,
            args=(broker.bootstrap, setup.topics["sensors"], n_streams, rounds, seconds, BAD_EVERY, True),
        )
        prod.start()
        t_start = time.monotonic()
        restarts = []
        for _ in range(2):  # kill -9 twice mid-stream
            time.sleep(3.0)
            _kill(w)
            t = time.monotonic()
            w = setup.worker()
            workers.append(w)
            _wait_assigned(w)
            restarts.append(time.monotonic() - t)
        # a second worker joins under load, then leaves (SIGTERM)
        time.sleep(2.0)
        t_join = time.time()
        b = setup.worker()
        workers.append(b)
        _wait_assigned(b)
        time.sleep(4.0)
        b.stop()
        t_left = time.time()
        time.sleep(3.0)
        # the broker restarts under load (a clean shutdown, the same data and ports)
        assert prod.is_alive(), "the faults must happen while the producer runs"
        t = time.monotonic()
        broker.restart()
        events["broker_restart_s"] = round(time.monotonic() - t, 1)
        events["faults_done_s"] = round(time.monotonic() - t_start, 1)
        prod.join()
        got = read_all(setup, n_inputs, timeout=180, isolation_level="read_committed")
        res = check_outputs(setup, got, n_inputs, tol=TOL, exactly_once=eos)
        bad = sum(1 for r in got[setup.topics["sensors"]] if r.value == b"not json")
        assert res["dead"] == bad, f"{res['dead']} dead letters for {bad} bad inputs"
        if eos:
            assert res["duplicates"] == 0
        # the final snapshots: flushed by the last worker's clean stop
        w.stop()
        last = {}
        for r in got[setup.topics["sensors"]]:
            last[r.partition] = max(last.get(r.partition, -1), r.offset)
        state_gap = _compare_state(setup, res["reference"], last)
        assert state_gap <= TOL, f"final state differs from the uninterrupted run by {state_gap}"
        logs = [x.log_path for x in workers]
        unowned_join = _unowned(logs, t_join, t_join + 60)
        unowned_leave = _unowned(logs, t_left - 5, t_left + 60)
        print(
            f"faults on Kafka ({guarantee}): {n_inputs} inputs, {res['duplicates']} duplicate outputs, "
            f"{res['dead']} dead letters, worst prediction gap {res['worst']:.2e}, state gap {state_gap:.2e}; "
            f"kill -> assigned {[f'{s:.1f}' for s in restarts]} s; {events}; "
            f"unowned on join { ({p: round(s, 2) for p, s in sorted(unowned_join.items())}) } s, "
            f"on leave { ({p: round(s, 2) for p, s in sorted(unowned_leave.items())}) } s"
        )
        assert unowned_join and unowned_leave, "the rebalances were not seen in the logs"
    finally:
        for x in workers:
            x.stop()
        broker.stop()
