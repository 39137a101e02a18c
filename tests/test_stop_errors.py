"""Fast checks of the stop's last resort and of the one-line broker errors (no broker; see
tests/integration/test_stop.py and test_cli_errors.py for the real thing)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import errors as ke

from models.errors import ConfigError
from stream.admin import BrokerError, broker_error, client_kwargs
from stream.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_watchdog_exits_when_the_stop_overruns() -> None:
    """The last resort: a stop that has not finished after stop_timeout_s ends the process with a log line."""
    code = "import time; from stream.stopping import start_stop_watchdog; start_stop_watchdog(0.5); time.sleep(30)"
    t0 = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    took = time.monotonic() - t0
    assert p.returncode == 1, p.stderr
    assert "stop did not finish within SEQSTREAM_STOP_TIMEOUT_S" in p.stderr
    assert took < 25


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), ["does not trust", "SEQSTREAM_SSL_CAFILE"]),
        (ssl.SSLError(1, "wrong version number"), ["TLS handshake", "SEQSTREAM_SECURITY_PROTOCOL"]),
        (ke.SaslAuthenticationFailed("bad password"), ["SASL authentication", "SEQSTREAM_SASL_PASSWORD"]),
        (ke.IllegalSaslStateError(), ["SASL handshake", "SEQSTREAM_SECURITY_PROTOCOL"]),
        (ke.KafkaConnectionError("Unable to bootstrap"), ["connection to the broker", "SEQSTREAM_BROKER_URL"]),
        (ConnectionRefusedError(111, "Connect call failed"), ["connection to the broker", "SEQSTREAM_BROKER_URL"]),
        (ke.TopicAuthorizationFailedError(), ["refused access", "ACLs"]),
    ],
)
def test_broker_errors_are_one_line_with_what_to_do(exc: BaseException, words: list[str]) -> None:
    err = broker_error(exc, "k1:9093")
    assert isinstance(err, BrokerError)
    text = str(err)
    assert "\n" not in text and "k1:9093" in text and "; " in text, text
    for w in words:
        assert w in text, (w, text)


def test_unreadable_tls_file_is_a_config_error(tmp_path: Path) -> None:
    s = Settings(broker_url="kafka://k1:9093", security_protocol="SSL", ssl_cafile=tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match=r"cannot load the TLS files .*SEQSTREAM_SSL_CAFILE="):
        client_kwargs(s)
