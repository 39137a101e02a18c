"""CLI habits of the ecosystem (issue 19, item 4) and explorer access (item 3), without a broker:
``--version``, the top-level help, ``-v``/``--loglevel``, the line formats of ``produce --from-stdin``,
how ``tail`` shows bytes, ``/ready``'s reasons, the process collectors and the explorer's token."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from models.errors import ConfigError
from stream.app import readiness
from stream.cli import build_parser, log_level, version
from stream.explorer import Explorer, TokenGuard, aiohttp_app, explorer_bind, ring_store_for
from stream.explorer.routes import COOKIE
from stream.metrics import Metrics
from stream.settings import Settings
from stream.tools.produce import Record, parse_bytes, parse_json, parse_kv, record_parser
from stream.tools.tail import format_json, format_record, parse_offset, render_bytes

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


# -- --version, help, verbosity ---------------------------------------------------------------


def test_version_flag() -> None:
    p = _cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"seqstream {version()}", p
    assert version() != "unknown" and version()[0].isdigit()


def test_top_level_help_is_for_users() -> None:
    text = build_parser().format_help()
    assert "Heavy imports" not in text and ":mod:" not in text  # the developer docstring is gone
    assert "getting started" in text and "--version" in text
    for cmd in ("demo", "worker", "produce --from-stdin", "tail"):
        assert f"seqstream {cmd}" in text, cmd


@pytest.mark.parametrize(
    ("argv", "env", "level"),
    [
        (["worker"], None, "info"),
        (["worker"], "warning", "warning"),
        (["-v", "worker"], "warning", "debug"),
        (["worker", "-v"], None, "debug"),
        (["worker", "-l", "error"], None, "error"),
        (["-l", "WARNING", "worker", "-v"], None, "warning"),  # --loglevel wins over -v wherever each is
        (["-v", "worker", "--loglevel", "error"], "debug", "error"),
        (["tail", "t"], None, "info"),
    ],
)
def test_verbosity_flags(argv: list[str], env: str | None, level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if env is None:
        monkeypatch.delenv("SEQSTREAM_LOGLEVEL", raising=False)
    else:
        monkeypatch.setenv("SEQSTREAM_LOGLEVEL", env)
    assert log_level(build_parser().parse_args(argv)) == level


def test_bad_loglevel_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["worker", "-l", "loud"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


# -- produce --from-stdin: options and line formats -------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["produce"], "--source is required"),
        (["produce", "--from-stdin"], "needs --topic"),
        (["produce", "-P", "-t", "x", "--source", "sensors"], "simulated data"),
    ],
)
def test_produce_usage_errors(argv: list[str], words: str) -> None:
    p = _cli(*argv)
    assert p.returncode == 2 and words in p.stderr, p


def test_produce_options_parse() -> None:
    a = build_parser().parse_args(["produce", "-P", "-t", "in", "--format", "json", "-p", "3", "-K", ";"])
    assert (a.from_stdin, a.topic, a.format, a.partition, a.key_delimiter) == (True, "in", "json", 3, ";")
    a = build_parser().parse_args(["produce", "--source", "sensors"])
    assert not a.from_stdin and a.key_delimiter == "\t" and a.format == "kv"


def test_parse_kv() -> None:
    assert parse_kv(b"k\tv\n") == Record(b"k", b"v")
    assert parse_kv(b"k\ta\tb\n") == Record(b"k", b"a\tb")  # split at the first delimiter only
    assert parse_kv(b"no key here\r\n") == Record(None, b"no key here")
    assert parse_kv(b"k\t\n") == Record(b"k", b"")  # an empty value is a value
    assert parse_kv(b"\n") is None and parse_kv(b"") is None
    assert parse_kv(b"\xff\xfe\tv", b"\t").key == b"\xff\xfe"  # kv lines are bytes: any key
    assert record_parser("kv", ";")(b"a;b") == Record(b"a", b"b")
    assert record_parser("kv", "\\t")(b"a\tb") == Record(b"a", b"b")  # `-K '\t'` typed in a shell
    with pytest.raises(ConfigError):
        record_parser("kv", "")
    with pytest.raises(ConfigError):
        record_parser("csv")


def test_parse_json() -> None:
    r = parse_json(b'{"key": "pump-7", "value": {"ts": 1, "value": 0.5}, "partition": 1, "headers": {"h": "x"}}')
    assert r == Record(b"pump-7", b'{"ts":1,"value":0.5}', 1, (("h", b"x"),))
    assert parse_json(b'{"value": "plain text"}') == Record(None, b"plain text")
    assert parse_json(b'{"key": "k", "value": null}') == Record(b"k", None)  # a tombstone
    assert parse_json(b'{"key": "b64:/w==", "value": "b64:AAE=", "headers": [["a", null]]}') == Record(
        b"\xff", b"\x00\x01", None, (("a", None),)
    )
    assert parse_json(b'{"value": 3}').value == b"3"
    assert parse_json(b"   \n") is None
    # tail --format json's extra fields are accepted, so its lines can be sent back
    assert parse_json(b'{"topic": "t", "offset": 5, "timestamp": 1, "key": null, "value": "v"}') == Record(None, b"v")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"key": "k"}', 'no "value"'),
        (b'{"key": 5, "value": 1}', '"key" must be a string'),
        (b'{"value": 1, "partition": -1}', '"partition" must be an integer'),
        (b'{"value": 1, "partition": true}', '"partition" must be an integer'),
        (b'{"value": 1, "vaule": 2}', "unknown field(s) vaule"),
        (b'{"value": 1, "headers": [1]}', '"headers" must be'),
        (b'{"value": "b64:%%%"}', "not base64"),
    ],
)
def test_parse_json_errors(line: bytes, why: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_json(line)
    assert why in str(e.value)


# -- tail: how bytes are shown ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", [b"pump-7", b"caf\xc3\xa9", b"\xff\xfe\x00", b"b64:looks-encoded", b"", b"\x80abc", "✓".encode()]
)
def test_render_and_parse_bytes_round_trip(raw: bytes) -> None:
    shown = render_bytes(raw)
    assert shown is not None and "\ufffd" not in shown
    assert parse_bytes(shown) == raw


def test_render_bytes_forms() -> None:
    assert render_bytes(b"pump-7") == "pump-7"
    assert render_bytes(b"\xff") == "b64:/w=="
    assert render_bytes(b"b64:x") == "b64:YjY0Ong="  # a text key that would read as base64 is encoded itself
    assert render_bytes(None) is None


def test_text_and_json_lines_never_show_replacement_characters() -> None:
    line = format_record("t", 0, 1, b"\xffkey", b"\xfe\xff not json")
    assert "\ufffd" not in line and "b64:/2tleQ==" in line
    js = format_json("t", 2, 9, 123, b"\xff", b"\xfe", [("h", b"\xfd")])
    assert "\ufffd" not in js
    back = parse_json(js.encode())
    assert back == Record(b"\xff", b"\xfe", 2, (("h", b"\xfd"),))


def test_parse_offset() -> None:
    assert parse_offset("beginning") == "beginning" and parse_offset("END") == "end"
    assert parse_offset("42") == 42 and parse_offset("-10") == -10
    with pytest.raises(ConfigError, match="expected beginning, end"):
        parse_offset("yesterday")


def test_tail_options_parse() -> None:
    a = build_parser().parse_args(
        ["tail", "t", "-o", "-5", "-p", "0", "-p", "2", "-k", "pump-7", "--format", "json", "-c", "3", "--timeout", "2"]
    )
    assert (a.offset, a.partition, a.key, a.format, a.limit, a.idle_exit) == ("-5", [0, 2], "pump-7", "json", 3, 2.0)
    a = build_parser().parse_args(["tail", "t", "-G", "g", "-e"])
    assert a.group == "g" and a.exit_at_end


async def test_tail_refuses_contradictory_options() -> None:
    from stream.tools.tail import tail

    with pytest.raises(ConfigError, match="--group and --partition"):
        await tail("127.0.0.1:1", "t", group="g", partitions=[0])
    with pytest.raises(ConfigError, match="committed offsets decide"):
        await tail("127.0.0.1:1", "t", group="g", offset=-5)
    with pytest.raises(ConfigError, match="--format"):
        await tail("127.0.0.1:1", "t", fmt="xml")


async def test_produce_lines_bad_line_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad line stops the command with its number and why; the lines before it were sent."""
    from stream.tools import produce as mod

    sent: list[tuple[Any, ...]] = []

    class FakeProducer:
        def __init__(self, **kw: Any) -> None:
            self.stopped = False

        async def start(self) -> None: ...

        async def stop(self) -> None:
            self.stopped = True

        async def send(self, topic: str, value: Any, key: Any = None, partition: Any = None, **kw: Any) -> Any:
            import asyncio

            sent.append((topic, key, value, partition, kw.get("headers")))
            f: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            f.set_result(None)
            return f

    async def parts(producer: Any, topic: str, timeout: float = 5.0) -> set[int]:
        return {0, 1}

    import aiokafka

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", FakeProducer)
    import stream.admin

    monkeypatch.setattr(stream.admin, "partitions_of", parts)  # the topic's metadata, without a broker
    lines = io.BytesIO(
        b'{"key": "a", "value": 1}\n\n{"key": "b", "value": 2, "partition": 1}\n{"key": 3}\n{"value": 4}\n'
    )
    from models.errors import InputError

    with pytest.raises(InputError) as e:
        await mod.produce_lines("x:1", "t", lines, fmt="json")
    assert str(e.value).startswith("stdin line 4: ") and "2 record(s) before it were sent" in str(e.value)
    assert sent == [("t", b"a", b"1", None, None), ("t", b"b", b"2", 1, None)]
    sent.clear()
    with pytest.raises(InputError, match="partition 5 does not exist"):
        await mod.produce_lines("x:1", "t", io.BytesIO(b"k\tv\n"), partition=5)
    assert await mod.produce_lines("x:1", "t", io.BytesIO(b"k\tv\nonly\n"), partition=1) == 2
    assert sent == [("t", b"k", b"v", 1, None), ("t", None, b"only", 1, None)]


