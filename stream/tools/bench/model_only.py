"""The scenarios of ``seqstream bench`` without a broker: the model alone, in this process or a child.

* :func:`_per_event_rates`: the naive baselines, one ``Runner.process`` per event and re-running the
  last 64 steps per event;
* :func:`_step_cells`: the ``model_step`` and ``batched`` cells of :mod:`.step` by batch size;
* :func:`_memory_child`: N resident streams in a spawned child (a fresh process, so its RSS is the
  model's and the slab's alone): slab bytes per stream vs the raw tensor bytes, and RSS.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .drain import SHIPPED, _rss_mb, _runner


def _per_event_rates(cell: str, hidden: int, streams: int, n: int) -> dict[str, Any]:
    """Events/s of one ``Runner.process`` per event over ``streams`` resident streams (model work only, no
    Kafka), and of re-running the last 64 steps from a zero state per event (``model.forward``)."""
    import torch

    from models import Batch

    runner = _runner(cell, hidden, capacity=streams)
    model = runner.model
    ids = [f"s-{i:07d}" for i in range(streams)]
    runner.process(Batch(ids, np.zeros(streams), np.zeros((streams, 1), np.float32)))  # resident
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((n, 1, 1)).astype(np.float32)
    evs = [Batch([ids[(i * 7919) % streams]], np.array([1.0 + i]), xs[i]) for i in range(n)]
    t0 = time.perf_counter()
    for b in evs:
        runner.process(b)
    per_event = n / (time.perf_counter() - t0)
    # re-run the last 64 steps from a zero state per event
    m = max(50, n // 20)
    win = torch.randn(1, 64, 1)
    with torch.inference_mode():
        model(win)
        t0 = time.perf_counter()
        for _ in range(m):
            model(win)
        rerun = m / (time.perf_counter() - t0)
    return {"per_event_events_per_s": per_event, "rerun64_events_per_s": rerun, "events": n, "rerun_events": m}


def _memory_child(n: int, cell: str, hidden: int, q: Any) -> None:
    """Make ``n`` streams resident, put the slab's and the process's memory on ``q``."""
    from models import Batch

    rss0 = _rss_mb()
    runner = _runner(cell, hidden, capacity=n, max_capacity=n)
    model = runner.model
    rss_empty = _rss_mb()
    chunk = 65536
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        ids = [f"s-{i:07d}" for i in range(a, b)]
        runner.process(Batch(ids, np.zeros(b - a), np.zeros((b - a, 1), np.float32)))
    rss = _rss_mb()
    slab = runner.slab
    c = model.config
    raw = 4 * (c.num_layers * c.state_parts * c.hidden_size + runner.scorer.size)
    q.put(
        {
            "resident_streams": len(slab),
            "slab_bytes_per_stream": slab.bytes_per_stream,
            "raw_tensor_bytes_per_stream": raw,
            "slab_vs_raw": round(slab.bytes_per_stream / raw, 3),
            "slab_mb": round(slab.nbytes / 2**20, 1),
            "rss_mb": round(rss, 1),
            "rss_before_torch_model_mb": round(rss0, 1),
            "rss_growth_per_stream_bytes": round((rss - rss_empty) * 2**20 / n, 1),
        }
    )


def _step_cells(cell: str, hidden: int, batches: list[int], budget: float) -> list[dict[str, Any]]:
    """Stream-steps/s of the ``model_step`` and ``batched`` cells at each batch size, one thread."""
    import torch

    if cell == SHIPPED:  # the shipped detector's cell
        cell, hidden = "gru", 64

    # here, not at the top: .step loads torch, which the seqstream command line must not pay for at start-up
    from .step import bench_batched, bench_model_step

    torch.set_num_threads(1)
    dev = torch.device("cpu")
    out = []
    for b in batches:
        for mode, fn in (("model_step", bench_model_step), ("batched", bench_batched)):
            t = fn(cell, hidden, b, dev, budget)
            per_call = float(np.median(t.reported()))
            out.append({"mode": mode, "batch": b, "stream_steps_per_s": b / per_call})
    return out
