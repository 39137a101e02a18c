"""The vectorised explorer feed (``RingStore.record``/``sync``) leaves exactly the state the per-event
implementation it replaced left (kept below verbatim as ``_Reference``), on random batches with
repeated streams, rejected rows, alerts, row reuse beyond ``max_streams``, growth, slab evictions,
parked streams and returning (tombstoned) streams."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Container, Sequence
from itertools import repeat
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from models import Alert
from models.state import occurrences
from stream.explorer.store import (
    _ANOMALY,
    _OPEN,
    _RESOLVED,
    _SYNC_EVERY_S,
    ALERTS_PER_STREAM,
    RingStore,
    explain,
)


class _Reference(RingStore):
    """``RingStore`` with the feeding methods of commit 71cc311 (per-stream loops), unchanged."""

    def _take_rows(self, new_ids: list[str]) -> None:
        """Rows for streams not buffered yet (growing, then reusing least recently updated rows)."""
        need = len(new_ids) - len(self._free)
        if need > 0 and self.rows < self.max_streams:
            target = self.rows
            while target < len(self._row_of) + len(new_ids) and target < self.max_streams:
                target *= 2
            self._grow(min(target, self.max_streams))
            need = len(new_ids) - len(self._free)
        if need > 0:
            live = np.flatnonzero((self.last_used < self._tick) & self.used)
            calm = live[~self.open[live]]  # streams with an open alert are the last to lose their points
            if len(calm) >= need:
                live = calm
            k = min(need, len(live))
            if k:
                victims = live[np.argpartition(self.last_used[live], k - 1)[:k]]
                self._drop([self._ids[v] for v in victims.tolist()], evicted=False)  # type: ignore[misc]
                self.dropped += k
        now = time.time()
        for sid in new_ids:
            if not self._free:
                break  # more distinct new streams in one batch than max_streams: the rest are not buffered
            r = self._free.pop()
            self._row_of[sid] = r
            self._ids[r] = sid
            self.used[r] = True
            self.count[r] = self.rejected[r] = 0
            self.open[r] = False
            self.pred[r] = np.nan
            self.created[r] = now
            self.part[r] = -1
            tomb = self.tombstones.pop(sid, None)
            self._alerts[r] = deque(tomb["alerts"], ALERTS_PER_STREAM) if tomb and tomb["alerts"] else None

    def _drop(self, stream_ids: Sequence[str], *, evicted: bool) -> None:
        """Free rows; an evicted stream leaves a small summary (bounded like the rows)."""
        for sid in stream_ids:
            r = self._row_of.pop(sid, None)
            if r is None:
                continue
            if evicted:
                self.tombstones[sid] = {**self._summary(r), "state": "evicted", "evicted_at": time.time()}
                self.tombstones.move_to_end(sid)
                while len(self.tombstones) > self.max_streams:
                    self.tombstones.popitem(last=False)
            self._ids[r] = None
            self.used[r] = False
            self._alerts[r] = None
            self._free.append(r)

    # -- feeding ------------------------------------------------------------------------
    def sync(self, slab: Any, parked: Container[str] | None = None, *, force: bool = False) -> int:
        """Drop the points of buffered streams whose state is gone (not in the slab nor parked).

        Checked when the slab's eviction count or layout changed, and at least every few seconds
        (state can also leave by partition moves); returns how many streams were dropped.
        """
        key = (id(slab.steps), slab.evictions, slab.capacity)
        now = time.monotonic()
        if not force and key == self._slab_seen and now - self._last_sync < _SYNC_EVERY_S:
            return 0
        self._slab_seen, self._last_sync = key, now
        gone = [s for s in self._row_of if s not in slab and (parked is None or s not in parked)]
        self._drop(gone, evicted=True)
        return len(gone)

    def record(
        self,
        stream_ids: Sequence[str],
        ts: np.ndarray,
        x: np.ndarray,
        res: Any,
        slab: Any | None = None,
        parked: Container[str] | None = None,
    ) -> None:
        """Fold one ``Runner.process`` result (rows aligned with ``stream_ids``/``ts``/``x``) in."""
        if slab is not None:
            self.sync(slab, parked)
        self._tick += 1
        acc = np.asarray(res.accepted, bool)
        if not acc.all():  # count rejected events of buffered streams (rare)
            for i in np.flatnonzero(~acc).tolist():
                r = self._row_of.get(stream_ids[i])
                if r is not None:
                    self.rejected[r] += 1
        idx = np.flatnonzero(acc)
        if not len(idx):
            return
        row_of = self._row_of
        ids = [stream_ids[i] for i in idx.tolist()] if len(idx) < len(stream_ids) else list(stream_ids)
        rows = np.fromiter(map(row_of.get, ids, repeat(-1)), np.int64, len(ids))
        missing = rows < 0
        if missing.any():
            self.last_used[rows[~missing]] = self._tick  # protect this batch's streams from reuse
            self._take_rows(list(dict.fromkeys(s for s, m in zip(ids, missing.tolist()) if m)))
            rows[missing] = [row_of.get(s, -1) for s, m in zip(ids, missing.tolist()) if m]
            keep = rows >= 0
            if not keep.all():
                rows, idx = rows[keep], idx[keep]
        per_row = np.bincount(rows, minlength=self.rows)  # [R] events of each row in this batch
        if len(rows) == 0 or per_row.max() <= 1:
            rank = np.zeros(len(rows), np.int64)
            last = np.ones(len(rows), bool)
            sel = slice(None)
        else:  # a stream several times in the batch: consecutive ring positions, keep the last N
            rank, cnt = occurrences(rows)
            last = rank == cnt - 1
            sel = rank >= cnt - self.points  # type: ignore[assignment]
        pos = (self.count[rows] + rank) % self.points
        wr, wp, wi = rows[sel], pos[sel], idx[sel]
        self.ts[wr, wp] = ts[wi]
        self.x[wr, wp] = x[wi]
        self.exp[wr, wp] = res.expected[wi]
        self.score[wr, wp] = res.score[wi]
        tr = res.transition[wi]
        self.flags[wr, wp] = (
            res.anomaly[wi].astype(np.uint8) * _ANOMALY + (tr > 0).astype(np.uint8) * _OPEN + (tr < 0) * _RESOLVED
        )
        self.count += per_row
        self.last_used[rows] = self._tick
        self.pred[rows[last]] = res.prediction[idx[last]]
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


class _Slab:
    """What ``sync`` reads of a StateSlab: ``slot_of``, the id -> slot dict as the real slab has it
    (``fast``), or only a container of the ids."""

    def __init__(self, fast: bool) -> None:
        self.ids: set[str] = set()
        self.slot_of: set[str] | dict[str, int] = self.ids  # a dict once ids are added, when fast
        self.steps = np.zeros(1, np.int64)
        self.evictions = 0
        self.capacity = 1
        self.fast = fast

    def __contains__(self, s: object) -> bool:
        return s in self.ids

    def add(self, ids: Sequence[str]) -> None:
        self.ids.update(ids)
        if self.fast:
            self.slot_of = dict.fromkeys(self.ids, 0)

    def evict(self, ids: Sequence[str]) -> None:
        for s in ids:
            self.ids.discard(s)
        self.evictions += len(ids)
        if self.fast:
            self.slot_of = dict.fromkeys(self.ids, 0)


def _state(store: RingStore) -> dict[str, Any]:
    """Everything a RingStore holds, comparable with ``==`` (arrays as bytes, NaN-safe)."""
    arrays = ("ts", "x", "exp", "score", "flags", "pred", "count", "rejected", "open", "last_used", "created", "part")
    out: dict[str, Any] = {a: (getattr(store, a).shape, getattr(store, a).tobytes()) for a in arrays}
    out["used"] = store.used.tobytes()
    out["ids"] = list(store._ids)
    out["alerts"] = [None if q is None else (q.maxlen, list(q)) for q in store._alerts]
    out["row_of"] = list(store._row_of.items())  # order matters (the API lists in this order)
    out["free"] = list(store._free)
    out["tombstones"] = repr(list(store.tombstones.items()))  # repr: 3 vs 3.0 vs np.float32(3.0) differ
    out["scalars"] = (store.dropped, store._tick, store._slab_seen, store._last_sync, len(store), store.rows)
    return out


def _batch(rng: np.random.Generator, pool: list[str], n: int, f: int, t0: float) -> tuple[list[str], Any, Any, Any]:
    ids = [pool[i] for i in rng.integers(0, len(pool), n).tolist()]
    if rng.random() < 0.3:  # a stream many times (beyond the ring length)
        ids[: n // 2] = [ids[0]] * (n // 2)
    ts = t0 + np.sort(rng.random(n))
    x = rng.standard_normal((n, f)).astype(np.float32)
    accepted = rng.random(n) > (0.0 if rng.random() < 0.5 else 0.2)
    if rng.random() < 0.05:
        accepted[:] = False
    tr = np.zeros(n, np.int8)
    alerts = []
    for i in np.flatnonzero(accepted & (rng.random(n) < 0.05)).tolist():
        state = "open" if rng.random() < 0.6 else "resolved"
        tr[i] = 1 if state == "open" else -1
        alerts.append(Alert(i, ids[i], float(ts[i]), state, float(rng.random()), [0.5] * f, x[i].tolist()))
    res = SimpleNamespace(
        accepted=accepted,
        prediction=rng.standard_normal((n, f)).astype(np.float32),
        expected=rng.standard_normal((n, f)).astype(np.float32),
        score=rng.random(n).astype(np.float32),
        anomaly=rng.random(n) < 0.1,
        transition=tr,
        alerts=alerts,
        reason=[None] * n,
    )
    return ids, ts, x, res


@pytest.mark.parametrize("seed", range(12))
def test_record_matches_the_per_event_implementation(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    clock = {"wall": 1.7e9, "mono": 100.0}
    monkeypatch.setattr(time, "time", lambda: clock["wall"])
    monkeypatch.setattr(time, "monotonic", lambda: clock["mono"])
    f = int(rng.integers(1, 4))
    kw = dict(
        n_features=f,
        points=int(rng.choice([1, 3, 8])),
        max_streams=int(rng.choice([4, 16, 64])),
        initial_rows=int(rng.choice([1, 2, 64])),
    )
    new, ref = RingStore("s", **kw), _Reference("s", **kw)
    pool = [f"s{i}" for i in range(int(rng.choice([8, 40, 200])))]
    use_slab = seed % 3 != 0
    slab = _Slab(fast=seed % 3 == 1)
    parked: set[str] = set()
    for b in range(60):
        clock["wall"] += 1.0
        clock["mono"] += float(rng.choice([0.1, 3.0]))
        n = int(rng.choice([1, 2, 5, 17, 80]))
        ids, ts, x, res = _batch(rng, pool, n, f, 1000.0 + b)
        if use_slab:
            slab.add(ids)
            if rng.random() < 0.3:  # the slab evicts some streams; some of them are parked
                gone = [s for s in pool if s in slab.ids and rng.random() < 0.2]
                slab.evict(gone)
                parked.update(s for s in gone if rng.random() < 0.5)
                parked.difference_update(ids)
        args = (slab, parked if rng.random() < 0.7 else None) if use_slab else ()
        new.record(ids, ts, x, res, *args)
        ref.record(ids, ts, x, res, *args)
        assert _state(new) == _state(ref), f"batch {b}"
        if rng.random() < 0.1:  # a forced sync (the state manager does this on rebalances)
            assert new.sync(slab, parked, force=True) == ref.sync(slab, parked, force=True)  # type: ignore[arg-type]
            assert _state(new) == _state(ref)
    assert new.dropped or new.tombstones or kw["max_streams"] >= len(pool)  # the scenario reused or evicted rows


def test_summaries_equal_summary_value_for_value() -> None:
    rng = np.random.default_rng(7)
    store = RingStore("s", n_features=2, points=4, max_streams=16)
    ids = [f"s{i}" for i in range(10)]
    for b in range(6):
        got = _batch(rng, ids, 12, 2, 100.0 + b)
        store.record(*got)
    rows = [store._row_of[s] for s in store.stream_ids()]
    assert repr(store._summaries(rows)) == repr([store._summary(r) for r in rows])
    assert any(store._summary(r)["alerts"] for r in rows) and any(store.rejected[rows])


def test_record_of_the_docstring_example_and_duplicate_detection() -> None:
    """Repeated streams are found whatever order fancy assignment writes in (all positions distinct here)."""
    for ids in (["a", "b", "a"], ["a", "a", "a"], ["a", "b", "c"], ["c", "b", "a", "b"]):
        new, ref = RingStore("s", n_features=1, points=2), _Reference("s", n_features=1, points=2)
        n = len(ids)
        res = SimpleNamespace(
            accepted=np.ones(n, bool),
            prediction=np.arange(n, dtype=np.float32).reshape(n, 1),
            expected=np.zeros((n, 1), np.float32),
            score=np.linspace(0, 1, n).astype(np.float32),
            anomaly=np.zeros(n, bool),
            transition=np.zeros(n, np.int8),
            alerts=[],
            reason=[None] * n,
        )
        for store in (new, ref):
            store.record(ids, np.arange(n, dtype=np.float64), np.ones((n, 1), np.float32), res)
            store.created[:] = 0.0
        assert _state(new) == _state(ref)
