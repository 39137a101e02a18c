"""Talking to a Kafka cluster as an operator would: is it there, which partitions, create topics.

Runtime and tools alike use these (the worker's start-up check, the transactions' errors, the
demo); the local brokers that tests and the demo start are in :mod:`stream.tools.brokers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

from models.errors import SeqstreamError

__all__ = [
    "BrokerError",
    "check_brokers",
    "create_topics",
    "create_topics_async",
    "partitions_of",
    "quiet_kafka_logs",
    "wait_ready",
]


class BrokerError(SeqstreamError):
    """A broker could not be found, started or reached."""


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