# -- /metrics collectors, /ready ------------------------------------------------------------------


def test_metrics_have_process_and_platform_collectors() -> None:
    text = Metrics().render().decode()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info", "python_gc_"):
        assert name in text, name
    Metrics()  # the shared collectors may sit on several private registries


def _engine(phase: str = "assigned", replaying: int = 0, stopping: bool = False) -> Any:
    flag = SimpleNamespace(is_set=lambda: stopping)
    return SimpleNamespace(_stopping=flag, state=SimpleNamespace(phase=phase, replaying=replaying))


@pytest.mark.parametrize(
    ("engine", "up", "connected", "reason"),
    [
        (None, 0, 1, "starting"),
        (_engine("joining"), 0, 1, "starting"),  # the consumer is not started yet
        (_engine("joining"), 1, 1, "joining"),
        (_engine("restoring"), 1, 1, "restoring"),
        (_engine("assigned", replaying=2), 1, 1, "restoring"),  # replaying below the committed offsets
        (_engine("assigned"), 1, 0, "broker_unreachable"),
        (_engine("assigned", stopping=True), 0, 1, "stopping"),
        (_engine("assigned"), 1, 1, ""),
    ],
)
def test_readiness(engine: Any, up: int, connected: int, reason: str) -> None:
    m = Metrics()
    m.up.set(up)
    m.broker_connected.set(connected)
    m.assigned_partitions.set(3)
    status, body = readiness(engine, m)
    if not reason:
        assert status == 200 and body == {"ready": True, "status": "ready", "assigned_partitions": 3}
    else:
        assert status == 503 and body["ready"] is False and body["reason"] == reason and body["message"]


