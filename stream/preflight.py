"""The check a command makes before it starts its Kafka clients: one line and exit 2 instead of a traceback.

Used by every command that talks to a broker (``worker``, ``demo`` on a broker of your own,
``produce``, ``tail``, ``train --topic``, ``bench --broker``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .admin import check_brokers, check_topics, client_kwargs, quiet_kafka_logs
from .transactions import PartitionTransactions

__all__ = ["preflight"]


def preflight(settings: Any, topics: Iterable[str] = (), hint: str = "") -> None:
    """Before a command starts its clients: the brokers answer (every advertised address; retried for
    ``connect_timeout_s`` while they come up), the ``topics`` exist (``hint``: what to do otherwise),
    and the broker takes transactions if ``exactly_once``. Every failure is one line: a
    :class:`~stream.admin.BrokerError` (or a :class:`~models.errors.ConfigError` for the settings), exit 2."""
    kw = client_kwargs(settings)  # an unreadable TLS file: one line
    wanted = list(topics)

    async def run() -> None:
        await check_brokers(settings.bootstrap_servers, timeout=settings.connect_timeout_s, **kw)
        if wanted:
            await check_topics(settings.bootstrap_servers, wanted, hint, **kw)
        if settings.exactly_once:
            await PartitionTransactions(settings).probe()

    with quiet_kafka_logs():  # aiokafka's own ERROR lines: the failure is reported in one line
        asyncio.run(run())
