"""One source's streams by input partition: where each lives, and the streams parked off its slab.

What the durable state needs of a source besides its slab (:class:`PartitionState`): the input
partition of every stream (a partition snapshot holds exactly its streams, a revoked partition
drops exactly its streams), and the streams the resident bound (``SEQSTREAM_MAX_RESIDENT_STREAMS``)
parked off the slab in a :class:`~stream.state.parked.ParkedStore`: their state is kept, part of
the partition snapshots, and comes back on their next event.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Sequence

import numpy as np
import torch

from models.state import SlabSnapshot, StateSlab

from ..settings import Settings
from .changelog import concat_snapshots
from .parked import ParkedRow, ParkedStore

__all__ = ["PartitionState"]

log = logging.getLogger(__name__)


class PartitionState:
    """The streams of one source's slab by input partition, resident and parked.

    Example:
        >>> slab = StateSlab(layers=1, parts=1, hidden=2, aux_init=torch.zeros(1))
        >>> ps = PartitionState("doc", slab, Settings(max_resident_streams=1))
        >>> ps.stream_part.update(a=0, b=1)
        >>> _ = slab.assign(["a"], np.array([1.0])); ps.prepare(["b"], np.array([2.0]), keep=())
        set()
        >>> (slab.stream_ids(), list(ps.parked), ps.streams_of(0))
        ([], ['a'], ['a'])
        >>> ps.close()
    """

    def __init__(self, source: str, slab: StateSlab, settings: Settings) -> None:
        self.source = source
        self.slab = slab
        self.settings = settings
        self.stream_part: dict[str, int] = {}  # input partition of every resident (or held) stream
        self.parked: ParkedStore | dict[str, ParkedRow] = {}  # a ParkedStore from the first use (store)
        self.parked_total = 0  # streams parked so far
        self.resets = 0  # gap resets (SEQSTREAM_MAX_GAP_S) so far
        self.store()

    def store(self) -> ParkedStore:
        """The parked streams (a :class:`ParkedStore`; a plain dict set by a subclass is upgraded once)."""
        st = self.parked
        if isinstance(st, ParkedStore):
            return st
        slab = self.slab
        store = ParkedStore(
            self.settings.park_dir,
            f"parked-{self.source}",
            memory_rows=self.settings.park_memory_streams,
            shape=tuple(slab.hidden.shape[1:]),
            aux_dim=int(slab.aux.shape[1]),
        )
        self.parked = store
        return store

    def _rows_snapshot(self, items: Sequence[tuple[str, ParkedRow]]) -> SlabSnapshot:
        slab = self.slab
        if not items:
            return SlabSnapshot(
                (),
                torch.zeros((0, *slab.hidden.shape[1:])),  # [0, L, K, H]
                torch.zeros((0, slab.aux.shape[1])),  # [0, A]
                np.zeros(0, np.int64),
                np.zeros(0),
            )
        return SlabSnapshot(
            tuple(sid for sid, _ in items),
            torch.stack([r.hidden for _, r in items]),  # [N, L, K, H]
            torch.stack([r.aux for _, r in items]),  # [N, A]
            np.asarray([r.steps for _, r in items], np.int64),
            np.asarray([r.last_ts for _, r in items], np.float64),
        )

    def last_ts(self, sid: str) -> float:
        """Event time of the stream's last event run (resident or parked), -inf for a new stream."""
        slab = self.slab
        k = slab.slot(sid)
        if k is not None:
            return float(slab.last_ts[k])
        row = self.store().get(sid)
        return float(row.last_ts) if row is not None else -np.inf

    def prepare(self, stream_ids: Sequence[str], ts: np.ndarray, keep: Container[str]) -> set[str]:
        """Before a batch (``stream_ids``/``ts`` ``[n]``): unpark returning streams, gap resets, the resident
        bound (park LRU streams); returns the streams reset. ``keep``: streams whose partition stays known
        when they are parked (they have events in the reorder buffer)."""
        s, slab = self.settings, self.slab
        store = self.store()
        batch = list(dict.fromkeys(stream_ids))
        back: dict[str, ParkedRow] = {}
        if len(store):  # streams coming back from the parked store
            resident = slab.slot_of  # membership without a method call per id
            away = [sid for sid in batch if sid not in resident]
            back = store.take_many(away) if away else {}
        reset: set[str] = set()
        if s.max_gap_s is not None:
            first: dict[str, float] = {}
            for sid, t in zip(stream_ids, ts.tolist()):
                first.setdefault(sid, t)
            for sid, t in first.items():
                k = slab.slot(sid)
                row = back.get(sid) if k is None else None
                last = float(slab.last_ts[k]) if k is not None else row.last_ts if row is not None else -np.inf
                if np.isfinite(last) and t - last > s.max_gap_s:
                    reset.add(sid)
            if reset:
                slab.evict(list(reset))
                for sid in reset:
                    back.pop(sid, None)
                self.resets += len(reset)
                log.debug("gap reset of %d stream(s) of %s", len(reset), self.source)
        cap = s.max_resident_streams
        if cap is not None:
            incoming = [sid for sid in batch if sid not in slab]
            excess = len(slab) + len(incoming) - cap
            if excess > 0:
                protect = np.fromiter(
                    (k for k in map(slab.slot, batch) if k is not None), np.int64
                )  # [m] this batch's resident streams stay
                victims = slab.ids_at(slab.lru_slots(excess, exclude=protect))
                self.park([v for v in victims if v is not None], keep)
        if back:
            slab.restore(self._rows_snapshot(list(back.items())), replace=False)
        return reset

    def park(self, ids: list[str], keep: Container[str]) -> None:
        """Move streams off the slab into the parked store (their partition moves with them; it stays in
        ``stream_part`` too for the streams in ``keep``)."""
        if not ids:
            return
        snap = self.slab.snapshot(ids)
        sp = self.stream_part
        rows = []
        for i, sid in enumerate(snap.stream_ids):
            part = sp.get(sid, -1) if sid in keep else sp.pop(sid, -1)  # keeps stream_part bounded
            rows.append(
                (
                    sid,
                    ParkedRow(
                        part, snap.hidden[i].clone(), snap.aux[i].clone(), int(snap.steps[i]), float(snap.last_ts[i])
                    ),
                )
            )
        self.store().put_many(rows)
        self.slab.evict(list(snap.stream_ids))
        self.parked_total += len(snap.stream_ids)

    def streams_of(self, partition: int) -> list[str]:
        """Streams of one input partition: resident (and held) ones, then parked ones."""
        ids = [sid for sid, p in self.stream_part.items() if p == partition]
        return list(dict.fromkeys(ids + self.store().ids_of(partition)))

    def snapshot(self, partition: int) -> SlabSnapshot:
        """State of every stream of one input partition (resident and parked)."""
        slab = self.slab
        resident = slab.snapshot([sid for sid, p in self.stream_part.items() if p == partition and sid in slab])
        parked = [(sid, row) for sid, row in self.store().rows_of(partition) if sid not in slab]
        return concat_snapshots([resident, self._rows_snapshot(parked)]) if parked else resident

    def drop(self, partition: int) -> tuple[list[str], int]:
        """Forget every stream of a partition (it moved to another worker; not counted as evictions):
        the ids that had a partition in ``stream_part``, and how many streams were dropped in all."""
        ids = [sid for sid, p in self.stream_part.items() if p == partition]
        self.slab.evict(ids, count=False)
        for sid in ids:
            self.stream_part.pop(sid, None)
        return ids, len(ids) + self.store().drop_partition(partition)

    def load(self, partition: int, snap: SlabSnapshot) -> None:
        """Load a partition snapshot: into the slab, or parked when a resident bound is set."""
        if self.settings.max_resident_streams is not None:
            store = self.store()
            for lo in range(0, len(snap), 10_000):  # parked, spilling to disk beyond park_memory_streams
                hi = min(len(snap), lo + 10_000)
                store.put_many(
                    [
                        (
                            snap.stream_ids[i],
                            ParkedRow(
                                partition,
                                snap.hidden[i].clone(),
                                snap.aux[i].clone(),
                                int(snap.steps[i]),
                                float(snap.last_ts[i]),
                            ),
                        )
                        for i in range(lo, hi)
                    ]
                )
        elif len(snap):
            for sid in snap.stream_ids:
                self.stream_part[sid] = partition
            self.slab.restore(snap, replace=False)

    def close(self) -> None:
        """Release the parked store's file (the state itself lives in the changelog)."""
        st = self.parked
        if isinstance(st, ParkedStore):
            st.close()
