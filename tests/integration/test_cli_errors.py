"""A bad configuration stops a command with one clear line and exit 2, never a traceback.

Against real brokers: Kafka down (nothing listens), a wrong listener (Kafka's controller port),
``exactly_once`` on a broker without transactions (Tansu with the production profile) and with
the Tansu profile (refused by the settings before anything connects). For ``worker``, ``produce``
and ``tail`` alike: a malformed ``--broker``, TLS (an unreadable CA file, a plaintext listener, a
certificate the client does not trust), SASL (a listener without SASL, a wrong password) and a
missing topic; and a broker that comes up late is waited for (``SEQSTREAM_CONNECT_TIMEOUT_S``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.admin import create_topics
from stream.tools.brokers import EmbeddedBroker, free_port
from stream.tools.kafka_broker import KafkaBroker

pytestmark = pytest.mark.integration

COMMANDS = ["worker", "produce", "tail"]
# the retry at start (SEQSTREAM_CONNECT_TIMEOUT_S, 30 s by default) is shortened here: below its 5 s
# between progress lines, so the failure is the only line
_FAST = {"SEQSTREAM_CONNECT_TIMEOUT_S": "3"}


def _cli(tmp_path: Path, env: dict[str, str], command: str, *args: str) -> tuple[int, list[str]]:
    """``python -m stream.cli COMMAND ARGS`` (produce: 1 s to the ``sensors`` source; tail: TOPIC is
    ``sensor-readings`` unless ``args`` name one) -> exit code, non-empty output lines."""
    extra = {"produce": ["--source", "sensors", "--seconds", "1"], "tail": ["--idle-exit", "1"]}.get(command, [])
    if command == "tail" and not any(not a.startswith("-") and "://" not in a for a in args):
        extra = ["sensor-readings", *extra]
    p = subprocess.run(
        [sys.executable, "-m", "stream.cli", command, *extra, *args],
        env={**os.environ, "SEQSTREAM_WEB_PORT": str(free_port()), **_FAST, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    print(f"{command} rc {p.returncode}: {lines}")
    return p.returncode, lines


def _worker(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    return _cli(tmp_path, env, "worker", *args)


def _one_line(rc: int, lines: list[str], *words: str) -> None:
    assert rc == 2, lines
    assert len(lines) == 1 and lines[0].startswith("seqstream: error: "), lines
    assert "Traceback" not in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_kafka_down_at_start(tmp_path: Path) -> None:
    rc, lines = _worker(tmp_path, {}, "--broker", f"kafka://127.0.0.1:{free_port()}")
    _one_line(rc, lines, "no Kafka broker answered", "SEQSTREAM_BROKER_URL")


def test_wrong_listener(kafka: KafkaBroker, tmp_path: Path) -> None:
    """The controller listener speaks Kafka's protocol but serves no client: it is not a broker address."""
    rc, lines = _worker(tmp_path, {}, "--broker", f"kafka://127.0.0.1:{kafka.controller_port}")
    _one_line(rc, lines, "does not answer as a Kafka broker", "client listener")


