"""Per-stream state in one preallocated device slab.

The slab holds two tensors with one row ("slot") per resident stream: ``hidden`` for the
recurrent state and ``aux`` for normaliser/scorer state. Bookkeeping (stream id -> slot, step
counts, last event time, recency) lives on the host in numpy arrays, so a batch costs one
gather and one scatter per tensor however many streams it touches. On the CPU, a source whose scorer
runs as compiled loops has its ``aux`` rows updated in place instead (``Runner.aux_in_place``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .errors import CapacityError, ConfigError

__all__ = ["EvictionPolicy", "SlabSnapshot", "StateSlab", "occurrences", "wave_ranks"]

EvictionPolicy = Literal["lru", "ttl", "none"]


def wave_ranks(slots: np.ndarray) -> np.ndarray:
    """Occurrence rank of each row among the rows of the same slot (0 for the first): the wave a row
    is stepped in, since a stream's events of one batch run one after another.

    Example:
        >>> wave_ranks(np.array([7, 3, 7, 7, 3])).tolist()
        [0, 0, 1, 2, 1]
    """
    return _occurrences(slots, with_counts=False)[0]


def occurrences(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`wave_ranks` of ``values`` and, for each element, how many elements equal it (one sort for both).

    Example:
        >>> [a.tolist() for a in occurrences(np.array([7, 3, 7, 7, 3]))]
        [[0, 0, 1, 2, 1], [3, 2, 3, 3, 2]]
    """
    rank, count = _occurrences(values, with_counts=True)
    assert count is not None
    return rank, count


