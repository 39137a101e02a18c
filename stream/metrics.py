"""Prometheus metrics of a worker, served at ``/metrics`` on the Faust web server.

Labels are bounded: source, topic, partition (of our own topics), reason, state, model — never a
stream id.
The process and platform collectors of a plain ``prometheus_client`` setup are registered too:
``process_*`` (CPU seconds, resident memory, open fds, start time), ``python_info`` and ``python_gc_*``.
"""

from __future__ import annotations

import functools
import inspect
import sys
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Metrics", "observe_many"]

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_STEP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class Metrics:
    """All worker metrics in one (by default private) registry.

    Example:
        >>> m = Metrics()
        >>> m.events_in.labels(source="sensors").inc(3)
        >>> text = m.render()
        >>> b"seqstream_events_in_total" in text, b"process_cpu_seconds_total" in text, b"python_info" in text
        (True, True, True)
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        if registry is None:  # a private registry has none of the default collectors: the same ones on it
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                r.register(collector)
        self.events_in = Counter("seqstream_events_in", "Input records consumed", ["source"], registry=r)
        self.events_out = Counter("seqstream_events_out", "Output records produced", ["source", "topic"], registry=r)
        self.dead_letters = Counter(
            "seqstream_dead_letters", "Input records routed to dead-letter", ["source", "reason"], registry=r
        )
        self.batch_size = Histogram(
            "seqstream_batch_size", "Events per micro-batch and source", ["source"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.inference_step = Histogram(
            "seqstream_inference_step_seconds",
            "Runner.process time per micro-batch",
            ["source"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.e2e_latency = Histogram(
            "seqstream_end_to_end_latency_seconds",
            "Event time to output produced (acknowledged by the broker)",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.processing_latency = Histogram(
            "seqstream_processing_latency_seconds",
            "Kafka record timestamp (append time) to output produced",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.active_streams = Gauge(
            "seqstream_active_streams", "Streams resident in the state slab", ["source"], registry=r
        )
        self.slab_bytes = Gauge("seqstream_state_slab_bytes", "Bytes of the state slab", ["source"], registry=r)
        self.slab_capacity = Gauge("seqstream_state_slab_capacity", "Slots in the state slab", ["source"], registry=r)
        self.alerts = Counter("seqstream_alerts", "Alert transitions", ["source", "state"], registry=r)
        self.evictions = Counter("seqstream_evictions", "Streams evicted from the state slab", ["source"], registry=r)
        self.consumer_lag = Gauge(
            "seqstream_consumer_lag", "Records behind the high watermark", ["topic", "partition"], registry=r
        )
        self.model_info = Gauge(
            "seqstream_model_info", "Model serving a source (value 1)", ["source", "model"], registry=r
        )
        self.assigned_partitions = Gauge(
            "seqstream_assigned_partitions", "Input partitions assigned to this worker", registry=r
        )
        self.up = Gauge("seqstream_consumer_up", "1 while the input consumer is running", registry=r)
        self.broker_connected = Gauge(
            "seqstream_broker_connected",
            "1 while the worker holds a live connection to the Kafka cluster, 0 while the brokers are unreachable",
            registry=r,
        )
        self.broker_disconnects = Counter(
            "seqstream_broker_disconnects", "Times the Kafka cluster became unreachable", registry=r
        )
        self.gpu_memory = Gauge(
            "seqstream_gpu_memory_bytes",
            "CUDA memory of this worker's tensors (allocated: in use; reserved: held by the caching allocator); "
            "0 without CUDA",
            ["kind"],
            registry=r,
        )
        for kind in ("allocated", "reserved"):
            self.gpu_memory.labels(kind=kind).set(0)
        # durable state (stream/state/)
        self.state_snapshots = Counter("seqstream_state_snapshots", "Partition snapshots written", registry=r)
        self.state_snapshot_bytes = Counter("seqstream_state_snapshot_bytes", "Changelog bytes written", registry=r)
        self.state_snapshot_seconds = Histogram(
            "seqstream_state_snapshot_seconds", "Time to write one round of snapshots", registry=r
        )
        self.state_restore_seconds = Histogram(
            "seqstream_state_restore_seconds", "Time to restore assigned partitions", registry=r
        )
        self.state_replayed_events = Counter(
            "seqstream_state_replayed_events", "Input events re-processed for state only", registry=r
        )
        self.state_model_change = Counter(
            "seqstream_state_model_change",
            "Partition snapshots written by another model or scoring configuration (fingerprint), by what the "
            "worker did (SEQSTREAM_ON_MODEL_CHANGE): rewarm, reset or refuse",
            ["source", "action"],
            registry=r,
        )
        self.stale_records_dropped = Counter(
            "seqstream_stale_records_dropped", "Fetched records not processed (not owned, duplicate or gap)", registry=r
        )
        # exactly_once (stream/transactions.py): one transaction per input partition and batch
        self.transactions = Counter(
            "seqstream_transactions",
            "Kafka transactions of input partitions (exactly_once), by outcome: committed or aborted",
            ["outcome"],
            registry=r,
        )
        for outcome in ("committed", "aborted"):
            self.transactions.labels(outcome=outcome)
        # reorder buffer (stream/state/reorder.py): events held for event-time ordering, and why they left it
        self.reorder_held = Gauge(
            "seqstream_reorder_held_events", "Events held by the reorder buffer", ["source"], registry=r
        )
        self.reorder_released = Counter(
            "seqstream_reorder_released_events",
            "Events released by the reorder buffer (cause: watermark, max_hold, overflow)",
            ["source", "cause"],
            registry=r,
        )
        self.parked_streams = Gauge(
            "seqstream_parked_streams",
            "Streams parked off the slab by the resident bound (where: memory, disk)",
            ["source", "where"],
            registry=r,
        )
        self._evictions_seen: dict[str, int] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._scrape_hooks: list[Callable[[], Callable[[], None] | None]] = []

    def of(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)`` (label values in the metric's label order), looked up once per label
        set: ``labels`` costs ~4 µs a call, and a worker makes ~10 such calls per source and micro-batch.
        For metrics whose children are never removed (the per-source ones)."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_slab(self, source: str, active: int, nbytes: int, capacity: int, evictions: int) -> None:
        self.of(self.active_streams, source).set(active)
        self.of(self.slab_bytes, source).set(nbytes)
        self.of(self.slab_capacity, source).set(capacity)
        delta = evictions - self._evictions_seen.get(source, 0)
        if delta > 0:
            self.of(self.evictions, source).inc(delta)
        self._evictions_seen[source] = evictions

    @property
    def consumer_up(self) -> bool:
        return bool(self.up._value.get())

    def _observe_gpu(self) -> None:
        torch = sys.modules.get("torch")  # only a worker that loaded models has anything to report
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            self.gpu_memory.labels(kind="allocated").set(torch.cuda.memory_allocated())
            self.gpu_memory.labels(kind="reserved").set(torch.cuda.memory_reserved())

    def on_scrape(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` at every :meth:`render`, before the text is made: for gauges that describe a state
        (a slab's size) rather than count events, set when someone looks instead of after every micro-batch.
        A bound method is held weakly: a pipeline that is gone stops being asked."""
        if inspect.ismethod(hook):
            self._scrape_hooks.append(weakref.WeakMethod(hook))
        else:
            self._scrape_hooks.append(functools.partial(_same, hook))

    def render(self) -> bytes:
        alive = []
        for ref in self._scrape_hooks:
            hook = ref()
            if hook is not None:
                hook()
                alive.append(ref)
        self._scrape_hooks = alive
        self._observe_gpu()
        return generate_latest(self.registry)


def _same(hook: Callable[[], None]) -> Callable[[], None]:
    return hook


def observe_many(hist: Any, values: np.ndarray) -> None:
    """Observe many values into a prometheus ``Histogram`` child in O(buckets) Python calls."""
    if len(values) == 0:
        return
    try:
        bounds = np.asarray(hist._upper_bounds, dtype=np.float64)
        counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
        for b, c in zip(hist._buckets, counts.tolist()):
            if c:
                b.inc(c)
        hist._sum.inc(float(values.sum()))
    except AttributeError:  # a prometheus_client without these internals
        for v in values.tolist():
            hist.observe(v)
