"""The reorder buffer: accepted events held per stream until event time orders them.

``SEQSTREAM_REORDER_GRACE_S`` > 0 (off by default): accepted events are held per stream until
the stream's watermark (its newest event time minus the grace) passes them, then run in
event-time order; an event behind the watermark (or behind an event already run) is a dead
letter ``late``. A held event's prediction is emitted when it is released: by the watermark
(a function of the input alone, so a replay releases exactly the same events at the same
records), or on processing time (:meth:`ReorderBuffer.take_due`) when it waited
``SEQSTREAM_REORDER_MAX_HOLD_S`` or the buffer holds more than ``SEQSTREAM_REORDER_MAX_HELD``
events (the state manager snapshots right after such a release). Held events are part of the
partition snapshots (:mod:`stream.state.changelog`).

The buffer only decides what waits and what leaves, in which order; the source's pipeline
(:class:`stream.pipeline.SourcePipeline`) runs what leaves, and passes the processing time in.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Collection, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from models.errors import ConfigError

if TYPE_CHECKING:
    from ..codec import RecordLike
    from ..settings import Settings

__all__ = ["HeldEvent", "ReorderBuffer"]


@dataclass(frozen=True, slots=True)
class HeldEvent:
    """An accepted input event waiting in the reorder buffer (quacks like a Kafka record for the encoders).

    Example:
        >>> e = HeldEvent("a", 5.0, "sensor-readings", 0, 17, 0, b"a", b"{}", np.zeros(1, np.float32))
        >>> (e.topic, e.partition, e.offset)
        ('sensor-readings', 0, 17)
    """

    stream: str
    ts: float
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    x: np.ndarray  # [F] float32 model input

    @property
    def order(self) -> tuple[float, int, int]:
        """Release order: event time, then input position (deterministic on replay)."""
        return (self.ts, self.partition, self.offset)


# a held event in its stream's heap: (event time, partition, offset, arrival sequence, event); the
# sequence breaks ties before the heap would compare two events
_HeapEntry = tuple[float, int, int, int, HeldEvent]


class ReorderBuffer:
    """Held events of one source, per stream, in release order; ``now`` is processing time (monotonic s).

    Example:
        >>> buf = ReorderBuffer(grace_s=2.0, max_hold_s=5.0, max_held=100)
        >>> e = HeldEvent("a", 10.0, "t", 0, 1, 0, b"a", b"{}", np.zeros(1, np.float32))
        >>> buf.load([e], now=0.0)
        >>> (buf.n_held, buf.due(now=1.0), buf.due(now=5.0))
        (1, False, True)
        >>> timed, over = buf.take_due(now=5.0, only=None, partition_of={"a": 0})
        >>> ([x.offset for x in timed], over, buf.n_held)
        ([1], [], 0)
    """

    def __init__(self, grace_s: float, max_hold_s: float, max_held: int) -> None:
        self.grace = grace_s
        self.max_hold = max_hold_s
        self.max_held = max_held
        self._held: dict[str, list[_HeapEntry]] = {}  # stream -> heap of its held events
        self._newest: dict[str, float] = {}  # stream -> newest event time seen (streams with held events)
        # (arrival, stream, order) per held event in arrival order; an entry whose event left already
        # is skipped when it comes up (cheaper than finding it when its event leaves)
        self._arrivals: deque[tuple[float, str, tuple[float, int, int]]] = deque()
        self._n_held = 0
        self._seq = itertools.count()

    @classmethod
    def from_settings(cls, settings: Settings) -> ReorderBuffer | None:
        """The buffer ``SEQSTREAM_REORDER_*`` asks for, or None when the grace is 0 (no reordering)."""
        g = settings.reorder_grace_s
        if g > 0 and not settings.state_enabled:
            raise ConfigError(
                "SEQSTREAM_REORDER_GRACE_S > 0 needs SEQSTREAM_STATE_ENABLED=true: the events the reorder buffer "
                "holds are saved in the state snapshots, without them a crash would lose them; enable state or "
                "set SEQSTREAM_REORDER_GRACE_S=0"
            )
        if g <= 0:
            return None
        return cls(g, settings.reorder_max_hold_s or max(1.0, 2.0 * g), settings.reorder_max_held)

    @property
    def n_held(self) -> int:
        """Events held."""
        return self._n_held

    @property
    def streams(self) -> Container[str]:
        """The streams with held events (a live view)."""
        return self._held.keys()

    def hold(
        self,
        records: Sequence[RecordLike],
        ids: Sequence[str],
        ts: np.ndarray,
        x: np.ndarray,
        index: list[int],
        dead: list[tuple[int, str, str]],
        *,
        now: float,
        last_ts: Callable[[str], float],
    ) -> list[HeldEvent]:
        """Admit decoded events into the buffer (or dead letter ``late``); returns the released ones.

        ``ids``/``ts``/``x`` ``[n]``/``[n]``/``[n, F]``: the decoded events, ``index[j]`` the position
        of event ``j`` in ``records``; ``dead`` gets ``(position, "late", message)``; ``last_ts(sid)``:
        event time of the stream's last event run (-inf for a new stream).

        Per event, in input order: ``floor = max(last event run, newest event time seen - grace)``;
        an event below the floor is late, else held. Then every touched stream releases its held
        events at or behind its watermark, in (event time, partition, offset) order. The result does
        not depend on how the input was cut into batches.
        """
        g, held, newest, arrivals = self.grace, self._held, self._newest, self._arrivals
        lasts: dict[str, float] = {}
        touched: dict[str, None] = {}
        seq = self._seq
        for j, (sid, t) in enumerate(zip(ids, ts.tolist())):
            rec = records[index[j]]
            last = lasts.get(sid)
            if last is None:
                last = lasts[sid] = last_ts(sid)
            h = newest.get(sid)
            floor = last if h is None else max(last, h - g)
            if t < floor:
                dead.append(
                    (
                        index[j],
                        "late",
                        f"event time is {floor - t:.3f} s behind the stream's reorder watermark (its newest event "
                        f"time minus SEQSTREAM_REORDER_GRACE_S={g}, or an event already run); raise "
                        f"SEQSTREAM_REORDER_GRACE_S to accept events this late",
                    )
                )
                continue
            part, off = rec.partition, rec.offset
            ev = HeldEvent(sid, t, rec.topic, part, off, rec.timestamp, rec.key, rec.value, x[j])
            heap = held.get(sid)
            if heap is None:
                heap = held[sid] = []
            heapq.heappush(heap, (t, part, off, next(seq), ev))
            newest[sid] = t if h is None or t > h else h
            arrivals.append((now, sid, (t, part, off)))
            self._n_held += 1
            touched[sid] = None
        out: list[HeldEvent] = []
        for sid in touched:
            self._pop(sid, (newest[sid] - g, np.iinfo(np.int64).max, 0), out)
        if len(arrivals) > 4 * self._n_held + 4096:  # drop entries of events released by their watermark
            self._arrivals = deque(e for e in arrivals if (hp := held.get(e[1])) and hp[0][:3] <= e[2])
        return out

    def _pop(self, sid: str, upto: tuple[float, int, int], out: list[HeldEvent]) -> None:
        """Move the stream's held events ordered at or before ``upto`` to ``out`` (in order)."""
        heap = self._held.get(sid)
        if not heap:
            return
        n0 = len(out)
        while heap and heap[0][:3] <= upto:
            out.append(heapq.heappop(heap)[4])
        self._n_held -= len(out) - n0
        if not heap:
            del self._held[sid]
            self._newest.pop(sid, None)

    def due(self, now: float) -> bool:
        """Whether :meth:`take_due` would release something (an event waited its max hold, or overflow)."""
        arrivals, held = self._arrivals, self._held
        while arrivals and not ((hp := held.get(arrivals[0][1])) and hp[0][:3] <= arrivals[0][2]):
            arrivals.popleft()  # released by its watermark (or dropped) already
        if not arrivals:
            return False
        return arrivals[0][0] <= now - self.max_hold or self._n_held > self.max_held

    def take_due(
        self, now: float, only: Collection[int] | None, partition_of: Mapping[str, int]
    ) -> tuple[list[HeldEvent], list[HeldEvent]] | None:
        """Release the held events that waited ``max_hold_s`` (processing time), and the oldest arrivals
        beyond ``max_held``: ``(timed, overflow)``, each in release order (``None``: nothing released).

        Releasing an event also releases the stream's held events ordered before it, and raises the
        stream's floor to it (later, older arrivals are ``late``). ``only``: release only streams of
        these input partitions (``partition_of``: stream -> input partition; the others keep waiting).
        """
        if not self._arrivals:
            return None
        cutoff = now - self.max_hold
        arrivals, held, sp = self._arrivals, self._held, partition_of
        timed: list[HeldEvent] = []
        over: list[HeldEvent] = []
        skipped = []
        while arrivals:
            arrival, sid, order = arrivals[0]
            overflow = self._n_held > self.max_held
            if arrival > cutoff and not overflow:
                break
            arrivals.popleft()
            heap = held.get(sid)
            if not heap or heap[0][:3] > order:  # released already
                continue
            if only is not None and sp.get(sid) not in only:
                skipped.append((arrival, sid, order))
                continue
            self._pop(sid, order, timed if arrival <= cutoff else over)
        arrivals.extendleft(reversed(skipped))
        if not timed and not over:
            return None
        return timed, over

    def events_of(self, partition: int, partition_of: Mapping[str, int]) -> list[HeldEvent]:
        """The held events of one input partition's streams, in release order."""
        sp = partition_of
        return [e[4] for sid, heap in self._held.items() if sp.get(sid) == partition for e in sorted(heap)]

    def load(self, events: Sequence[HeldEvent], now: float) -> None:
        """Hold events restored from a snapshot (their arrival: ``now``)."""
        for e in events:
            heap = self._held.setdefault(e.stream, [])
            heapq.heappush(heap, (e.ts, e.partition, e.offset, next(self._seq), e))
            h = self._newest.get(e.stream)
            self._newest[e.stream] = e.ts if h is None or e.ts > h else h
            self._arrivals.append((now, e.stream, e.order))
            self._n_held += 1

    def drop(self, stream_ids: Sequence[str]) -> None:
        """Forget the held events of these streams (their partition moved to another worker)."""
        for sid in stream_ids:
            heap = self._held.pop(sid, None)
            if heap:
                self._n_held -= len(heap)
            self._newest.pop(sid, None)