# -- explorer access ------------------------------------------------------------------------------


def test_explorer_off_buffers_nothing() -> None:
    runner = SimpleNamespace(
        n_features=1, scoring=SimpleNamespace(open_threshold=0.5, warmup=3), model_id="m", slab=None
    )
    assert ring_store_for("sensors", runner, Settings()) is not None  # type: ignore[arg-type]
    assert ring_store_for("sensors", runner, Settings(explorer="off")) is None  # type: ignore[arg-type]
    assert Settings(explorer="off").explorer is False and Settings(explorer="on").explorer is True


def test_explorer_off_registers_no_route() -> None:
    from stream.app import create_app

    def paths(app: Any) -> set[str]:
        return {p for p, *_ in app.web.views.items()} if hasattr(app.web, "views") else set()

    on = create_app(Settings(broker_url="kafka://127.0.0.1:9092"))
    off = create_app(Settings(broker_url="kafka://127.0.0.1:9092", explorer=False))
    own = create_app(Settings(broker_url="kafka://127.0.0.1:9092", explorer_port=16999))
    assert "/explorer" in paths(on) and "/ready" in paths(on) and "/metrics" in paths(on)
    assert "/explorer" not in paths(off) and "/ready" in paths(off)
    assert "/explorer" not in paths(own) and not any(p.startswith("/api/streams") for p in paths(own))


