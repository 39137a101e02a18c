"""Talking to a Kafka cluster as an operator would: is it there, which partitions, create topics.

Runtime and tools alike use these (the worker's start-up check, the transactions' errors, the
demo); the local brokers that tests and the demo start are in :mod:`stream.tools.brokers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

from models.errors import ConfigError, SeqstreamError

__all__ = [
    "BrokerError",
    "broker_error",
    "check_brokers",
    "check_topics",
    "client_kwargs",
    "create_topics",
    "create_topics_async",
    "partitions_of",
    "quiet_kafka_logs",
    "wait_ready",
]


class BrokerError(SeqstreamError):
    """A broker could not be found, started or reached."""


log = logging.getLogger(__name__)

_FIX_TLS = "check SEQSTREAM_SSL_CAFILE (the CA that signed the broker's certificate) and SEQSTREAM_SECURITY_PROTOCOL"
_FIX_SASL = "check SEQSTREAM_SASL_USERNAME, SEQSTREAM_SASL_PASSWORD and SEQSTREAM_SASL_MECHANISM"


def client_kwargs(settings: Any) -> dict[str, Any]:
    """``settings.kafka_kwargs()`` without the bootstrap servers; an unreadable TLS file is a ConfigError.

    The TLS context is built from the files here, so a wrong path or a file that is not PEM stops the
    command with the setting to fix instead of an ``ssl``/``FileNotFoundError`` traceback.
    """
    try:
        with quiet_kafka_logs():  # not aiokafka's "Loading SSL CA from ..." line
            kw = settings.kafka_kwargs()
    except SeqstreamError:
        raise
    except (OSError, ssl.SSLError, ValueError) as exc:
        files = {"SEQSTREAM_SSL_CAFILE": settings.ssl_cafile, "SEQSTREAM_SSL_CERTFILE": settings.ssl_certfile,
                 "SEQSTREAM_SSL_KEYFILE": settings.ssl_keyfile}  # fmt: skip
        named = ", ".join(f"{k}={v}" for k, v in files.items() if v) or "no TLS file set"
        raise ConfigError(
            f"cannot load the TLS files ({named}): {getattr(exc, 'strerror', None) or exc}; give readable PEM "
            "files (the CA certificate; the client certificate and its key for mutual TLS)"
        ) from None
    return {k: v for k, v in kw.items() if k != "bootstrap_servers"}


def broker_error(exc: BaseException, where: str | None = None) -> BrokerError:
    """One operator-facing line for a failure of a Kafka client talking to ``where`` (host:port[,...]).

    TLS trust and handshake, SASL, authorization, connection and other broker errors each say what
    to check; the exception's own text is kept in parentheses.
    """
    from aiokafka import errors as ke

    broker = f"the broker at {where}" if where else "the broker"
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return BrokerError(
            f"TLS: {broker} presented a certificate this client does not trust "
            f"({getattr(exc, 'verify_message', None) or getattr(exc, 'reason', None) or _why(exc)}); {_FIX_TLS}"
        )
    if isinstance(exc, ssl.SSLError):
        why = getattr(exc, "reason", None) or _why(exc)
        return BrokerError(f"TLS handshake with {broker} failed ({why}); {_FIX_TLS}")
    if isinstance(exc, ke.SaslAuthenticationFailed):
        return BrokerError(f"SASL authentication with {broker} failed ({_why(exc)}); {_FIX_SASL}")
    if isinstance(exc, (ke.UnsupportedSaslMechanismError, ke.IllegalSaslStateError)):
        return BrokerError(
            f"{broker} does not take this SASL handshake on that listener ({type(exc).__name__}); "
            "check that SEQSTREAM_BROKER_URL names its SASL listener, SEQSTREAM_SECURITY_PROTOCOL and "
            "SEQSTREAM_SASL_MECHANISM"
        )
    if isinstance(exc, ke.TopicAuthorizationFailedError | ke.GroupAuthorizationFailedError):
        return BrokerError(f"{broker} refused access ({_why(exc)}); ask for the ACLs this user needs")
    connection = (OSError, TimeoutError, ke.KafkaConnectionError, ke.KafkaTimeoutError, ke.NodeNotReadyError)
    if isinstance(exc, (*connection, ke.RequestTimedOutError)):
        return BrokerError(
            f"lost or could not open the connection to {broker} ({_why(exc)}); check that it runs, "
            "SEQSTREAM_BROKER_URL and SEQSTREAM_SECURITY_PROTOCOL"
        )
    return BrokerError(f"{broker} answered with an error ({_why(exc)}); see the broker's log")


def _why(exc: BaseException | None) -> str:
    if exc is None:
        return "no answer"
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


async def _probe(bootstrap: str | list[str], timeout: float, kafka_kwargs: dict[str, Any]) -> BaseException | None:
    """Why the first bootstrap address refuses a Kafka connection (aiokafka only logs it), or None."""
    from aiokafka.conn import create_conn

    hp = bootstrap if isinstance(bootstrap, str) else bootstrap[0]
    host, _, port = hp.rpartition(":")
    names = ("ssl_context", "security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")
    kw = {k: v for k, v in kafka_kwargs.items() if k in names}
    try:
        conn = await asyncio.wait_for(
            create_conn(host.strip("[]"), int(port), request_timeout_ms=int(timeout * 1000), **kw), timeout
        )
    except (TimeoutError, Exception) as exc:
        return exc
    conn.close()
    return None


def _fatal(exc: BaseException | None) -> bool:
    """A refusal that retrying cannot cure: TLS trust or handshake, SASL credentials."""
    from aiokafka import errors as ke

    return isinstance(
        exc, (ssl.SSLError, ke.SaslAuthenticationFailed, ke.UnsupportedSaslMechanismError, ke.IllegalSaslStateError)
    )


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


async def check_brokers(bootstrap: str | list[str], timeout: float = 30.0, **kafka_kwargs: Any) -> int:
    """Reach the cluster, then every broker it advertises; returns how many brokers answered.

    A broker that is not up yet is retried with backoff for ``timeout`` seconds (``connect_timeout_s``:
    a worker may start before its broker), logging one line every few seconds. Raises
    :class:`BrokerError` with one line that says what is wrong: nothing answers at the bootstrap
    address (down, wrong host or port), something that is not a Kafka client listener answers there,
    TLS or SASL refused the connection (at once: retrying does not fix a certificate or a password),
    or a broker advertises an address this machine cannot reach (``advertised.listeners``).
    """
    from aiokafka.client import AIOKafkaClient

    where = bootstrap if isinstance(bootstrap, str) else ",".join(bootstrap)
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(min(timeout, 10) * 1000), **kafka_kwargs
    )
    t0 = time.monotonic()
    deadline = t0 + timeout
    try:
        backoff, logged = 0.25, t0
        while True:
            try:
                await client.bootstrap()
                break
            except Exception:
                cause = await _probe(bootstrap, min(5.0, max(deadline - time.monotonic(), 0.5)), kafka_kwargs)
                if _fatal(cause):
                    assert cause is not None
                    raise broker_error(cause, where) from None
                if time.monotonic() + backoff > deadline:
                    if _listening(bootstrap):
                        detail = f" ({_why(cause)})" if cause is not None else ""
                        raise BrokerError(
                            f"something listens at {where} but does not answer as a Kafka broker{detail}; "
                            "is it the broker's client listener (not the controller's or another service), and does "
                            "SEQSTREAM_SECURITY_PROTOCOL match it (PLAINTEXT vs SSL)?"
                        ) from None
                    raise BrokerError(
                        f"no Kafka broker answered at {where} within {timeout:g} s (SEQSTREAM_CONNECT_TIMEOUT_S; "
                        f"{_why(cause)}); check that it runs, SEQSTREAM_BROKER_URL, and "
                        "SEQSTREAM_SECURITY_PROTOCOL"
                    ) from None
                if time.monotonic() - logged >= 5.0:  # one line every few seconds, not one per attempt
                    logged = time.monotonic()
                    log.warning(
                        "broker at %s not reachable yet (%s); retrying for %.0f s more",
                        where,
                        _why(cause),
                        deadline - logged,
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
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


async def check_topics(
    bootstrap: str | list[str], topics: Iterable[str], hint: str, timeout: float = 10.0, **kafka_kwargs: Any
) -> None:
    """Raise :class:`BrokerError` naming the ``topics`` the cluster does not have; ``hint`` says what to do."""
    from aiokafka.client import AIOKafkaClient

    where = bootstrap if isinstance(bootstrap, str) else ",".join(bootstrap)
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **kafka_kwargs)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        wanted = list(dict.fromkeys(topics))
        missing = [t for t in wanted if not await _has_topic(client, t, timeout)]
    except (TimeoutError, Exception) as exc:
        raise broker_error(exc, where) from None
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    if missing:
        named = f"topic {missing[0]!r} does not" if len(missing) == 1 else f"topics {', '.join(missing)} do not"
        raise BrokerError(f"{named} exist on {where}; {hint}")


async def _has_topic(client: Any, topic: str, timeout: float) -> bool:
    # a metadata request naming only this topic: never auto-creates it (allow_auto_topic_creation=False)
    from aiokafka.protocol.metadata import MetadataRequest

    node = client.get_random_node()
    resp = await asyncio.wait_for(client.send(node, MetadataRequest([topic], False)), timeout)
    for err, name, *_ in resp.topics:
        if name == topic:
            return bool(err == 0)
    return False


async def partitions_of(client: Any, topic: str, timeout: float = 5.0) -> set[int]:
    """The partitions of ``topic`` as an aiokafka consumer or producer ``client`` sees them; empty if none.

    Fresh metadata first: a client knows a topic only from its latest metadata, and a topic created a
    moment ago reaches it only with a later refresh (Kafka answers an all-topics request from its
    metadata cache, which a new topic joins shortly after CreateTopics returns).
    """
    deadline = time.monotonic() + timeout
    # the AIOKafkaClient inside (a consumer's ``_client``, a producer's ``client``): its refresh updates its cluster
    inner = client._client if hasattr(client, "_client") else client.client
    inner.add_topic(topic)
    while True:
        await inner.force_metadata_update()
        parts = inner.cluster.partitions_for_topic(topic)
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
