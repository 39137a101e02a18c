"""Explorer query API: :class:`Explorer` answers the JSON routes from the running engine's ring stores.

What the routes (:mod:`stream.explorer.routes`) answer:

* ``GET /explorer`` — the page (``static/explorer.html``: plain HTML/JS, no external resources);
* ``GET /api/streams?sort=peak|score|last_ts|events|id|alert|state&order=desc|asc&q=&source=&limit=``
  — the streams this worker owns. ``score`` is the latest anomaly score, ``peak`` the highest one
  among the buffered points (the default sort: the scorer suppresses scores for a while after an
  onset, so a stream in the middle of an anomaly often has a latest score of 0);
* ``GET /api/streams/{id}?source=`` — one stream's recent points, model, slot and alerts (the id
  percent-encoded as one path segment; ``?id=`` overrides it for ids a path cannot carry, ``.`` and
  ``..``). A stream this worker does not own is a 404 naming the partition its key hashes to
  (Kafka's default partitioner: murmur2 of the key).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..producer import partition_of
from .band import BAND_K, BAND_WINDOW
from .store import RingStore

if TYPE_CHECKING:
    from models.state import StateSlab

MAX_ID_CHARS = 1024  # longest stream id the API looks up (longer requests get a 400)
MAX_LIMIT = 5000  # most rows one /api/streams answer holds

_STATIC = Path(__file__).with_name("static") / "explorer.html"
_SORT_KEYS = ("peak", "score", "last_ts", "events", "id", "alert", "state", "source")


@dataclass
class _Source:
    name: str
    topic: str
    store: RingStore | None
    slab: StateSlab | None
    model_id: str
    warmup: int
    parked: Container[str]


class Explorer:
    """The JSON API over the running engine's pipelines; each handler returns ``(status, body)``.

    ``registry`` is the app's ``{"engine": BatchEngine}`` (filled once the worker started); the
    handlers read ``engine.pipelines[source].explorer`` / ``.runner`` and ``engine.consumer``.

    Example:
        >>> from stream.settings import Settings
        >>> Explorer({}, Settings()).list_streams({})  # before the worker's engine started
        (503, {'error': 'starting', 'message': "the worker's engine is not running yet", 'streams': []})
    """

    def __init__(self, registry: Mapping[str, Any], settings: Any, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.settings = settings
        self.clock = clock

    # -- engine access ------------------------------------------------------------------
    def _sources(self) -> list[_Source]:
        engine = self.registry.get("engine")
        if engine is None:
            return []
        out = []
        for name, pipe in engine.pipelines.items():
            runner = getattr(pipe, "runner", None)
            out.append(
                _Source(
                    name,
                    self.settings.topic(name),
                    getattr(pipe, "explorer", None),
                    getattr(runner, "slab", None),
                    str(getattr(pipe, "model_id", "unnamed")),
                    int(getattr(getattr(runner, "scoring", None), "warmup", 0)),
                    getattr(pipe, "parked", None) or {},
                )
            )
        return out

    def _partitions(self, topic: str) -> tuple[int, set[int] | None]:
        """(partition count of ``topic``, partitions assigned here or None when unknown)."""
        engine = self.registry.get("engine")
        consumer = getattr(engine, "consumer", None)
        n = int(self.settings.partitions)
        assigned: set[int] | None = None
        if consumer is not None:
            try:
                parts = consumer.partitions_for_topic(topic)
                if parts:
                    n = len(parts)
                assigned = {tp.partition for tp in consumer.assignment() if tp.topic == topic}
            except Exception:
                assigned = None
        return n, assigned

    @staticmethod
    def _state(src: _Source, sid: str) -> tuple[str, int]:
        slab = src.slab
        k = slab.slot(sid) if slab is not None else None
        if slab is None or k is None:
            return ("parked" if sid in src.parked else "evicted"), 0
        steps = int(slab.steps[k])
        return ("warming_up" if steps < src.warmup else "active"), steps

    # -- handlers -----------------------------------------------------------------------
    def list_streams(self, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """``/api/streams``: the streams this worker owns, sorted, filtered, limited."""
        sort = query.get("sort", "peak")
        if sort not in _SORT_KEYS:
            return 400, {"error": "bad_request", "message": f"sort must be one of {', '.join(_SORT_KEYS)}"}
        order = query.get("order", "asc" if sort in ("id", "source") else "desc")
        if order not in ("asc", "desc"):
            return 400, {"error": "bad_request", "message": "order must be asc or desc"}
        try:
            limit = min(MAX_LIMIT, max(0, int(query.get("limit", "200"))))
        except ValueError:
            return 400, {"error": "bad_request", "message": "limit must be an integer"}
        q = (query.get("q") or "")[:MAX_ID_CHARS].casefold()
        want_source = query.get("source") or None
        include_all = query.get("all") in ("1", "true")
        sources = self._sources()
        if not sources and self.registry.get("engine") is None:
            return 503, {"error": "starting", "message": "the worker's engine is not running yet", "streams": []}

        recs: list[tuple[_Source, str, int, float, float, float, int, bool]] = []
        evicted: list[dict[str, Any]] = []
        for src in sources:
            if src.store is None or (want_source and src.name != want_source):
                continue
            store = src.store
            n_parts, assigned = self._partitions(src.topic)
            cols = store.columns()
            ids: list[str] = cols["id"]  # type: ignore[assignment]
            rows: np.ndarray = cols["row"]  # type: ignore[assignment]
            for j, sid in enumerate(ids):
                if q and q not in sid.casefold():
                    continue
                r = int(rows[j])
                if assigned is not None and not include_all:
                    p = int(store.part[r])
                    if p < 0:
                        p = store.part[r] = partition_of(sid, n_parts)
                    if p not in assigned:
                        continue
                recs.append(
                    (
                        src,
                        sid,
                        r,
                        float(cols["score"][j]),  # type: ignore[arg-type]
                        float(cols["peak"][j]),  # type: ignore[arg-type]
                        float(cols["last_ts"][j]),  # type: ignore[arg-type]
                        int(cols["events"][j]),  # type: ignore[arg-type]
                        bool(cols["alert"][j]),  # type: ignore[arg-type]
                    )
                )
            for sid, t in store.tombstones.items():
                if (q and q not in sid.casefold()) or sid in store:
                    continue
                if assigned is not None and not include_all:
                    if "partition" not in t:
                        t["partition"] = partition_of(sid, n_parts)
                    if t["partition"] not in assigned:
                        continue
                evicted.append({"stream": sid, "source": src.name, **{k: v for k, v in t.items() if k != "alerts"}})

        items = [
            {
                "stream": sid,
                "source": src.name,
                "score": score,
                "peak": peak,
                "alert_open": alert,
                "last_ts": None if np.isnan(last_ts) else last_ts,
                "events": events,
                "rejected": int(src.store.rejected[r]) if src.store is not None else 0,
                "state": self._state(src, sid)[0],
            }
            for src, sid, r, score, peak, last_ts, events, alert in recs
        ]
        for t in evicted:
            t.pop("evicted_at", None)
            t.pop("partition", None)
            items.append({**t, "peak": t.get("peak", t["score"])})
        state_rank = {"active": 0, "warming_up": 1, "parked": 2, "evicted": 3}

        def key(d: dict[str, Any]) -> Any:
            if sort == "id":
                return d["stream"]
            if sort == "source":
                return (d["source"], d["stream"])
            if sort == "state":
                return state_rank.get(d["state"], 3)
            if sort == "alert":
                return (d["alert_open"], d["peak"])
            if sort == "last_ts":
                return d["last_ts"] if d["last_ts"] is not None else -np.inf
            return d[sort]

        items.sort(key=key, reverse=order == "desc")
        return 200, {
            "worker": {"app_id": self.settings.app_id, "now": self.clock()},
            "sources": [
                {
                    "source": s.name,
                    "topic": s.topic,
                    "model": s.model_id,
                    "buffered": len(s.store) if s.store is not None else 0,
                    "points": s.store.points if s.store is not None else 0,
                    "threshold": s.store.threshold if s.store is not None else None,
                }
                for s in sources
            ],
            "enabled": any(s.store is not None for s in sources),
            "total": len(items),
            "streams": items[:limit],
        }

    def stream_detail(self, stream_id: str, query: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """``/api/streams/{id}``: recent points, model, slot and alerts of one stream."""
        query = query or {}
        if not stream_id or len(stream_id) > MAX_ID_CHARS:
            return 400, {
                "error": "bad_request",
                "message": f"a stream id has 1 to {MAX_ID_CHARS} characters; got {len(stream_id)}",
            }
        want_source = query.get("source") or None
        sources = self._sources()
        if not sources and self.registry.get("engine") is None:
            return 503, {"error": "starting", "message": "the worker's engine is not running yet"}
        for src in sources:
            if want_source and src.name != want_source:
                continue
            store = src.store
            if store is None:
                continue
            if stream_id in store:
                return 200, self._detail(src, store, stream_id)
            tomb = store.tombstones.get(stream_id)
            if tomb is not None:
                return 200, {
                    "stream": stream_id,
                    "source": src.name,
                    "model": src.model_id,
                    "threshold": store.threshold,
                    "features": store.n_features,
                    **{k: v for k, v in tomb.items() if k != "evicted_at"},
                    "evicted_s_ago": self.clock() - float(tomb["evicted_at"]),
                    "slot": None,
                    "prediction": None,
                    "points": None,
                    "message": "the stream was evicted from the state slab; its points were dropped",
                }
        where = []
        owned_any = False
        for src in sources:
            if want_source and src.name != want_source:
                continue
            n, assigned = self._partitions(src.topic)
            p = partition_of(stream_id, n)
            here = None if assigned is None else p in assigned
            owned_any = owned_any or bool(here)
            where.append({"source": src.name, "topic": src.topic, "partition": p, "assigned_here": here})
        if owned_any:
            msg = (
                "this worker owns the partition the stream id hashes to but has no buffered events for it "
                "(never seen, rejected, or dropped from the explorer buffer)"
            )
        else:
            msg = (
                "this worker does not own that stream: its key hashes (murmur2) to "
                + ", ".join(f"partition {w['partition']} of {w['topic']}" for w in where)
                + ", assigned to another worker"
            )
        if not any(s.store is not None for s in sources):
            msg = "the explorer is disabled on this worker (SEQSTREAM_EXPLORER_POINTS=0)"
        return 404, {
            "error": "unknown_stream",
            "stream": stream_id,
            "owned": owned_any,
            "partitions": where,
            "message": msg,
        }

    def _detail(self, src: _Source, store: RingStore, sid: str) -> dict[str, Any]:
        r = store._row_of[sid]
        state, steps = self._state(src, sid)
        summ = store._summary(r)
        n_parts, assigned = self._partitions(src.topic)
        p = partition_of(sid, n_parts)
        pred = store.pred[r]
        return {
            "stream": sid,
            "source": src.name,
            "topic": src.topic,
            "partition": p,
            "owned": None if assigned is None else p in assigned,
            "model": src.model_id,
            "threshold": store.threshold,
            "features": store.n_features,
            "state": state,
            **summ,
            "slot": {
                "index": src.slab.slot(sid) if src.slab is not None else None,
                "steps": steps,
                "warmup": src.warmup,
                "age_s": self.clock() - float(store.created[r]),
            },
            "prediction": None if not np.isfinite(pred).all() else pred.tolist(),
            "points": store.points_of(sid),
            "band": {"k": BAND_K, "window": BAND_WINDOW},
        }

    @staticmethod
    def page_html() -> str:
        return _STATIC.read_text(encoding="utf-8")