def _occurrences(values: np.ndarray, with_counts: bool) -> tuple[np.ndarray, np.ndarray | None]:
    n = len(values)
    if not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64) if with_counts else None
    order = np.argsort(values, kind="stable")
    s = values[order]
    starts = np.r_[True, s[1:] != s[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - first
    if not with_counts:
        return rank, None
    group = np.cumsum(starts) - 1
    count = np.empty(n, np.int64)
    count[order] = np.bincount(group)[group]
    return rank, count


@dataclass(frozen=True)
class SlabSnapshot:
    """Immutable CPU copy of some streams' slots (what a checkpoint or changelog stores)."""

    stream_ids: tuple[str, ...]
    hidden: Tensor  # [N, L, K, H] cpu
    aux: Tensor  # [N, A] cpu
    steps: np.ndarray  # [N] int64, read-only
    last_ts: np.ndarray  # [N] float64, read-only

    def __len__(self) -> int:
        return len(self.stream_ids)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


class StateSlab:
    """Slots of per-stream state on one device, addressed by stream id.

    New streams get pristine slots (zero hidden state, ``aux_init`` scorer state). When no
    slot is free the slab grows (doubling, up to ``max_capacity``), then evicts by policy:
    ``lru`` evicts the least recently used streams not in the current batch, ``ttl`` only
    streams idle longer than ``ttl_seconds`` of event time, ``none`` never evicts; if nothing
    can be freed a :class:`CapacityError` says which setting to raise.

    Example:
        >>> slab = StateSlab(layers=1, parts=1, hidden=4, aux_init=torch.zeros(2), capacity=2)
        >>> slots = slab.assign(["a", "b", "a"], np.array([1.0, 1.0, 2.0]))
        >>> slots.tolist(), len(slab)
        ([0, 1, 0], 2)
    """

    def __init__(
        self,
        *,
        layers: int,
        parts: int,
        hidden: int,
        aux_init: Tensor,
        capacity: int = 1024,
        max_capacity: int | None = None,
        eviction: EvictionPolicy = "lru",
        ttl_seconds: float | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity < 1:
            raise ConfigError(f"slab capacity must be >= 1, got {capacity}")
        if eviction not in ("lru", "ttl", "none"):
            raise ConfigError(f"eviction must be 'lru', 'ttl' or 'none', got {eviction!r}")
        if eviction == "ttl" and not ttl_seconds:
            raise ConfigError("eviction='ttl' needs ttl_seconds > 0")
        self.max_capacity = max(capacity, max_capacity or capacity)
        self.eviction: EvictionPolicy = eviction
        self.ttl_seconds = ttl_seconds
        self.device = torch.device(device)
        self.dtype = dtype
        self._shape = (layers, parts, hidden)
        self._aux_init = aux_init.to(self.device, torch.float32)  # [A]
        self.evictions = 0
        self._tick = 0
        self._alloc(capacity)

    # -- layout -------------------------------------------------------------------------
    def _alloc(self, capacity: int) -> None:
        self.hidden = torch.zeros((capacity, *self._shape), device=self.device, dtype=self.dtype)  # [C, L, K, H]
        self.aux = self._aux_init.expand(capacity, -1).clone()  # [C, A]
        self.steps = np.zeros(capacity, np.int64)
        self.last_ts = np.full(capacity, -np.inf)
        self.last_used = np.zeros(capacity, np.int64)
        self._ids: list[str | None] = [None] * capacity
        self._slot_of: dict[str, int] = {}
        self._free = list(range(capacity - 1, -1, -1))  # pop() hands out low slots first

    @property
    def capacity(self) -> int:
        return self.hidden.shape[0]

    @property
    def nbytes(self) -> int:
        """Device bytes of the slab (hidden + aux)."""
        return self.hidden.numel() * self.hidden.element_size() + self.aux.numel() * self.aux.element_size()

    @property
    def bytes_per_stream(self) -> int:
        return self.nbytes // self.capacity

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._slot_of

    def stream_ids(self) -> list[str]:
        return list(self._slot_of)

    def slot(self, stream_id: str) -> int | None:
        return self._slot_of.get(stream_id)

    @property
    def slot_of(self) -> Mapping[str, int]:
        """Stream id -> slot of every resident stream: the slab's own dict, read-only to callers.

        For hot loops over many ids: ``sid in slab.slot_of`` is a dict lookup, without the method
        call of ``sid in slab`` per id.
        """
        return self._slot_of

    def ids_at(self, slots: np.ndarray) -> list[str | None]:
        """The stream ids in ``slots`` (``[n]`` int64, e.g. from :meth:`lru_slots`); ``None`` for a free slot."""
        ids = self._ids
        return [ids[k] for k in slots.tolist()]  # [n]

    # -- slots --------------------------------------------------------------------------
    def assign(self, stream_ids: Sequence[str], ts: np.ndarray | None = None) -> np.ndarray:
        """Slots for a batch of stream ids (new streams get pristine slots); marks them used."""
        self._tick += 1
        slot_of = self._slot_of
        slots = np.fromiter(map(slot_of.get, stream_ids, repeat(-1)), np.int64, len(stream_ids))
        missing = slots < 0
        if missing.any():
            new_ids = list(dict.fromkeys(s for s, m in zip(stream_ids, missing) if m))
            self.last_used[slots[~missing]] = self._tick  # protect this batch from eviction
            self._make_room(len(new_ids), ts)
            for s in new_ids:
                k = self._free.pop()
                slot_of[s] = k
                self._ids[k] = s
            slots[missing] = [slot_of[s] for s, m in zip(stream_ids, missing) if m]
        self.last_used[slots] = self._tick
        return slots

    def _make_room(self, n: int, ts: np.ndarray | None) -> None:
        if n <= len(self._free):
            return
        if self.capacity < self.max_capacity:
            need = len(self._slot_of) + n
            new_cap = self.capacity
            while new_cap < need:
                new_cap *= 2
            self._grow(min(max(new_cap, need), self.max_capacity))
            if n <= len(self._free):
                return
        short = n - len(self._free)
        if self.eviction == "lru":
            victims = self.lru_slots(short, spare_current=True)
            if len(victims) >= short:
                self.evict([self._ids[k] for k in victims.tolist()])  # type: ignore[misc]
                return
        elif self.eviction == "ttl" and ts is not None and len(ts):
            # a stream of this batch already has its slot in the caller's hands: evicting it here
            # would hand the same slot to a new stream of the batch as well
            self.evict_idle(float(np.max(ts)), spare_current=True)
            if n <= len(self._free):
                return
        raise CapacityError(
            f"state slab full: {len(self._slot_of)} resident streams, capacity {self.capacity}, "
            f"{n} new in this batch; raise the slab's max capacity (SEQSTREAM_MAX_STREAMS) "
            f"or enable eviction (lru, or ttl with a shorter ttl)"
        )

    def _resident(self) -> np.ndarray:
        """``[C]`` bool, the slots that hold a stream: assign stamps every resident stream's
        ``last_used`` with a tick >= 1, and a free slot is reset to 0."""
        return self.last_used > 0

    def lru_slots(self, n: int, *, exclude: np.ndarray | None = None, spare_current: bool = False) -> np.ndarray:
        """Slots of the ``n`` least recently used resident streams, oldest first, ties in slot order.

        ``exclude``: slots that must not be picked; ``spare_current``: nor the streams of the batch
        being assigned. Whole-array work, no Python per resident stream: with a million resident
        streams a per-stream scan cost ~1 s per batch once the slab or the resident bound is full.

        Example:
            >>> slab = StateSlab(layers=1, parts=1, hidden=2, aux_init=torch.zeros(1), capacity=4)
            >>> _ = slab.assign(["a", "b"]); _ = slab.assign(["c"]); _ = slab.assign(["a"])
            >>> slab.ids_at(slab.lru_slots(2))
            ['b', 'c']
        """
        used = self.last_used
        cand = self._resident()
        if spare_current:
            cand &= used < self._tick
        if exclude is not None and len(exclude):
            cand[exclude] = False
        live = np.flatnonzero(cand)  # [R] ascending slots
        lu = used[live]  # [R]
        if n < len(live):  # the n smallest (tick, slot) pairs in O(R): all below the n-th tick, then its ties
            v = lu[np.argpartition(lu, n - 1)[n - 1]]
            below, tie = live[lu < v], live[lu == v]
            live = np.concatenate([below, tie[: n - len(below)]])  # [n]
            lu = used[live]
        return live[np.argsort(lu, kind="stable")][:n]

    def _grow(self, new_cap: int) -> None:
        old_h, old_a, c = self.hidden, self.aux, self.capacity
        self.hidden = torch.zeros((new_cap, *self._shape), device=self.device, dtype=self.dtype)  # [C', L, K, H]
        self.hidden[:c] = old_h  # [C, L, K, H]
        self.aux = self._aux_init.expand(new_cap, -1).clone()  # [C', A]
        self.aux[:c] = old_a  # [C, A]
        grow = new_cap - c
        self.steps = np.concatenate([self.steps, np.zeros(grow, np.int64)])
        self.last_ts = np.concatenate([self.last_ts, np.full(grow, -np.inf)])
        self.last_used = np.concatenate([self.last_used, np.zeros(grow, np.int64)])
        self._ids.extend([None] * grow)
        self._free = list(range(new_cap - 1, c - 1, -1)) + self._free

    def evict(self, stream_ids: Sequence[str], *, count: bool = True) -> int:
        """Drop streams and return their slots to the free list, pristine; returns how many.

        ``count=False`` drops without counting an eviction (e.g. a partition moved away).
        """
        slots = [self._slot_of.pop(s) for s in stream_ids if s in self._slot_of]
        if not slots:
            return 0
        self._reset(np.asarray(slots, np.int64))
        for k in slots:
            self._ids[k] = None
        self._free.extend(slots)
        if count:
            self.evictions += len(slots)
        return len(slots)

    def evict_idle(self, now: float, *, spare_current: bool = False) -> list[str]:
        """TTL eviction: streams whose last event is older than ``now - ttl_seconds``.

        ``spare_current``: not the streams of the batch being assigned (their slots are taken)."""
        if not self.ttl_seconds:
            return []
        stale = self._resident() & (self.last_ts < now - self.ttl_seconds)  # [C] resident, idle
        if spare_current:
            stale &= self.last_used < self._tick
        slots = np.flatnonzero(stale)
        idle: list[str] = [self._ids[k] for k in slots.tolist()]  # type: ignore[misc]
        self.evict(idle)
        return idle

    def _reset(self, slots: np.ndarray) -> None:
        idx = torch.from_numpy(slots).to(self.device)  # [n]
        self.hidden.index_fill_(0, idx, 0.0)  # [C, L, K, H]
        self.aux.index_copy_(0, idx, self._aux_init.expand(len(slots), -1).contiguous())  # [C, A]
        self.steps[slots] = 0
        self.last_ts[slots] = -np.inf
        self.last_used[slots] = 0

    def clear(self) -> None:
        self._alloc(self.capacity)

    # -- gather / scatter ---------------------------------------------------------------
    def gather(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """``idx[B]`` (int64, on the slab's device) -> ``hidden[B, L, K, H]``, ``aux[B, A]`` copies."""
        return self.hidden.index_select(0, idx), self.aux.index_select(0, idx)

    def scatter(self, idx: Tensor, hidden: Tensor, aux: Tensor) -> None:
        """Write rows back; ``idx`` must not repeat (a batch with repeats is split into waves)."""
        self.hidden.index_copy_(0, idx, hidden.to(self.dtype))  # [C, L, K, H]
        self.aux.index_copy_(0, idx, aux)  # [C, A]

    # -- snapshots ----------------------------------------------------------------------
    def snapshot(self, stream_ids: Sequence[str] | None = None) -> SlabSnapshot:
        """Immutable CPU copy of the given (default: all) resident streams."""
        ids = tuple(self._slot_of) if stream_ids is None else tuple(s for s in stream_ids if s in self._slot_of)
        slots = np.fromiter((self._slot_of[s] for s in ids), np.int64, len(ids))
        idx = torch.from_numpy(slots).to(self.device)  # [N]
        return SlabSnapshot(
            stream_ids=ids,
            hidden=self.hidden.index_select(0, idx).to("cpu", torch.float32),  # [N, L, K, H]
            aux=self.aux.index_select(0, idx).cpu(),  # [N, A]
            steps=_frozen(self.steps[slots]),
            last_ts=_frozen(self.last_ts[slots]),
        )

    def restore(self, snap: SlabSnapshot, *, replace: bool = True) -> None:
        """Load a snapshot; ``replace`` clears the slab first, else it adds/overwrites streams."""
        if tuple(snap.hidden.shape[1:]) != self._shape or snap.aux.shape[1] != self.aux.shape[1]:
            raise ConfigError(
                f"snapshot layout {tuple(snap.hidden.shape[1:])}+aux{snap.aux.shape[1]} does not match "
                f"the slab {self._shape}+aux{self.aux.shape[1]}; restore it with the checkpoint that wrote it"
            )
        if replace:
            self.clear()
        if not len(snap):
            return
        slots = self.assign(snap.stream_ids)
        idx = torch.from_numpy(slots).to(self.device)  # [N]
        self.hidden.index_copy_(0, idx, snap.hidden.to(self.device, self.dtype))  # [C, L, K, H]
        self.aux.index_copy_(0, idx, snap.aux.to(self.device))  # [C, A]
        self.steps[slots] = snap.steps
        self.last_ts[slots] = snap.last_ts