def test_exactly_once_on_a_broker_without_transactions(tmp_path: Path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as tansu:
        rc, lines = _worker(tmp_path, {"SEQSTREAM_GUARANTEE": "exactly_once"}, "--broker", tansu.url)
    _one_line(rc, lines, "exactly_once", "refused a transactional producer", "at_least_once")


def test_exactly_once_with_the_tansu_profile(tmp_path: Path) -> None:
    env = {"SEQSTREAM_GUARANTEE": "exactly_once", "SEQSTREAM_PROFILE": "tansu"}
    rc, lines = _worker(tmp_path, env, "--broker", "kafka://127.0.0.1:9")
    _one_line(rc, lines, "exactly_once needs Kafka transactions")


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_broker_url(command: str, tmp_path: Path) -> None:
    rc, lines = _cli(tmp_path, {}, command, "--broker", "http://localhost")
    _one_line(rc, lines, "is not host:port")


@pytest.mark.parametrize("command", ["produce", "tail"])
def test_kafka_down_produce_tail(command: str, tmp_path: Path) -> None:
    rc, lines = _cli(tmp_path, {}, command, "--broker", f"kafka://127.0.0.1:{free_port()}")
    _one_line(rc, lines, "no Kafka broker answered", "SEQSTREAM_CONNECT_TIMEOUT_S")


@pytest.mark.parametrize("command", ["produce", "tail"])
def test_missing_topic(command: str, kafka: KafkaBroker, tmp_path: Path) -> None:
    topic = f"no-such-topic-{free_port()}"
    args = ["--topic", topic] if command == "produce" else [topic]
    rc, lines = _cli(tmp_path, {}, command, "--broker", kafka.url, *args)
    _one_line(rc, lines, f"topic {topic!r} does not exist")


@pytest.mark.parametrize("command", COMMANDS)
def test_unreadable_ca_file(command: str, kafka: KafkaBroker, tmp_path: Path) -> None:
    env = {"SEQSTREAM_SECURITY_PROTOCOL": "SSL", "SEQSTREAM_SSL_CAFILE": str(tmp_path / "missing-ca.pem")}
    rc, lines = _cli(tmp_path, env, command, "--broker", kafka.url)
    _one_line(rc, lines, "cannot load the TLS files", "SEQSTREAM_SSL_CAFILE")


@pytest.mark.parametrize("command", COMMANDS)
def test_tls_to_a_plaintext_listener(command: str, kafka: KafkaBroker, tmp_path: Path) -> None:
    rc, lines = _cli(tmp_path, {"SEQSTREAM_SECURITY_PROTOCOL": "SSL"}, command, "--broker", kafka.url)
    _one_line(rc, lines, "SEQSTREAM_SECURITY_PROTOCOL")


@pytest.fixture(scope="module")
def untrusted_tls(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A TLS front of the Kafka broker with a self-signed certificate, and a CA file that did not sign it."""
    from .test_security_tls import TlsProxy, _self_signed

    d = tmp_path_factory.mktemp("untrusted")
    (d / "a").mkdir()
    (d / "b").mkdir()
    cert, key = _self_signed(d / "a")
    other_ca, _ = _self_signed(d / "b")
    proxy = TlsProxy(cert, key, ("127.0.0.1", kafka.port)).start()
    try:
        yield f"kafka://127.0.0.1:{proxy.port}", other_ca
    finally:
        proxy.stop()


@pytest.mark.parametrize("command", COMMANDS)
def test_tls_untrusted_certificate(command: str, untrusted_tls: tuple[str, Path], tmp_path: Path) -> None:
    url, ca = untrusted_tls
    env = {"SEQSTREAM_SECURITY_PROTOCOL": "SSL", "SEQSTREAM_SSL_CAFILE": str(ca)}
    rc, lines = _cli(tmp_path, env, command, "--broker", url)
    _one_line(rc, lines, "TLS", "does not trust", "SEQSTREAM_SSL_CAFILE")


@pytest.mark.parametrize("command", COMMANDS)
def test_sasl_to_a_listener_without_sasl(command: str, kafka: KafkaBroker, tmp_path: Path) -> None:
    env = {
        "SEQSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SEQSTREAM_SASL_USERNAME": "alice",
        "SEQSTREAM_SASL_PASSWORD": "secret",
    }
    rc, lines = _cli(tmp_path, env, command, "--broker", kafka.url)
    _one_line(rc, lines, "SASL", "SEQSTREAM_SECURITY_PROTOCOL")


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Apache Kafka with a SASL_PLAINTEXT (PLAIN) listener that knows one user, alice:secret; its URL."""
    d = tmp_path_factory.mktemp("sasl")
    k = KafkaBroker(data_dir=d / "kafka", log_path=d / "kafka.log")
    sasl, h = free_port(), "127.0.0.1"
    listeners = f"PLAINTEXT://{h}:{k.port},SASL_PLAINTEXT://{h}:{sasl},CONTROLLER://{h}:{k.controller_port}"
    k.properties.update(
        {
            "listeners": listeners,
            "advertised.listeners": listeners,
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="secret";'
            ),
        }
    )
    k.start()
    try:
        yield f"kafka://{h}:{sasl}"
    finally:
        k.stop()


@pytest.mark.parametrize("command", COMMANDS)
def test_sasl_wrong_password(command: str, sasl_kafka: str, tmp_path: Path) -> None:
    env = {
        "SEQSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SEQSTREAM_SASL_USERNAME": "alice",
        "SEQSTREAM_SASL_PASSWORD": "wrong",
    }
    rc, lines = _cli(tmp_path, env, command, "--broker", sasl_kafka)
    _one_line(rc, lines, "SASL authentication", "failed", "SEQSTREAM_SASL_PASSWORD")


def _late_listener(port: int, target: tuple[str, int], after_s: float) -> threading.Thread:
    """Listen on ``port`` only after ``after_s`` seconds, then forward each connection to ``target``."""

    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(1 << 16):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s_ in (a, b):
                with contextlib.suppress(OSError):
                    s_.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        time.sleep(after_s)
        srv = socket.create_server(("127.0.0.1", port))
        srv.settimeout(30)
        try:
            while True:
                conn, _ = srv.accept()
                up = socket.create_connection(target)
                threading.Thread(target=pipe, args=(conn, up), daemon=True).start()
                threading.Thread(target=pipe, args=(up, conn), daemon=True).start()
        except OSError:
            pass
        finally:
            srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_broker_up_late_is_waited_for(kafka: KafkaBroker, tmp_path: Path) -> None:
    """Nothing listens for the first 10 s: ``produce`` retries (a progress line each 5 s), then sends, exit 0."""
    create_topics(kafka.bootstrap, ["late-broker-in"], 1)
    port = free_port()
    _late_listener(port, ("127.0.0.1", kafka.port), after_s=10.0)
    env = {"SEQSTREAM_CONNECT_TIMEOUT_S": "30"}
    rc, lines = _cli(tmp_path, env, "produce", "--broker", f"kafka://127.0.0.1:{port}", "--topic", "late-broker-in")
    assert rc == 0, lines
    retries = [ln for ln in lines if "not reachable yet" in ln]
    assert 1 <= len(retries) <= 2, lines
    assert "retrying for" in retries[0]
    assert any(ln.startswith("produced ") for ln in lines), lines


@pytest.mark.parametrize("kind", ["kafka", "tansu"])
def test_seqstream_broker_starts_answers_and_stops(kind: str, tmp_path: Path) -> None:
    """``seqstream broker --kind K``: one line with the URL once it answers; SIGTERM stops it with exit 0."""
    import asyncio
    import signal
    import time

    from stream.admin import check_brokers

    p = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "broker", "--kind", kind, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    try:
        t0 = time.monotonic()
        assert p.stdout is not None
        line = p.stdout.readline()
        ready_s = time.monotonic() - t0
        assert line.startswith(f"{kind} broker ready: SEQSTREAM_BROKER_URL=kafka://127.0.0.1:"), line
        url = line.split("SEQSTREAM_BROKER_URL=", 1)[1].split(",", 1)[0].split(";", 1)[0].strip()
        assert asyncio.run(check_brokers(url.removeprefix("kafka://"), timeout=10)) == 1
        print(f"{kind}: ready in {ready_s:.1f} s")
        assert ready_s < 30  # the start-up budget on 2 cores (Kafka's jars resolved already)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=40) == 0
    finally:
        if p.poll() is None:
            p.kill()
