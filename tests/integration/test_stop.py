"""A stop (SIGTERM) in every phase of a real worker finishes within ``SEQSTREAM_STOP_TIMEOUT_S`` with exit 0.

The phases are recognised from the worker's log, not from sleeps: starting (Faust's services start),
joining (its core consumer group waits for a member that died: the reported stop that hung for a
minute), restoring (its assigned partitions' state is read back from a large changelog), rebalancing
(a second worker joins) and running (mid-stream; nothing committed is lost, a restarted worker
continues from the final commit and snapshot). Apache Kafka (the ``kafka`` fixture).
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Float64, Int16, Int32, Schema, String

from stream.tools.worker_process import WorkerProcess

from .conftest import Broker
from .test_durability import Setup, check_outputs, produce_stream, read_all

pytestmark = pytest.mark.integration

_S = String("utf-8")
_ENTITY = Array(("entity_type", _S), ("entity_name", _S))


class _ClientQuotaResponse(Response):
    API_KEY = 49
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("entries", Array(("error_code", Int16), ("error_message", _S), ("entity", _ENTITY))),
    )


class _ClientQuotaStruct(RequestStruct):
    API_KEY = 49
    API_VERSION = 0
    RESPONSE_TYPE = _ClientQuotaResponse
    SCHEMA = Schema(
        ("entries", Array(("entity", _ENTITY), ("ops", Array(("key", _S), ("value", Float64), ("remove", Boolean))))),
        ("validate_only", Boolean),
    )


class _ClientQuota(Request[_ClientQuotaStruct]):
    """AlterClientQuotas v0 (aiokafka has no admin call for it): ``consumer_byte_rate`` of one client id."""

    API_KEY = 49

    def __init__(self, client_id: str, rate: int) -> None:
        self.client_id, self.rate = client_id, rate

    def build(self, request_struct_class: type[_ClientQuotaStruct]) -> _ClientQuotaStruct:
        op = ("consumer_byte_rate", float(self.rate), False)
        return request_struct_class([([("client-id", self.client_id)], [op])], False)


STOP_S = 8.0  # SEQSTREAM_STOP_TIMEOUT_S in these tests: short, so a hang shows as a failure quickly
SLACK_S = 2.0  # process exit and interpreter teardown after the worker's own deadline


def _setup(kafka: Broker, checkpoints: dict[str, Path], tmp: Path, **extra: str) -> Setup:
    return Setup(kafka, checkpoints, tmp, SEQSTREAM_STOP_TIMEOUT_S=str(STOP_S), **extra)


def _wait_log(w: WorkerProcess, pattern: str, timeout: float = 60.0, after: int = 0) -> str:
    """Wait until the worker's log (from character ``after``) matches ``pattern``; returns the log."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = w.log_path.read_text(errors="replace")
        if rx.search(text, after):
            return text
        assert w.alive(), f"worker exited before {pattern!r}:\n{w.log_tail(40)}"
        time.sleep(0.02)
    raise AssertionError(f"{pattern!r} not logged within {timeout} s:\n{w.log_tail(40)}")


def _sigterm(w: WorkerProcess) -> tuple[int | None, float]:
    """SIGTERM; returns the exit code and the seconds it took (killed, None, past the stop budget)."""
    assert w.proc is not None
    t0 = time.monotonic()
    w.proc.send_signal(signal.SIGTERM)
    try:
        rc: int | None = w.proc.wait(timeout=STOP_S + SLACK_S)
    except subprocess.TimeoutExpired:
        w.proc.kill()
        w.proc.wait(timeout=10)
        rc = None
    took = time.monotonic() - t0
    print(f"stop: rc {rc} in {took:.1f} s")
    return rc, took


def _assert_clean_stop(w: WorkerProcess, rc: int | None, took: float) -> None:
    log = w.log_path.read_text(errors="replace")
    assert rc == 0, f"rc {rc} after {took:.1f} s:\n{w.log_tail(60)}"
    assert took < STOP_S + SLACK_S
    assert "stop did not finish" not in log, "the last-resort watchdog ended the stop"
    for noise in ("Traceback", "Unclosed AIOKafka", "Task was destroyed"):
        assert noise not in log, f"{noise!r} in the log:\n{w.log_tail(60)}"