def test_explorer_bind() -> None:
    assert explorer_bind(Settings()) is None
    assert explorer_bind(Settings(explorer_port=6066)) is None  # the web server's own address
    assert explorer_bind(Settings(explorer_port=7000)) == ("127.0.0.1", 7000)
    assert explorer_bind(Settings(web_host="127.0.0.1", explorer_host="10.0.0.5")) == ("10.0.0.5", 6066)


@pytest.fixture
async def guarded() -> Any:
    ex = Explorer({}, Settings())
    async with TestClient(TestServer(aiohttp_app(ex, TokenGuard("s3cret")))) as c:
        yield c


async def test_explorer_token(guarded: Any) -> None:
    for path in ("/explorer", "/api/streams", "/api/streams/pump-7"):
        r = await guarded.get(path)
        assert r.status == 401, path
        assert r.headers["WWW-Authenticate"].startswith("Bearer") and (await r.json())["error"] == "unauthorized"
        r = await guarded.get(path, headers={"Authorization": "Bearer wrong"})
        assert r.status == 401, path
        r = await guarded.get(path, headers={"Authorization": "Bearer s3cret"})
        assert r.status in (200, 503), path  # 503: no engine behind this explorer (allowed in, not refused)
    # ?token= is a login for the page only, not for the API (tokens in addresses end up in logs)
    assert (await guarded.get("/api/streams", params={"token": "s3cret"})).status == 401
    assert (await guarded.get("/explorer", params={"token": "wrong"})).status == 401


async def test_explorer_token_browser_login() -> None:
    """A browser: /explorer?token= once redirects to the page and sets an HttpOnly cookie the API accepts."""
    ex = Explorer({}, Settings())
    guard = TokenGuard("s3cret")
    async with TestClient(TestServer(aiohttp_app(ex, guard))) as c:
        r = await c.get("/explorer", params={"token": "s3cret"}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/explorer"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret" not in cookie
        r = await c.get("/explorer")  # the client keeps the cookie
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        assert (await c.get("/api/streams")).status == 503  # allowed in; no engine here
    async with TestClient(TestServer(aiohttp_app(ex, guard))) as c:
        forged = {COOKIE: "0" * 64}
        assert (await c.get("/api/streams", cookies=forged)).status == 401


def test_the_worker_logs_at_its_level_not_at_debug() -> None:
    """At ``-l warning`` the root logger stays at WARNING: Faust's terminal spinner would lower it to DEBUG
    (and every aiokafka debug record would be built on the hot path)."""
    import logging

    from stream.app import create_app
    from stream.cli.online import faust_worker
    from stream.settings import Settings

    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        worker = faust_worker(create_app(Settings(broker_url="kafka://127.0.0.1:1")), "warning")
        worker.redirect_stdouts = False
        worker._setup_logging()
        assert root.level == logging.WARNING
        assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
