"""The stream explorer end to end: a real worker on a real Tansu broker, the simulator running, and
the page driven in Debian's headless ``chromium`` by Playwright (the Python package, launched with
the system browser's executable path; no browser download).

Needs ``pip install playwright`` and ``apt-get install chromium``; without them the browser test is
skipped with the reason, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stream.explorer import partition_of
from stream.sources.simulator import Simulator
from stream.tools.produce import produce

from .conftest import WorkerHandle, produce_records

pytestmark = pytest.mark.integration

N_STREAMS, BULK_ROUNDS, ANOMALY_ROUND, HZ = 12, 450, 470, 20.0
CHROMIUM = os.environ.get("SEQSTREAM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _http(url: str, timeout: float = 30.0) -> tuple[int, Any]:
    # generous: the worker answers between micro-batches, which take seconds on a loaded CI machine
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class LiveSimulator:
    """``stream.tools.produce.produce`` in a thread of its own (real time, real broker) until stopped."""

    def __init__(self, bootstrap: str, topic: str, sim: Simulator, rate: float, seconds: float = 240.0) -> None:
        self.args = (bootstrap, topic, sim, rate, seconds)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.sent = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="live-simulator", daemon=True)

    def _run(self) -> None:
        bootstrap, topic, sim, rate, seconds = self.args

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.stop_event = asyncio.Event()
            self.sent = await produce(bootstrap, topic, sim, rate=rate, seconds=seconds, stop=self.stop_event)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the test
            self.error = exc

    def start(self) -> LiveSimulator:
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.loop is not None and self.stop_event is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=30)


@dataclass
class Explorer:
    base: str
    anomaly: str
    streams: list[str]
    live: LiveSimulator
    partitions: int


@pytest.fixture(scope="module")
def explorer(worker: WorkerHandle) -> Iterator[Explorer]:
    """Backfilled history for N streams, then the simulator live; the injected anomaly alerts."""
    s = worker.settings
    sim = Simulator("sensors", N_STREAMS, seed=31, prefix="xpl")
    (anomaly,) = sim.inject(1, ANOMALY_ROUND, ANOMALY_ROUND + 1, length=int(2 * HZ))
    t0 = time.time() - 3600.0
    records: list[tuple[str, bytes | None, bytes | None]] = []
    for k in range(BULK_ROUNDS):
        records += [(s.topic("sensors"), e.key(), e.value()) for e in sim.round(t0 + k / HZ)]
    produce_records(s.bootstrap_servers[0], records)
    live = LiveSimulator(s.bootstrap_servers[0], s.topic("sensors"), sim, rate=N_STREAMS * HZ).start()
    base = f"http://{worker.process.host}:{worker.process.web_port}"
    url = f"{base}/api/streams/{urllib.parse.quote(anomaly.stream, safe='')}?source=sensors"
    deadline = time.monotonic() + 150.0
    d: Any = None
    try:
        while time.monotonic() < deadline:
            try:
                status, d = _http(url)
            except OSError:
                continue
            if status == 200 and d["points"] and 1 in d["points"]["transition"]:
                break
            assert live.error is None, live.error
            time.sleep(0.5)
        else:
            pytest.fail(f"no alert opened on {anomaly.stream} within 150 s; last answer {str(d)[:400]}")
        yield Explorer(base, anomaly.stream, sim.streams, live, s.partitions)
    finally:
        live.stop()


@pytest.fixture
def browser_api() -> Any:
    """Playwright's sync API and the system chromium, or a skip (a failure under CI) naming what is missing."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the Python package playwright (pip install playwright; no browser download needed)")
        sync_playwright = None  # type: ignore[assignment]
    if not Path(CHROMIUM).is_file():
        missing.append(f"a chromium executable at {CHROMIUM} (apt-get install chromium, or set SEQSTREAM_CHROMIUM)")
    if missing:
        reason = "explorer browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return sync_playwright