def _dead_member(bootstrap: str, group: str, topic: str, session_s: int = 30) -> subprocess.Popen[str]:
    """A consumer of ``group`` that gets its partitions, then is SIGKILLed by the caller: it stays a member
    until its session (``session_s``) expires, so every join of the group waits that long."""
    code = textwrap.dedent(
        f"""
        import asyncio
        from aiokafka import AIOKafkaConsumer
        async def main():
            c = AIOKafkaConsumer({topic!r}, bootstrap_servers={bootstrap!r}, group_id={group!r},
                                 session_timeout_ms={session_s * 1000}, rebalance_timeout_ms={session_s * 1000})
            await c.start()
            while not c.assignment():
                await c.getmany(timeout_ms=200)
            print("assigned", flush=True)
            await asyncio.sleep(3600)
        asyncio.run(main())
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "assigned"
    p.kill()
    p.wait(timeout=10)
    return p


def _stop_at(w: WorkerProcess, pattern: str, check: Callable[[str], None] | None = None) -> None:
    text = _wait_log(w, pattern)
    if check is not None:
        check(text)
    rc, took = _sigterm(w)
    _assert_clean_stop(w, rc, took)


def test_stop_while_starting(kafka: Broker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """Signalled as the core service starts: its models load, the engine has no consumer yet."""
    setup = _setup(kafka, checkpoints, tmp_path)
    w = setup.worker()
    try:
        _stop_at(w, r"\[\^--CoreService\]: Starting")
        assert "partitions owned" not in w.log_path.read_text()
    finally:
        w.stop()


def test_stop_before_faust(kafka: Broker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """Signalled during the start-up check (the broker is not there yet): exit 0 at once, no traceback."""
    from stream.tools.brokers import free_port

    setup = _setup(kafka, checkpoints, tmp_path, SEQSTREAM_BROKER_URL=f"kafka://127.0.0.1:{free_port()}")
    w = setup.worker()
    try:
        _wait_log(w, r"not reachable yet")  # retrying the broker that is not there (SEQSTREAM_CONNECT_TIMEOUT_S: 30 s)
        rc, took = _sigterm(w)
        _assert_clean_stop(w, rc, took)
        assert took < 2.0
    finally:
        w.stop()


def test_stop_while_joining(kafka: Broker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """The reported hang: the core consumer group waits for a dead member; the stop must not wait with it."""
    setup = _setup(kafka, checkpoints, tmp_path)
    _dead_member(kafka.bootstrap, f"{setup.env['SEQSTREAM_APP_ID']}-core", setup.topics["sensors"])
    w = setup.worker()
    try:

        def joining(text: str) -> None:
            time.sleep(2.0)  # well inside the 30 s join the dead member imposes
            assert "partitions owned" not in w.log_path.read_text(), "the join did not wait for the dead member"

        _stop_at(w, r"consuming .* as group", joining)
        assert "partitions owned" not in w.log_path.read_text()
    finally:
        w.stop()


def test_stop_while_running_loses_nothing(kafka: Broker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """Mid-stream: acked outputs committed, a final snapshot, the group left; the next worker continues."""
    setup = _setup(kafka, checkpoints, tmp_path, SEQSTREAM_SNAPSHOT_INTERVAL_S="60")
    n_streams, rounds, seconds = 32, 120, 8.0
    n_inputs = n_streams * rounds
    a = setup.worker()
    b: WorkerProcess | None = None
    try:
        a.wait_ready(timeout=60)
        prod = threading.Thread(
            target=produce_stream, args=(kafka.bootstrap, setup.topics["sensors"], n_streams, rounds, seconds)
        )
        prod.start()
        _wait_log(a, r"gc: \d+ long-lived objects frozen")  # it processed a batch
        time.sleep(2.0)
        assert prod.is_alive(), "the stop must happen mid-stream"
        rc, took = _sigterm(a)
        _assert_clean_stop(a, rc, took)
        log = a.log_path.read_text()
        assert "LeaveGroup request succeeded" in log
        b = setup.worker()
        b.wait_ready(timeout=60)
        prod.join()
        got = read_all(setup, n_inputs, timeout=60)
        res = check_outputs(setup, got, n_inputs)
        res.pop("reference")
        print(f"running stop: {res}")
        # a graceful stop commits what it produced: the next worker repeats nothing
        assert res["duplicates"] == 0, res
        # the final snapshot (the periodic one is 60 s away): the next owner restores, not replays from 0
        assert "restored snapshot @" in b.log_path.read_text()
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_stop_while_restoring(kafka: Broker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """Signalled while the assigned partitions' state is read back: the changelog reader is throttled.

    A Kafka byte-rate quota on the reader's client id, far below what the changelog holds, makes the
    broker answer its fetches empty, so the restore runs until ``restore_timeout_s`` (60 s) unless the stop abandons it.
    """
    setup = _setup(kafka, checkpoints, tmp_path)
    a = setup.worker()
    b = None
    try:
        a.wait_ready(timeout=60)
        _assert_clean_stop(a, *_sigterm(a))  # the changelog topic exists now
        reader = f"{setup.env['SEQSTREAM_APP_ID']}-state-reader"
        asyncio.run(_throttle(kafka.bootstrap, setup.topics["state"], reader))
        b = setup.worker()

        def restoring(text: str) -> None:
            time.sleep(1.5)
            assert "partitions owned" not in b.log_path.read_text(), "the restore was not throttled"

        _stop_at(b, r"partitions assigned: \[", restoring)
        assert "partitions owned" not in b.log_path.read_text()
    finally:
        a.stop()
        if b is not None:
            b.stop()


async def _throttle(bootstrap: str, topic: str, client_id: str, rate: int = 1000) -> None:
    """A consumer byte-rate quota of ``rate`` B/s on ``client_id`` and ~1 MB in ``topic`` (junk keys a
    restore skips): a fetch that would exceed the quota is answered empty, so that client reads nothing."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        resp = await client.send(client.get_random_node(), _ClientQuota(client_id, rate))
        assert all(e[0] == 0 for e in resp.entries), resp
    finally:
        await client.close()
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=1 << 20)
    await p.start()
    try:
        parts = sorted(await p.partitions_for(topic))
        for i in range(16):
            await p.send_and_wait(topic, b"x" * 60_000, key=f"junk-{i}#0".encode(), partition=parts[i % len(parts)])
    finally:
        await p.stop()


