"""Backpressure against a real Tansu broker and a real worker process.

A producer floods the input faster than the worker can process it (the worker runs with small
micro-batches, so every batch pays its produce/ack/commit round trips), while a sampler reads the
worker's RSS (``/proc/<pid>/status``) and ``seqstream_consumer_lag`` from its ``/metrics``:

* the worker falls behind (the lag grows to a backlog many times larger, in bytes, than the
  worker's memory growth): input is pulled, not pushed, so the backlog stays in the broker;
* RSS stays below a fixed bound during the flood (the consumer's fetch buffers are bounded by
  ``max_partition_fetch_bytes`` per partition and one micro-batch is in flight at a time);
* when the flood stops the lag drains to 0 and every input has its output.

Run: ``.venv/bin/python -m pytest -q -s -m integration tests/integration/test_backpressure.py``
(prints the samples summary; the numbers go to docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import pytest

from stream.tools.worker_process import WorkerProcess, metric_sum

from .conftest import Broker
from .test_durability import Setup

pytestmark = pytest.mark.integration

N_STREAMS = 500
PAD = 1500  # bytes of padding per record (an extra JSON field the decoder ignores)
FLOOD_S = 10.0  # at most this long, and at most MAX_RECORDS records
DRAIN_S = 120.0  # a timeout only: ~15 s here when the machine is not shared
MAX_RECORDS = 180_000  # ~270 MB
RSS_GROWTH_BOUND_MB = 100.0


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError("no VmRSS")


def _flood(bootstrap: str, topic: str, seconds: float, stop: threading.Event, sent: list[int]) -> None:
    """Send padded records as fast as the broker takes them for ``seconds``."""

    async def run() -> None:
        from aiokafka import AIOKafkaProducer

        from stream.engine import BulkProducer
        from stream.pipeline import Output

        p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
        await p.start()
        bulk = BulkProducer(p)
        pad = "x" * PAD
        t0, k = time.monotonic(), 0
        pending: list[asyncio.Future[object]] = []
        try:
            while time.monotonic() - t0 < seconds and not stop.is_set() and k * N_STREAMS < MAX_RECORDS:
                outs = []
                for i in range(N_STREAMS):
                    sid = f"b{i:04d}"
                    value = orjson.dumps({"stream": sid, "ts": 1.7e9 + k, "values": [float(i % 7)], "pad": pad})
                    outs.append(Output(topic, sid.encode(), value))
                pending.extend(await bulk.send_all(outs))
                if len(pending) > 64:  # keep a few rounds in flight, no more
                    await asyncio.gather(*pending)
                    pending.clear()
                k += 1
                sent[0] = k * N_STREAMS
            await asyncio.gather(*pending)
        finally:
            await p.stop()

    asyncio.run(run())


def test_backpressure_memory_bounded_and_lag_drains(
    broker: Broker, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    setup = Setup(broker, checkpoints, tmp_path, SEQSTREAM_BATCH_MAX="64", SEQSTREAM_SNAPSHOT_INTERVAL_S="2")
    topic = setup.topics["sensors"]
    w: WorkerProcess = setup.worker()
    try:
        w.wait_ready(timeout=90)
        assert w.proc is not None
        pid = w.proc.pid
        time.sleep(1.0)
        base = _rss_mb(pid)
        stop = threading.Event()
        sent = [0]
        samples: list[tuple[float, float, float, float]] = []  # (t, rss MB, lag, events in)

        def lag_and_events() -> tuple[float, float]:
            m = w.metrics(timeout=5.0)
            lag = sum(v for k, v in m.items() if k.startswith("seqstream_consumer_lag{") and f'"{topic}"' in k)
            return lag, metric_sum(m, "seqstream_events_in_total")

        flood = threading.Thread(target=_flood, args=(broker.bootstrap, topic, FLOOD_S, stop, sent))
        t0 = time.monotonic()
        flood.start()
        try:
            while flood.is_alive():
                lag, n_in = lag_and_events()
                samples.append((time.monotonic() - t0, _rss_mb(pid), lag, n_in))
                time.sleep(0.5)
        finally:
            stop.set()
            flood.join()
        t_stop = time.monotonic() - t0
        total = sent[0]
        peak_flood_rss = max(s[1] for s in samples)
        deadline = time.monotonic() + DRAIN_S
        drained_at = None
        while time.monotonic() < deadline:
            lag, n_in = lag_and_events()
            samples.append((time.monotonic() - t0, _rss_mb(pid), lag, n_in))
            if n_in >= total and lag == 0:
                drained_at = time.monotonic() - t0
                break
            time.sleep(0.5)
        peak_lag = max(s[2] for s in samples)
        peak_rss = max(s[1] for s in samples)
        backlog_mb = peak_lag * (PAD + 60) / 2**20
        rate_in = total / t_stop
        rate_out = samples[-1][3] / samples[-1][0]
        print(
            f"backpressure: sent {total} records ({total * (PAD + 60) / 2**20:.0f} MB) in {t_stop:.1f} s "
            f"({rate_in:,.0f}/s); worker {rate_out:,.0f}/s overall; peak lag {peak_lag:,.0f} records "
            f"(~{backlog_mb:.0f} MB); RSS base {base:.0f} MB, peak {peak_rss:.0f} MB "
            f"(+{peak_rss - base:.0f} MB, during the flood +{peak_flood_rss - base:.0f} MB); "
            f"drained {'after %.1f s' % (drained_at - t_stop) if drained_at else f'NOT within {DRAIN_S:.0f} s'}"
        )
        assert drained_at is not None, f"lag did not drain {DRAIN_S:.0f} s after the flood (last: {samples[-1]})"
        assert peak_lag > 0.3 * total, "the worker kept up: the flood did not exceed its capacity"
        assert peak_rss - base < RSS_GROWTH_BOUND_MB, f"RSS grew by {peak_rss - base:.0f} MB under the flood"
        assert backlog_mb > 1.5 * RSS_GROWTH_BOUND_MB, "backlog too small to show that memory is bounded"
        # every input was processed: one prediction each (counted by the worker)
        m = w.metrics()
        assert metric_sum(m, "seqstream_events_in_total") == total
        out = metric_sum(m, "seqstream_events_out_total")
        assert out >= total, f"{out} outputs for {total} inputs"
    finally:
        w.stop()
