"""What the engine reads and sets inside aiokafka's input consumer: how long the broker may hold a
fetch (:class:`FetchPacer`) and whether any broker connection is alive (:class:`BrokerWatch`).

aiokafka has no public API for either, so both use private attributes of its consumer; each keeps
working without them (the static fetch settings; "reachable") and says so where that matters.
"""

from __future__ import annotations

import logging
from typing import Any

from .metrics import Metrics
from .settings import Settings

__all__ = ["BrokerWatch", "FetchPacer"]

log = logging.getLogger("stream.engine")  # the engine's lines, as before they moved here


class FetchPacer:
    """While records flow, fetches wait for ``fetch_min_bytes`` or ``fetch_max_wait_ms`` (the
    micro-batch's size and deadline); after an empty one, for the first byte or the idle wait.

    At real-time rates a fetch answered at the first byte returns a few records, and each fetch costs
    the worker a request and a response over every assigned partition, parsed in Python; holding it
    cut the demo mix's CPU per event by ~30 % (docs/benchmarks.md). aiokafka reads both values from
    its fetcher when it builds each request.

    Example:
        >>> from types import SimpleNamespace
        >>> consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_min_bytes=1, _fetch_max_wait_ms=100))
        >>> FetchPacer(Settings()).adapt(consumer, True)
        >>> consumer._fetcher._fetch_min_bytes, consumer._fetcher._fetch_max_wait_ms
        (65536, 30)
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.flowing = False  # the consumer starts with the idle settings (BatchEngine.start)
        self._warned = False

    def adapt(self, consumer: Any, flowing: bool) -> None:
        """Set the fetcher for records flowing (the last fetch returned some) or not."""
        if flowing == self.flowing:
            return
        self.flowing = flowing
        fetcher = getattr(consumer, "_fetcher", None)
        if not (hasattr(fetcher, "_fetch_min_bytes") and hasattr(fetcher, "_fetch_max_wait_ms")):
            if flowing and not self._warned:
                self._warned = True
                log.warning(
                    "this aiokafka has no fetcher settings to adapt: every fetch waits for the first byte "
                    "(more, smaller micro-batches); pin aiokafka to a tested version (pyproject.toml)"
                )
            return
        s = self.settings
        fetcher._fetch_min_bytes, fetcher._fetch_max_wait_ms = (  # type: ignore[union-attr]
            (s.fetch_min, s.fetch_wait_ms) if flowing else (1, s.fetch_idle_wait)
        )


class BrokerWatch:
    """Broker reachability, checked once a second: the ``broker_connected`` gauge, a disconnect
    counter and log lines on each change (two failed checks in a row before it says "down").

    Example:
        >>> from types import SimpleNamespace
        >>> BrokerWatch.connected(SimpleNamespace(_client=SimpleNamespace(_conns={})))
        False
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.down_since: float | None = None  # monotonic time the brokers became unreachable
        self._checks = 0
        self._logged = 0.0

    @staticmethod
    def connected(consumer: Any) -> bool:
        """Whether the consumer's client holds at least one live broker connection.

        aiokafka reconnects silently and ``getmany`` just returns nothing while the brokers are
        gone, so the only signal is its connection table (private; unknown internals count as up).
        """
        conns = getattr(getattr(consumer, "_client", None), "_conns", None)
        if not isinstance(conns, dict):
            return True
        return any(c.connected() for c in list(conns.values()))

    def check(self, consumer: Any, now: float) -> None:
        """One check at monotonic time ``now``."""
        if self.connected(consumer):
            self._checks = 0
            if self.down_since is not None:
                log.warning("broker reachable again after %.1f s; consuming resumes", now - self.down_since)
                self.down_since = None
                self.metrics.broker_connected.set(1)
            return
        self._checks += 1
        if self.down_since is None and self._checks >= 2:  # two checks a second apart: not a blip
            self.down_since = now - 1.0
            self._logged = now
            self.metrics.broker_connected.set(0)
            self.metrics.broker_disconnects.inc()
            log.error(
                "broker unreachable: no live connection to %s; the worker keeps retrying and resumes when it is "
                "back (check the brokers, the network and SEQSTREAM_BROKER_URL)",
                ",".join(self.settings.bootstrap_servers),
            )
        elif self.down_since is not None and now - self._logged >= 30.0:
            self._logged = now
            log.error("broker still unreachable after %.0f s; retrying", now - self.down_since)
