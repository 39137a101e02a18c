"""Explorer ring buffers: :class:`RingStore` (each stream's recent points) and its factory per source pipeline.

Prometheus must never carry stream ids as labels, so the fleet view cannot answer "show me that
stream". The explorer can: each source's :class:`RingStore` keeps the last ``N`` accepted events
of every stream it has seen (event time, input values, what the model expected, anomaly score,
anomaly flag, alert transitions) plus the latest forecast and the last alerts with their
explanations. It is fed once per micro-batch by :class:`~stream.pipeline.SourcePipeline` with
vectorised numpy work (one dict lookup per event to find the stream's row, like the state slab).

Memory is bounded: one preallocated row per stream (growing by doubling up to
``SEQSTREAM_EXPLORER_STREAMS`` rows per source), least recently updated rows reused beyond that,
and a stream evicted from the state slab loses its points at once (a small summary stays so the
page can say it was evicted). ``SEQSTREAM_EXPLORER_POINTS=0`` turns the whole thing off.

``bench/explorer_bench.py`` measures the feeding cost per event and the memory per stream.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Container, Iterable, Sequence
from itertools import compress, filterfalse, repeat
from typing import TYPE_CHECKING, Any

import numpy as np

from models.state import occurrences

from .band import band, nan_none

if TYPE_CHECKING:
    from models import Results, Runner
    from models.state import StateSlab

ALERTS_PER_STREAM = 8  # last alert transitions kept per stream
_SYNC_EVERY_S = 2.0  # at most this long between checks that buffered streams are still in the slab

_ANOMALY, _OPEN, _RESOLVED = 1, 2, 4  # bits of the per-point flags (record() relies on _ANOMALY == 1)


def _consume(it: Iterable[Any]) -> None:
    """Run an iterator of side effects at C speed (``deque(it, maxlen=0)``)."""
    deque(it, maxlen=0)


def explain(state: str, expected: Sequence[float], actual: Sequence[float], score: float, threshold: float) -> str:
    """The same explanation text as an ``anomaly-alerts`` record."""
    exp = ", ".join(f"{v:.4g}" for v in expected)
    act = ", ".join(f"{v:.4g}" for v in actual)
    return f"{state}: expected [{exp}], got [{act}] (score {score:.3f}, threshold {threshold:.3f})"


class RingStore:
    """The last ``points`` accepted events of up to ``max_streams`` streams of one source.

    All points live in preallocated arrays ``[rows, points(, F)]``; a stream is a row, written
    round-robin. Rows grow by doubling up to ``max_streams``; beyond that the least recently
    updated stream's row is reused (streams with an open alert last).

    Example:
        >>> from types import SimpleNamespace as R
        >>> store = RingStore("sensors", n_features=1, points=4, max_streams=2)
        >>> res = R(accepted=np.array([True, True, True]), prediction=np.zeros((3, 1), np.float32),
        ...         expected=np.zeros((3, 1), np.float32), score=np.array([0.1, 0.2, 0.3], np.float32),
        ...         anomaly=np.zeros(3, bool), transition=np.zeros(3, np.int8), alerts=[], reason=[None] * 3)
        >>> store.record(["a", "b", "a"], np.array([1.0, 1.0, 2.0]), np.ones((3, 1), np.float32), res)
        >>> store.points_of("a")["ts"], len(store)
        ([1.0, 2.0], 2)
    """

    def __init__(
        self,
        source: str,
        *,
        n_features: int,
        points: int = 256,
        max_streams: int = 4096,
        threshold: float = 0.5,
        warmup: int = 0,
        model_id: str = "unnamed",
        initial_rows: int = 64,
    ) -> None:
        if points < 1 or max_streams < 1:
            raise ValueError("points and max_streams must be >= 1")
        self.source = source
        self.n_features = n_features
        self.points = points
        self.max_streams = max_streams
        self.threshold = threshold
        self.warmup = warmup
        self.model_id = model_id
        self._tick = 0
        self._slab_seen: tuple[int, int, int] = (-1, -1, -1)
        self._last_sync = 0.0
        self.dropped = 0  # rows reused for other streams (LRU beyond max_streams)
        self.tombstones: OrderedDict[str, dict[str, Any]] = OrderedDict()  # evicted streams' summaries
        self._alloc(min(initial_rows, max_streams))

    # -- layout -------------------------------------------------------------------------
    def _alloc(self, rows: int) -> None:
        n, f = self.points, self.n_features
        self.ts = np.zeros((rows, n), np.float64)  # [R, N] event times
        self.x = np.zeros((rows, n, f), np.float32)  # [R, N, F] input values
        self.exp = np.zeros((rows, n, f), np.float32)  # [R, N, F] what the model expected for them
        self.score = np.zeros((rows, n), np.float32)  # [R, N]
        self.flags = np.zeros((rows, n), np.uint8)  # [R, N] anomaly/open/resolved bits
        self.pred = np.full((rows, f), np.nan, np.float32)  # [R, F] latest forecast of the next value
        self.count = np.zeros(rows, np.int64)  # [R] points written (ring position = count % N)
        self.rejected = np.zeros(rows, np.int64)  # [R] rejected events (late / non-finite)
        self.open = np.zeros(rows, bool)  # [R] alert open
        self.last_used = np.zeros(rows, np.int64)  # [R] batch tick of the last update (LRU)
        self.created = np.zeros(rows, np.float64)  # [R] wall time the row was taken
        self.part = np.full(rows, -1, np.int64)  # [R] input partition (lazy; -1 unknown)
        self._ids = np.full(rows, None, object)  # [R] stream id of each row (None: free)
        self.used = np.zeros(rows, bool)  # [R] the row holds a stream (mirrors ``_ids[r] is not None``)
        self._alerts = np.full(rows, None, object)  # [R] deque of the last alert transitions, or None
        self._row_of: dict[str, int] = {}
        self._free = list(range(rows - 1, -1, -1))

    @property
    def rows(self) -> int:
        return len(self.count)

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._row_of

    def stream_ids(self) -> list[str]:
        return list(self._row_of)

    @property
    def nbytes(self) -> int:
        """Bytes of the preallocated arrays (all rows, used or not)."""
        arrays = (self.ts, self.x, self.exp, self.score, self.flags, self.pred, self.count)
        more = (self.rejected, self.open, self.last_used, self.created, self.part, self.used)
        return sum(a.nbytes for a in (*arrays, *more))

    @property
    def bytes_per_stream(self) -> int:
        """Array bytes of one row (points + per-stream scalars), excluding the id string and alerts."""
        return self.nbytes // max(1, self.rows)

    def _grow(self, rows: int) -> None:
        old = self.rows
        grow = rows - old

        def ext(a: np.ndarray, fill: float | None = 0) -> np.ndarray:
            return np.concatenate([a, np.full((grow, *a.shape[1:]), fill, a.dtype)])

        self.ts, self.x, self.exp = ext(self.ts), ext(self.x), ext(self.exp)
        self.score, self.flags, self.pred = ext(self.score), ext(self.flags), ext(self.pred, np.nan)
        self.count, self.rejected, self.open = ext(self.count), ext(self.rejected), ext(self.open)
        self.last_used, self.created, self.part = ext(self.last_used), ext(self.created), ext(self.part, -1)
        self.used, self._ids, self._alerts = ext(self.used), ext(self._ids, None), ext(self._alerts, None)
        self._free = list(range(rows - 1, old - 1, -1)) + self._free

    def _take_rows(self, new_ids: list[str]) -> list[int]:
        """Rows for streams not buffered yet (growing, then reusing least recently updated rows).

        Returns the rows given to ``new_ids[:k]``, in order (fewer than ``new_ids`` when a batch has
        more distinct new streams than rows). Vectorised: the rows handed out, their order (the free
        list's ``pop`` order) and the victims are exactly those of the per-stream loop this replaced
        (``tests/test_explorer_equivalence.py``).
        """
        need = len(new_ids) - len(self._free)
        if need > 0 and self.rows < self.max_streams:
            target = self.rows
            while target < len(self._row_of) + len(new_ids) and target < self.max_streams:
                target *= 2
            self._grow(min(target, self.max_streams))
            need = len(new_ids) - len(self._free)
        if need > 0:
            live = ((self.last_used < self._tick) & self.used).nonzero()[0]  # (np.flatnonzero, minus a wrapper)
            calm = live[~self.open[live]]  # streams with an open alert are the last to lose their points
            if len(calm) >= need:
                live = calm
            k = min(need, len(live))
            if k:
                victims = live[self.last_used[live].argpartition(k - 1)[:k]]  # what np.argpartition calls
                self._release(victims)
                self.dropped += k
        free = self._free
        k = min(len(new_ids), len(free))  # more distinct new streams than rows: the rest are not buffered
        if not k:
            return []
        taken = free[: -k - 1 : -1]  # what k calls of free.pop() hand out, in that order
        del free[-k:]
        sids = new_ids if k == len(new_ids) else new_ids[:k]
        self._row_of.update(zip(sids, taken))
        r = np.array(taken, np.int64)
        self._ids[r] = np.array(sids, object)
        self.used[r] = True
        self.count[r] = 0
        self.rejected[r] = 0
        self.open[r] = False
        self.pred[r] = np.nan
        self.created[r] = time.time()
        self.part[r] = -1
        # a free row's alert history is None already (``_release``); only returning streams bring one back
        tombs = self.tombstones
        if tombs:
            alerts = self._alerts
            for sid, row in zip(sids, taken):
                tomb = tombs.pop(sid, None)
                if tomb and tomb["alerts"]:
                    alerts[row] = deque(tomb["alerts"], ALERTS_PER_STREAM)
        return taken

    def _release(self, rows: np.ndarray) -> None:
        """Free buffered rows (distinct, in use) without a summary; they go to the free list in this order."""
        _consume(map(self._row_of.pop, self._ids[rows].tolist()))
        self._free_rows(rows)

    def _free_rows(self, rows: np.ndarray) -> None:
        """Clear rows no stream id maps to any more; they go to the free list in this order."""
        self._ids[rows] = None
        self._alerts[rows] = None
        self.used[rows] = False
        self._free.extend(rows.tolist())

    def _drop(self, stream_ids: Sequence[str], *, evicted: bool) -> None:
        """Free rows; an evicted stream leaves a small summary (bounded like the rows)."""
        row_of = self._row_of
        found = [(sid, r) for sid in stream_ids if (r := row_of.pop(sid, None)) is not None]
        if not found:
            return
        rows = [r for _, r in found]
        if evicted:
            tombs = self.tombstones
            for (sid, _), summary in zip(found, self._summaries(rows)):
                tombs[sid] = {**summary, "state": "evicted", "evicted_at": time.time()}
                tombs.move_to_end(sid)
                while len(tombs) > self.max_streams:
                    tombs.popitem(last=False)
        self._free_rows(np.asarray(rows, np.int64))

    # -- feeding ------------------------------------------------------------------------
    def sync(self, slab: StateSlab, parked: Container[str] | None = None, *, force: bool = False) -> int:
        """Drop the points of buffered streams whose state is gone (not in the slab nor parked).

        Checked when the slab's eviction count or layout changed, and at least every few seconds
        (state can also leave by partition moves); returns how many streams were dropped.
        """
        key = (id(slab.steps), slab.evictions, slab.capacity)
        now = time.monotonic()
        if not force and key == self._slab_seen and now - self._last_sync < _SYNC_EVERY_S:
            return 0
        self._slab_seen, self._last_sync = key, now
        # membership straight from the slab's id -> slot mapping (a C-level scan of the rows)
        in_slab = slab.slot_of.__contains__
        gone = list(filterfalse(in_slab, self._row_of))
        if parked is not None and gone:
            gone = [s for s in gone if s not in parked]
        self._drop(gone, evicted=True)
        return len(gone)

    def record(
        self,
        stream_ids: Sequence[str],
        ts: np.ndarray,
        x: np.ndarray,
        res: Results,
        slab: StateSlab | None = None,
        parked: Container[str] | None = None,
    ) -> None:
        """Fold one ``Runner.process`` result (rows aligned with ``stream_ids``/``ts``/``x``) in.

        O(batch): one dict lookup per event, the rest whole-array numpy on the batch's rows. Work
        proportional to the number of rows happens only when rows must be reused (picking the LRU
        victims: numpy over the rows) and in :meth:`sync` after the slab evicted (a C-level scan).
        """
        if slab is not None:
            self.sync(slab, parked)
        self._tick += 1
        tick = self._tick
        row_of = self._row_of
        acc = np.asarray(res.accepted, bool)
        n = len(acc)
        if not n:
            return
        idx: np.ndarray | None = None  # accepted events' positions (None: all of them)
        ids: Sequence[str] = stream_ids
        if not acc.all():
            bad = np.flatnonzero(~acc).tolist()
            rej = np.fromiter(map(row_of.get, [stream_ids[i] for i in bad], repeat(-1)), np.int64, len(bad))
            np.add.at(self.rejected, rej[rej >= 0], 1)  # rejected events of buffered streams
            idx = np.flatnonzero(acc)
            if not len(idx):
                return
            ids = [stream_ids[i] for i in idx.tolist()]
            n = len(idx)
        rows = np.fromiter(map(row_of.get, ids, repeat(-1)), np.int64, n)
        missing = rows < 0
        if missing.any():
            self.last_used[rows[~missing]] = tick  # protect this batch's streams from reuse
            mask = missing.tolist()
            m = mask.count(True)
            new = list(dict.fromkeys(compress(ids, mask)))
            taken = self._take_rows(new)
            if len(taken) == m:  # every missing event is a distinct new stream, and each got a row
                rows[missing] = taken
            else:
                rows[missing] = np.fromiter(map(row_of.get, compress(ids, mask), repeat(-1)), np.int64, m)
            keep = rows >= 0
            if not keep.all():
                idx = np.flatnonzero(keep) if idx is None else idx[keep]
                rows = rows[keep]
                n = len(rows)
        # a stream twice in the batch? write each position's index into last_used (set to the tick
        # below anyway) and read it back: a repeated row reads another position's index
        at = np.arange(n)
        lu = self.last_used
        lu[rows] = at
        repeats = bool((lu[rows] != at).any())
        lu[rows] = tick
        count, points = self.count, self.points
        # writes go through flat views (the arrays are allocated here, C-contiguous, so reshape is a
        # view): [R, N] -> [R * N] with index row * N + ring position, one index array instead of two
        wi: np.ndarray | slice
        if not repeats:
            c = count[rows]
            flat = rows * points + c % points
            count[rows] = c + 1
            wi = slice(None) if idx is None else idx  # slice: every event, in order (no copies)
            last_r, last_i = rows, wi
        else:  # a stream several times in the batch: consecutive ring positions, keep the last N
            if idx is None:
                idx = at
            rank, cnt = occurrences(rows)
            last = rank == cnt - 1
            sel = rank >= cnt - points
            flat = (rows * points + (count[rows] + rank) % points)[sel]
            wi = idx[sel]
            last_r, last_i = rows[last], idx[last]
            count[last_r] += cnt[last]
        f = self.n_features
        self.ts.reshape(-1)[flat] = ts[wi]
        self.x.reshape(-1, f)[flat] = x[wi]
        self.exp.reshape(-1, f)[flat] = res.expected[wi]
        self.score.reshape(-1)[flat] = res.score[wi]
        flags = res.anomaly[wi].astype(np.uint8)  # the _ANOMALY bit (1)
        tr = res.transition[wi]
        if tr.any():
            flags = flags + (tr > 0).astype(np.uint8) * _OPEN + (tr < 0) * _RESOLVED
        self.flags.reshape(-1)[flat] = flags
        self.pred[last_r] = res.prediction[last_i]
        for a in res.alerts:
            ra = row_of.get(a.stream_id)
            if ra is None:
                continue
            self.open[ra] = a.state == "open"
            q = self._alerts[ra]
            if q is None:
                q = self._alerts[ra] = deque(maxlen=ALERTS_PER_STREAM)
            q.append(
                {
                    "ts": a.ts,
                    "state": a.state,
                    "score": a.score,
                    "threshold": self.threshold,
                    "expected": a.expected,
                    "actual": a.actual,
                    "explanation": explain(a.state, a.expected, a.actual, a.score, self.threshold),
                }
            )

    # -- reading ------------------------------------------------------------------------
    def _order(self, r: int) -> np.ndarray:
        """Ring positions of row ``r``, oldest first."""
        c, n = int(self.count[r]), self.points
        if c <= n:
            return np.arange(c)
        return (np.arange(n) + c) % n

    def _summary(self, r: int) -> dict[str, Any]:
        c = int(self.count[r])
        last = (c - 1) % self.points
        q = self._alerts[r]
        return {
            "score": float(self.score[r, last]) if c else 0.0,
            "peak": float(self.score[r].max()) if c else 0.0,
            "last_ts": float(self.ts[r, last]) if c else None,
            "events": c,
            "rejected": int(self.rejected[r]),
            "alert_open": bool(self.open[r]),
            "alerts": list(q) if q else [],
        }

    def _summaries(self, rows: list[int]) -> list[dict[str, Any]]:
        """``[self._summary(r) for r in rows]`` (the same values and types), with whole-array numpy."""
        r = np.asarray(rows, np.int64)
        c = self.count[r]
        last = (c - 1) % self.points
        has = (c > 0).tolist()
        score = self.score[r, last].tolist()
        peak = self.score[r].max(axis=1).tolist()
        last_ts = self.ts[r, last].tolist()
        return [
            {
                "score": score[i] if has[i] else 0.0,
                "peak": peak[i] if has[i] else 0.0,
                "last_ts": last_ts[i] if has[i] else None,
                "events": events,
                "rejected": rejected,
                "alert_open": alert,
                "alerts": list(q) if q else [],
            }
            for i, (events, rejected, alert, q) in enumerate(
                zip(c.tolist(), self.rejected[r].tolist(), self.open[r].tolist(), self._alerts[r].tolist())
            )
        ]

    def columns(self) -> dict[str, np.ndarray | list[str]]:
        """Per buffered stream: id, row, last score, peak score over the buffer, last event time, events, alert."""
        rows = np.fromiter(self._row_of.values(), np.int64, len(self._row_of))
        c = self.count[rows]
        last = np.maximum(c - 1, 0) % self.points
        return {
            "id": list(self._row_of),
            "row": rows,
            "score": np.where(c > 0, self.score[rows, last], 0.0),
            "peak": self.score[rows].max(axis=1) if len(rows) else np.zeros(0, np.float32),
            "last_ts": np.where(c > 0, self.ts[rows, last], np.nan),
            "events": c,
            "alert": self.open[rows],
        }

    def points_of(self, stream_id: str) -> dict[str, Any]:
        """The buffered points of one stream, oldest first (JSON-ready lists; NaN -> None)."""
        r = self._row_of[stream_id]
        o = self._order(r)
        x, e = self.x[r, o], self.exp[r, o]  # [n, F]
        flags = self.flags[r, o]
        return {
            "ts": self.ts[r, o].tolist(),
            "values": nan_none(x),
            "expected": nan_none(e),
            "band": nan_none(band(x, e)),
            "score": self.score[r, o].tolist(),
            "anomaly": ((flags & _ANOMALY) > 0).tolist(),
            "transition": np.where(flags & _OPEN, 1, np.where(flags & _RESOLVED, -1, 0)).tolist(),
        }


def ring_store_for(source: str, runner: Runner, settings: Any) -> RingStore | None:
    """A source pipeline's store per ``SEQSTREAM_EXPLORER_POINTS``/``_STREAMS`` (None when off: no points, or
    ``SEQSTREAM_EXPLORER=off``, which buffers nothing it would not serve)."""
    points = int(getattr(settings, "explorer_points", 0))
    if points <= 0 or not getattr(settings, "explorer", True):
        return None
    return RingStore(
        source,
        n_features=runner.n_features,
        points=points,
        max_streams=int(getattr(settings, "explorer_streams", 4096)),
        threshold=float(runner.scoring.open_threshold),
        warmup=int(runner.scoring.warmup),
        model_id=runner.model_id,
    )
