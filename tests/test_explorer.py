"""Stream explorer: ring buffers, the JSON API (unknown and hostile ids), the page, the pipeline hook."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from models import Alert, NetConfig, RecurrentForecaster, Runner, ScoringConfig
from stream.engine import BulkProducer
from stream.explorer import MAX_ID_CHARS, Explorer, RingStore, aiohttp_app, band, partition_of, ring_store_for
from stream.pipeline import SourcePipeline
from stream.settings import Settings

# ---------------------------------------------------------------------------------------------
# helpers


def _res(
    n: int,
    *,
    f: int = 1,
    score: Any = None,
    accepted: Any = None,
    anomaly: Any = None,
    transition: Any = None,
    alerts: list[Alert] | None = None,
    pred: Any = None,
) -> Any:
    return SimpleNamespace(
        accepted=np.ones(n, bool) if accepted is None else np.asarray(accepted, bool),
        prediction=np.zeros((n, f), np.float32) if pred is None else np.asarray(pred, np.float32).reshape(n, f),
        expected=np.full((n, f), 0.5, np.float32),
        score=np.zeros(n, np.float32) if score is None else np.asarray(score, np.float32),
        anomaly=np.zeros(n, bool) if anomaly is None else np.asarray(anomaly, bool),
        transition=np.zeros(n, np.int8) if transition is None else np.asarray(transition, np.int8),
        alerts=alerts or [],
        reason=[None] * n,
    )


def _feed(store: RingStore, ids: list[str], ts: list[float], values: list[float], **kw: Any) -> None:
    n = len(ids)
    store.record(ids, np.asarray(ts, np.float64), np.asarray(values, np.float32).reshape(n, -1), _res(n, **kw))


class FakeSlab:
    """What the explorer reads of a StateSlab: membership, slot, steps, evictions, capacity."""

    def __init__(self, ids: list[str], steps: int = 100) -> None:
        self.slots = {s: i for i, s in enumerate(ids)}
        self.steps = np.full(max(1, len(ids)), steps, np.int64)
        self.evictions = 0
        self.capacity = len(self.steps)

    def __contains__(self, s: object) -> bool:
        return s in self.slots

    @property
    def slot_of(self) -> dict[str, int]:
        return self.slots

    def slot(self, s: str) -> int | None:
        return self.slots.get(s)

    def evict(self, ids: list[str]) -> None:
        for s in ids:
            self.slots.pop(s, None)
        self.evictions += len(ids)


class FakeConsumer:
    def __init__(self, topic_parts: dict[str, int], assigned: dict[str, set[int]]) -> None:
        self.topic_parts, self.assigned = topic_parts, assigned

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.topic_parts.get(topic, 0)))

    def assignment(self) -> list[Any]:
        return [SimpleNamespace(topic=t, partition=p) for t, ps in self.assigned.items() for p in ps]


def _explorer(assigned: set[int] | None = None, parts: int = 8) -> tuple[Explorer, RingStore, FakeSlab]:
    """An Explorer over one 'sensors' source with streams s0..s9 (s3 anomalous, alert open)."""
    ids = [f"s{i}" for i in range(10)] + ["<script>alert(1)</script>", "../../etc/passwd", "café ✓"]
    store = RingStore("sensors", n_features=1, points=16, max_streams=64, threshold=0.5, warmup=20, model_id="m-1")
    slab = FakeSlab(ids)
    slab.steps[slab.slots["s9"]] = 5  # s9 is still warming up
    for k in range(20):
        scores = [0.05 * (i % 5) for i in range(len(ids))]
        tr = [0] * len(ids)
        alerts = []
        if k >= 15:
            scores[3] = 0.97
        if k == 15:
            tr[3] = 1
            alerts = [Alert(3, "s3", 1000.0 + k, "open", 0.97, [0.5], [9.0])]
        ev = [k + 1 if i != 0 else 1 for i in range(len(ids))]  # s0's ts stalls: oldest last event
        _feed(store, ids, [1000.0 + e for e in ev], [float(k)] * len(ids), score=scores, transition=tr, alerts=alerts)
    _feed(store, ["s4"] * 3, [1100.0, 1101.0, 1102.0], [1.0, 2.0, 3.0])  # s4: most events
    pipe = SimpleNamespace(
        explorer=store, runner=SimpleNamespace(slab=slab, scoring=ScoringConfig(warmup=20)), model_id="m-1", parked={}
    )
    consumer = FakeConsumer(
        {"sensor-readings": parts}, {"sensor-readings": set(range(parts)) if assigned is None else assigned}
    )
    engine = SimpleNamespace(pipelines={"sensors": pipe}, consumer=consumer)
    return Explorer({"engine": engine}, Settings(partitions=parts)), store, slab


# ---------------------------------------------------------------------------------------------
# ring buffer


def test_ring_keeps_last_n_points_in_order() -> None:
    store = RingStore("sensors", n_features=1, points=4, max_streams=8)
    for t in range(10):
        _feed(store, ["a", "b"], [float(t), float(t)], [float(t), -float(t)])
    p = store.points_of("a")
    assert p["ts"] == [6.0, 7.0, 8.0, 9.0]
    assert [v[0] for v in p["values"]] == [6.0, 7.0, 8.0, 9.0]
    assert [v[0] for v in store.points_of("b")["values"]] == [-6.0, -7.0, -8.0, -9.0]
    assert store.count[store._row_of["a"]] == 10


def test_ring_stream_repeated_in_one_batch_beyond_n() -> None:
    store = RingStore("sensors", n_features=1, points=4, max_streams=8)
    _feed(store, ["a"], [0.0], [0.0])
    ids = ["a", "b"] * 7  # a: 7 events in one batch (more than N), interleaved with b
    ts = [float(1 + i // 2) for i in range(14)]
    _feed(store, ids, ts, list(range(14)), pred=list(range(14)))
    assert store.points_of("a")["ts"] == [4.0, 5.0, 6.0, 7.0]
    assert [v[0] for v in store.points_of("a")["values"]] == [6.0, 8.0, 10.0, 12.0]
    assert store.pred[store._row_of["a"]].tolist() == [12.0]  # the last prediction wins
    assert store.pred[store._row_of["b"]].tolist() == [13.0]
    assert store.count[store._row_of["a"]] == 8


def test_ring_flags_alerts_and_rejections() -> None:
    store = RingStore("sensors", n_features=1, points=8, max_streams=8, threshold=0.5)
    _feed(store, ["a", "b"], [1.0, 1.0], [1.0, 2.0])
    alert = Alert(0, "a", 2.0, "open", 0.9, [1.0], [7.5])
    _feed(
        store, ["a", "b"], [2.0, 2.0], [7.5, 2.0], score=[0.9, 0.1], anomaly=[1, 0], transition=[1, 0], alerts=[alert]
    )
    _feed(store, ["a", "b"], [0.5, 3.0], [1.0, 2.0], accepted=[0, 1])  # a: out of order
    p = store.points_of("a")
    assert p["anomaly"] == [False, True] and p["transition"] == [0, 1] and p["score"][1] == pytest.approx(0.9)
    r = store._row_of["a"]
    assert bool(store.open[r]) and store.rejected[r] == 1 and store.count[r] == 2
    (a,) = store._summary(r)["alerts"]
    assert a["explanation"] == "open: expected [1], got [7.5] (score 0.900, threshold 0.500)"
    resolved = Alert(0, "a", 4.0, "resolved", 0.1, [1.0], [1.0])
    _feed(store, ["a"], [4.0], [1.0], transition=[-1], alerts=[resolved])
    assert not store.open[r] and store.points_of("a")["transition"][-1] == -1


def test_ring_bounded_streams_lru_and_growth() -> None:
    store = RingStore("sensors", n_features=2, points=8, max_streams=5, initial_rows=2)
    for k in range(5):
        _feed(store, [f"s{k}"], [float(k)], [[1.0, 2.0]])
    assert store.rows == 5 and len(store) == 5
    _feed(store, ["s0"], [10.0], [[1.0, 2.0]])  # s0 is now recently used; s1 the least
    _feed(store, ["new1", "new2"], [11.0, 11.0], [[0.0, 0.0], [0.0, 0.0]])
    assert set(store.stream_ids()) == {"s0", "s3", "s4", "new1", "new2"}
    assert store.dropped == 2 and store.rows == 5
    # more distinct new streams in one batch than rows: the extras are not buffered, nothing breaks
    ids = [f"x{i}" for i in range(9)]
    _feed(store, ids, [20.0] * 9, [[0.0, 0.0]] * 9)
    assert len(store) == 5 and set(store.stream_ids()) <= set(ids)


def test_ring_reuse_spares_streams_with_open_alerts() -> None:
    store = RingStore("sensors", n_features=1, points=4, max_streams=3)
    alert = Alert(0, "a", 1.0, "open", 0.9, [0.0], [5.0])
    _feed(store, ["a"], [1.0], [5.0], transition=[1], alerts=[alert])  # a: oldest, but its alert is open
    _feed(store, ["b", "c"], [2.0, 2.0], [0.0, 0.0])
    _feed(store, ["d"], [3.0], [0.0])
    assert set(store.stream_ids()) == {"a", "c", "d"}


def test_ring_sync_drops_evicted_streams_but_keeps_parked() -> None:
    store = RingStore("sensors", n_features=1, points=8, max_streams=8)
    slab = FakeSlab(["a", "b", "c"])
    alert = Alert(0, "a", 1.0, "open", 0.9, [0.0], [5.0])
    store.record(
        ["a", "b", "c"], np.ones(3), np.ones((3, 1), np.float32), _res(3, transition=[1, 0, 0], alerts=[alert])
    )
    slab.evict(["a", "b"])
    dropped = store.sync(slab, parked={"b"})
    assert dropped == 1 and "a" not in store and "b" in store and "c" in store
    assert store.tombstones["a"]["state"] == "evicted" and store.tombstones["a"]["alerts"]
    # the stream comes back: a fresh buffer, its alert history kept
    store.record(["a"], np.array([2.0]), np.ones((1, 1), np.float32), _res(1))
    assert "a" in store and "a" not in store.tombstones and store._summary(store._row_of["a"])["alerts"]


def test_band_is_causal_rolling_rms() -> None:
    x = np.array([[1.0], [3.0], [1.0], [np.nan]])
    e = np.array([[np.nan], [1.0], [2.0], [0.0]])
    b = band(x, e, window=2, k=1.0)[:, 0]
    assert math.isnan(b[0]) and math.isnan(b[1])  # no residual before point 1
    assert b[2] == pytest.approx(2.0) and b[3] == pytest.approx(math.sqrt((4 + 1) / 2))


def test_partition_matches_kafka_default_partitioner() -> None:
    for sid in ["pump-7", "sensor-0001", "café ✓", "a/b", "x" * 5000]:
        assert partition_of(sid, 8) == BulkProducer.partition_of(sid.encode(), 8)
        assert partition_of(sid, 3) == BulkProducer.partition_of(sid.encode(), 3)


def test_pipeline_feeds_the_store_and_can_be_turned_off() -> None:
    runner = Runner(RecurrentForecaster(NetConfig(hidden_size=8)), ScoringConfig(warmup=0), device="cpu")
    pipe = SourcePipeline("sensors", runner, Settings(explorer_points=16, explorer_streams=10))
    recs = [
        SimpleNamespace(
            topic="sensor-readings",
            partition=0,
            offset=i,
            key=b"a",
            value=orjson.dumps({"stream": "a", "ts": 100.0 + i, "values": [float(i)]}),
            timestamp=0,
        )
        for i in range(20)
    ]
    pipe.process(recs, now=200.0)
    assert pipe.explorer is not None and pipe.explorer.points == 16 and pipe.explorer.max_streams == 10
    p = pipe.explorer.points_of("a")
    assert p["ts"] == [100.0 + i for i in range(4, 20)] and pipe.explorer.model_id == runner.model_id
    off = SourcePipeline("sensors", runner, Settings(explorer_points=0))
    assert off.explorer is None
    assert ring_store_for("sensors", runner, Settings(explorer_points=0)) is None


def test_memory_per_stream_is_what_the_docs_say() -> None:
    store = RingStore("sensors", n_features=1, points=256, max_streams=4096, initial_rows=4096)
    # ts 8 + x 4F + expected 4F + score 4 + flags 1 per point, plus per-stream scalars (pred 4F,
    # five 8-byte counters/times, the open-alert and used-row masks 1 + 1)
    assert store.bytes_per_stream == 256 * (8 + 4 + 4 + 4 + 1) + 4 + 8 * 5 + 1 + 1


# ---------------------------------------------------------------------------------------------
# the API (handlers)


def test_list_sorted_by_score_then_other_keys() -> None:
    ex, _, _ = _explorer()
    status, body = ex.list_streams({})
    assert status == 200 and body["enabled"]
    rows = body["streams"]
    assert rows[0]["stream"] == "s3" and rows[0]["alert_open"] and rows[0]["score"] == pytest.approx(0.97)
    assert [r["peak"] for r in rows] == sorted((r["peak"] for r in rows), reverse=True)  # the default sort
    by_score = ex.list_streams({"sort": "score"})[1]["streams"]
    assert [r["score"] for r in by_score] == sorted((r["score"] for r in by_score), reverse=True)
    assert body["total"] == 13 and body["sources"][0]["model"] == "m-1"
    assert ex.list_streams({"sort": "events"})[1]["streams"][0]["stream"] == "s4"
    assert ex.list_streams({"sort": "last_ts", "order": "asc"})[1]["streams"][0]["stream"] == "s0"
    ids = [r["stream"] for r in ex.list_streams({"sort": "id"})[1]["streams"]]
    assert ids == sorted(ids)
    assert ex.list_streams({"sort": "alert"})[1]["streams"][0]["stream"] == "s3"
    states = {r["stream"]: r["state"] for r in rows}
    assert states["s9"] == "warming_up" and states["s1"] == "active"


def test_default_sort_finds_a_stream_whose_latest_score_is_suppressed() -> None:
    ex, store, _ = _explorer()
    # the scorer zeroes scores for a while after an onset: s5 peaked, then scored 0
    _feed(store, ["s5"], [2000.0], [50.0], score=[0.99])
    _feed(store, ["s5"] * 3, [2001.0, 2002.0, 2003.0], [50.0] * 3, score=[0.0] * 3)
    rows = ex.list_streams({})[1]["streams"]
    assert rows[0]["stream"] == "s5" and rows[0]["score"] == 0.0 and rows[0]["peak"] == pytest.approx(0.99)


def test_list_search_limit_source_and_bad_params() -> None:
    ex, _, _ = _explorer()
    assert [r["stream"] for r in ex.list_streams({"q": "S3"})[1]["streams"]] == ["s3"]  # case-insensitive
    assert [r["stream"] for r in ex.list_streams({"q": "é ✓"})[1]["streams"]] == ["café ✓"]
    assert len(ex.list_streams({"limit": "2"})[1]["streams"]) == 2
    assert ex.list_streams({"source": "ticks"})[1]["streams"] == []
    assert ex.list_streams({"q": "x" * 100_000})[0] == 200
    for bad in ({"sort": "nope"}, {"order": "sideways"}, {"limit": "many"}):
        status, body = ex.list_streams(bad)
        assert status == 400 and body["error"] == "bad_request"


def test_list_shows_only_owned_partitions() -> None:
    mine = {partition_of("s3", 8)}
    ex, _, _ = _explorer(assigned=mine)
    rows = ex.list_streams({})[1]["streams"]
    assert rows and all(partition_of(r["stream"], 8) in mine for r in rows)
    assert len(ex.list_streams({"all": "1"})[1]["streams"]) == 13


def test_detail_of_a_stream() -> None:
    ex, _, _ = _explorer()
    status, d = ex.stream_detail("s3")
    assert status == 200
    assert d["model"] == "m-1" and d["state"] == "active" and d["alert_open"] and d["owned"] is True
    assert d["partition"] == partition_of("s3", 8) and d["topic"] == "sensor-readings"
    assert d["slot"]["steps"] == 100 and d["slot"]["warmup"] == 20 and d["slot"]["age_s"] >= 0
    pts = d["points"]
    assert len(pts["ts"]) == 16 and len(pts["values"]) == len(pts["expected"]) == len(pts["band"]) == 16
    assert 1 in pts["transition"] and any(pts["anomaly"]) is False
    (a,) = d["alerts"]
    assert a["state"] == "open" and "expected [0.5], got [9]" in a["explanation"]
    orjson.dumps(d)  # JSON-serialisable as is (NaN -> null)


def test_unknown_stream_names_its_partition() -> None:
    sid = "pump-404"
    p = partition_of(sid, 8)
    ex, _, _ = _explorer(assigned={(p + 1) % 8})
    status, body = ex.stream_detail(sid)
    assert status == 404 and body["error"] == "unknown_stream" and body["owned"] is False
    (w,) = body["partitions"]
    assert w == {"source": "sensors", "topic": "sensor-readings", "partition": p, "assigned_here": False}
    assert f"partition {p} of sensor-readings" in body["message"] and "does not own" in body["message"]
    ex2, _, _ = _explorer()  # owns every partition: says it has no events instead
    status, body = ex2.stream_detail(sid)
    assert status == 404 and body["owned"] is True and "no buffered events" in body["message"]


def test_evicted_stream_detail_and_listing() -> None:
    ex, store, slab = _explorer()
    slab.evict(["s2"])
    store.sync(slab, force=True)  # type: ignore[arg-type]
    status, d = ex.stream_detail("s2")
    assert status == 200 and d["state"] == "evicted" and d["points"] is None
    row = next(r for r in ex.list_streams({})[1]["streams"] if r["stream"] == "s2")
    assert row["state"] == "evicted"


def test_bad_and_hostile_ids_in_handlers() -> None:
    ex, _, _ = _explorer()
    assert ex.stream_detail("x" * (MAX_ID_CHARS + 1))[0] == 400
    assert ex.stream_detail("")[0] == 400
    for sid in ["../../etc/passwd", "<script>alert(1)</script>", "café ✓"]:
        status, d = ex.stream_detail(sid)
        assert status == 200 and d["stream"] == sid
    for sid in ["a/b/../c", "\x00\n\"'", "%2e%2e%2f", "\ud800", "🙂" * 300]:
        status, d = ex.stream_detail(sid)
        assert status == 404 and d["stream"] == sid
        orjson.dumps(d, option=orjson.OPT_SERIALIZE_NUMPY) if sid != "\ud800" else None


def test_engine_not_started_is_503() -> None:
    ex = Explorer({}, Settings())
    assert ex.list_streams({})[0] == 503 and ex.stream_detail("a")[0] == 503


# ---------------------------------------------------------------------------------------------
# the API over HTTP (the same routes as the worker's Faust web server)


@pytest.fixture
async def client() -> Any:
    ex, _, _ = _explorer()
    async with TestClient(TestServer(aiohttp_app(ex))) as c:
        yield c


async def test_http_streams_and_detail(client: Any) -> None:
    r = await client.get("/api/streams", params={"sort": "score"})
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Cache-Control"] == "no-store"
    body = await r.json()
    assert body["streams"][0]["stream"] == "s3"
    r = await client.get("/api/streams/s3")
    assert r.status == 200 and (await r.json())["stream"] == "s3"


async def test_http_unknown_id_is_json_404(client: Any) -> None:
    r = await client.get("/api/streams/nope-1")
    assert r.status == 404 and r.headers["Content-Type"].startswith("application/json")
    body = await r.json()
    assert body["partitions"][0]["partition"] == partition_of("nope-1", 8)


@pytest.mark.parametrize(
    ("path", "expect_id", "status"),
    [
        ("/api/streams/..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", 200),  # a real (hostile) stream id
        ("/api/streams/a%2Fb", "a/b", 404),
        ("/api/streams/a/b", "a/b", 404),
        ("/api/streams/caf%C3%A9%20%E2%9C%93", "café ✓", 200),
        ("/api/streams/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "<script>alert(1)</script>", 200),
        ("/api/streams/%25", "%", 404),
        ("/api/streams/%2525", "%25", 404),
        ("/api/streams/a%00b", "a\x00b", 404),
        ("/api/streams/_?id=..", "..", 404),  # ids a path segment cannot carry
    ],
)
async def test_http_hostile_ids(client: Any, path: str, expect_id: str, status: int) -> None:
    r = await client.get(URL(path, encoded=True))
    assert r.status == status
    text = await r.text()
    body = orjson.loads(text)
    assert body["stream"] == expect_id
    assert "<script>" not in text or body["stream"] == "<script>alert(1)</script>"
    assert r.headers["Content-Type"].startswith("application/json")  # never rendered as HTML


async def test_http_long_id_and_traversal(client: Any) -> None:
    r = await client.get("/api/streams/" + "x" * (MAX_ID_CHARS + 1))
    assert r.status == 400 and (await r.json())["error"] == "bad_request"
    r = await client.get("/api/streams/" + "y" * 20_000)  # beyond the server's request-line limit
    assert r.status in (400, 414)
    for raw in ("/api/streams/../../etc/passwd", "/api/streams/%2E%2E/%2E%2E/etc/passwd", "/explorer/../../etc/passwd"):
        r = await client.get(URL(raw, encoded=True))
        text = await r.text()
        assert "root:" not in text and r.status in (200, 404)


async def test_http_page(client: Any) -> None:
    r = await client.get("/explorer")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    html = await r.text()
    assert 'id="streams"' in html and 'id="chart"' in html and "api/streams" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # no external resources
    assert "https://" not in html and "innerHTML" not in html


def test_faust_app_registers_the_routes() -> None:
    from stream.app import create_app

    app = create_app(Settings(broker_url="kafka://127.0.0.1:9"))
    paths = set(app.web.views)
    assert {"/metrics", "/explorer", "/api/streams", "/api/streams/{stream_id:.+}"} <= paths