def test_stop_while_rebalancing(kafka: Broker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    """A second worker joins; the first is signalled inside the rebalance (after its revocation)."""
    setup = _setup(kafka, checkpoints, tmp_path)
    a = setup.worker()
    b = None
    try:
        a.wait_ready(timeout=60)
        mark = len(a.log_path.read_text(errors="replace"))
        b = setup.worker()
        _wait_log(a, r"partitions revoked at", after=mark)
        rc, took = _sigterm(a)
        _assert_clean_stop(a, rc, took)
        b.wait_ready(timeout=30)  # the survivor owns partitions: the group did not wait for the stopped worker
        rc, took = _sigterm(b)
        _assert_clean_stop(b, rc, took)
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_stop_while_a_rebalance_waits_for_a_dead_member(
    kafka: Broker, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """A worker that owned partitions is caught in a rejoin: a second worker joins while a dead member
    (killed, its session 30 s) is still in the group, so the rebalance waits for it; both stop in time."""
    setup = _setup(kafka, checkpoints, tmp_path)
    a = setup.worker()
    b = None
    try:
        a.wait_ready(timeout=60)
        _dead_member(kafka.bootstrap, f"{setup.env['SEQSTREAM_APP_ID']}-core", setup.topics["sensors"])
        _wait_log(a, r"partitions owned at .*\n(.|\n)*partitions owned at")  # a rebalance for the dead member
        mark = len(a.log_path.read_text(errors="replace"))
        b = setup.worker()
        _wait_log(a, r"partitions revoked at", after=mark)
        time.sleep(1.5)
        assert "partitions assigned" not in a.log_path.read_text(errors="replace")[mark:], "no dead member waited"
        _assert_clean_stop(a, *_sigterm(a))
        assert "while joining" in a.log_path.read_text(errors="replace")[mark:]
        _assert_clean_stop(b, *_sigterm(b))
    finally:
        a.stop()
        if b is not None:
            b.stop()