def test_api_against_the_worker(explorer: Explorer) -> None:
    status, body = _http(f"{explorer.base}/api/streams?q=xpl-&limit=1000")
    assert status == 200
    listed = {r["stream"] for r in body["streams"] if r["source"] == "sensors"}
    assert listed == set(explorer.streams), listed ^ set(explorer.streams)
    assert body["streams"][0]["stream"] == explorer.anomaly, body["streams"][:3]  # highest peak score first
    row = body["streams"][0]
    assert row["state"] == "active" and row["events"] >= BULK_ROUNDS and row["peak"] >= 0.5
    status, d = _http(f"{explorer.base}/api/streams/{explorer.anomaly}?source=sensors")
    assert status == 200 and d["model"] == "test-sensors" and d["owned"] is True
    assert any(a["state"] == "open" and "expected" in a["explanation"] for a in d["alerts"])
    # unknown and hostile ids: JSON 404s that name the partition the id hashes to
    for sid in ["no-such-stream", "../../etc/passwd", "a/b", "café ✓ <b>", "x" * 1000]:
        status, d = _http(f"{explorer.base}/api/streams/{urllib.parse.quote(sid, safe='')}")
        assert status == 404 and d["stream"] == sid and d["error"] == "unknown_stream"
        parts = {w["source"]: w["partition"] for w in d["partitions"]}
        assert parts["sensors"] == partition_of(sid, explorer.partitions), d
    status, d = _http(f"{explorer.base}/api/streams/{'y' * 2000}")
    assert status == 400 and d["error"] == "bad_request"


def test_explorer_page_in_chromium(browser_api: Any, explorer: Explorer) -> None:
    sync_playwright = browser_api  # requested first: a missing browser skips before the worker is fed
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "explorer.png"
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
            page.goto(f"{explorer.base}/explorer", wait_until="domcontentloaded")
            # the table lists the worker's streams, ours among them
            page.wait_for_function(
                "n => document.querySelectorAll('#streams tbody tr[data-stream]').length >= n", arg=N_STREAMS
            )
            # search narrows it to this test's streams; the injected anomaly sorts to the top (peak score)
            page.fill("#q", "xpl-")
            page.wait_for_function(
                """([n, top]) => {
                    const rows = [...document.querySelectorAll('#streams tbody tr[data-stream]')];
                    return rows.length === n && rows.every(r => r.dataset.stream.startsWith('xpl-'))
                        && rows[0].dataset.stream === top;
                }""",
                arg=[N_STREAMS, explorer.anomaly],
                timeout=30_000,
            )
            first = page.locator("#streams tbody tr[data-stream]").first
            assert first.get_attribute("data-stream") == explorer.anomaly
            # its detail: a chart with points, the alert marker, the explanation
            first.click()
            page.wait_for_function(
                "() => document.querySelectorAll('#chart circle.pt').length > 50 "
                "&& document.querySelectorAll('#chart g.alert-open').length >= 1",
                timeout=30_000,
            )
            assert page.inner_text("#d-title") == explorer.anomaly
            assert page.inner_text("#d-model") == "test-sensors"
            assert page.locator("#chart path.values").get_attribute("d")
            assert page.locator("#chart path.expected").get_attribute("d")
            assert page.locator("#chart polygon.band").count() == 1
            assert "expected [" in page.inner_text("#d-alerts")
            n_points = int(page.locator("#chart").get_attribute("data-points") or 0)
            page.screenshot(path=str(shot), full_page=True)
            # auto-refresh keeps it live: the simulator's new events arrive without a reload
            before = page.inner_text("#d-events")
            page.wait_for_function(
                "b => document.getElementById('d-events').textContent !== b", arg=before, timeout=20_000
            )
            assert not errors, errors
            # a hostile id in the deep link is shown as text, never run as markup (its API answer is a 404)
            hostile = "<img src=x onerror=alert(1)>"
            page.goto(f"{explorer.base}/explorer#sensors/{urllib.parse.quote(hostile, safe='')}")
            # same document, only the hash changes: the old title stays until the page has fetched the new one
            page.wait_for_function("h => document.getElementById('d-title').textContent === h", arg=hostile)
            page.wait_for_function("() => !document.getElementById('d-message').hidden")
            assert page.inner_text("#d-title") == hostile
            assert page.locator("#detail img").count() == 0
            assert "does not own" in page.inner_text("#d-message") or "no buffered" in page.inner_text("#d-message")
        finally:
            browser.close()
    assert not [e for e in errors if "status of 404" not in e], errors
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert n_points >= 100
    print(f"explorer: screenshot {shot}, {n_points} points charted, simulator sent {explorer.live.sent or 'n/a'}")
