"""``FetchPacer``: while records flow, fetches wait for ``fetch_min_bytes`` or the fetch wait (the
micro-batch's size and deadline); after an empty fetch, for the first byte or the idle wait. The
real aiokafka fetcher is checked in ``tests/integration/test_fetch_adapt.py``."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from stream.input_consumer import BrokerWatch, FetchPacer
from stream.metrics import Metrics
from stream.settings import Settings


def _consumer() -> SimpleNamespace:
    return SimpleNamespace(_fetcher=SimpleNamespace(_fetch_min_bytes=1, _fetch_max_wait_ms=100))


def test_flowing_fetches_wait_for_bytes_or_the_deadline_and_idle_ones_for_the_first_byte() -> None:
    s = Settings()
    pacer, c = FetchPacer(s), _consumer()
    assert (s.fetch_min, s.fetch_wait_ms, s.fetch_idle_wait) == (64 << 10, 30, 100)  # production defaults
    pacer.adapt(c, True)
    assert (c._fetcher._fetch_min_bytes, c._fetcher._fetch_max_wait_ms) == (64 << 10, 30)
    pacer.adapt(c, True)
    assert (c._fetcher._fetch_min_bytes, c._fetcher._fetch_max_wait_ms) == (64 << 10, 30)
    pacer.adapt(c, False)
    assert (c._fetcher._fetch_min_bytes, c._fetcher._fetch_max_wait_ms) == (1, 100)


def test_settings_override_and_the_tansu_profile_never_holds_a_fetch() -> None:
    pacer, c = FetchPacer(Settings(fetch_min_bytes=1000, fetch_max_wait_ms=5, fetch_idle_wait_ms=250)), _consumer()
    pacer.adapt(c, True)
    assert (c._fetcher._fetch_min_bytes, c._fetcher._fetch_max_wait_ms) == (1000, 5)
    pacer.adapt(c, False)
    assert (c._fetcher._fetch_min_bytes, c._fetcher._fetch_max_wait_ms) == (1, 250)
    tansu = Settings(profile="tansu")
    assert (tansu.fetch_min, tansu.fetch_wait_ms, tansu.fetch_idle_wait) == (1, 20, 20)


def test_a_client_without_the_fetcher_settings_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    pacer = FetchPacer(Settings())
    with caplog.at_level(logging.WARNING, logger="stream.engine"):
        for flowing in (True, False, True):
            pacer.adapt(SimpleNamespace(), flowing)
    assert sum("no fetcher settings" in r.message for r in caplog.records) == 1


def test_the_broker_is_down_after_two_failed_checks_and_up_at_the_first_good_one() -> None:
    metrics = Metrics()
    watch = BrokerWatch(Settings(broker_url="kafka://k1:9092"), metrics)
    up = SimpleNamespace(connected=lambda: True)
    conns: dict[str, SimpleNamespace] = {}
    consumer = SimpleNamespace(_client=SimpleNamespace(_conns=conns))
    metrics.broker_connected.set(1)
    watch.check(consumer, 10.0)  # one failed check: a blip
    assert watch.down_since is None and metrics.broker_connected._value.get() == 1
    watch.check(consumer, 11.0)
    assert watch.down_since == 10.0 and metrics.broker_connected._value.get() == 0
    conns["b1"] = up
    watch.check(consumer, 12.0)
    assert watch.down_since is None and metrics.broker_connected._value.get() == 1
    assert BrokerWatch.connected(SimpleNamespace())  # unknown internals count as up
