"""``BatchEngine._adapt_fetch``: while records flow, fetches wait for ``fetch_min_bytes`` or the fetch
wait (the micro-batch's size and deadline); after an empty fetch, for the first byte or the idle wait.
The real aiokafka fetcher is checked in ``tests/integration/test_fetch_adapt.py``."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from stream.engine import BatchEngine
from stream.metrics import Metrics
from stream.settings import Settings


def _engine(**kw: object) -> BatchEngine:
    engine = BatchEngine(Settings(**kw), {}, Metrics())  # type: ignore[arg-type]
    engine.consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_min_bytes=1, _fetch_max_wait_ms=100))
    return engine


def test_flowing_fetches_wait_for_bytes_or_the_deadline_and_idle_ones_for_the_first_byte() -> None:
    engine = _engine()
    f = engine.consumer._fetcher
    s = engine.settings
    assert (s.fetch_min, s.fetch_wait_ms, s.fetch_idle_wait) == (64 << 10, 30, 100)  # production defaults
    engine._adapt_fetch(True)
    assert (f._fetch_min_bytes, f._fetch_max_wait_ms) == (64 << 10, 30)
    engine._adapt_fetch(True)
    assert (f._fetch_min_bytes, f._fetch_max_wait_ms) == (64 << 10, 30)
    engine._adapt_fetch(False)
    assert (f._fetch_min_bytes, f._fetch_max_wait_ms) == (1, 100)


def test_settings_override_and_the_tansu_profile_never_holds_a_fetch() -> None:
    engine = _engine(fetch_min_bytes=1000, fetch_max_wait_ms=5, fetch_idle_wait_ms=250)
    engine._adapt_fetch(True)
    f = engine.consumer._fetcher
    assert (f._fetch_min_bytes, f._fetch_max_wait_ms) == (1000, 5)
    engine._adapt_fetch(False)
    assert (f._fetch_min_bytes, f._fetch_max_wait_ms) == (1, 250)
    tansu = Settings(profile="tansu")
    assert (tansu.fetch_min, tansu.fetch_wait_ms, tansu.fetch_idle_wait) == (1, 20, 20)


def test_a_client_without_the_fetcher_settings_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    engine = _engine()
    engine.consumer = SimpleNamespace()
    with caplog.at_level(logging.WARNING, logger="stream.engine"):
        for flowing in (True, False, True):
            engine._adapt_fetch(flowing)
    assert sum("no fetcher settings" in r.message for r in caplog.records) == 1
