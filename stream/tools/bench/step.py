"""The model step cells, timed: stream-steps per second of one call on ``B`` resident streams.

* :func:`bench_batched`: ``Runner.process(Batch)`` with ``B`` distinct resident streams per call (slot
  map, gather, scorer, model step, scatter, one host->device and one device->host copy,
  Results/alerts). The Batch objects are built before the timed loop; their shared ``ts`` array is
  advanced in place each call so no event is rejected.
* :func:`bench_model_step`: device work only: ``slab.gather`` + ``scorer.pre`` + ``model.step`` +
  ``scorer.post`` + ``slab.scatter`` with a fixed index tensor, under ``torch.inference_mode()``;
  no host bookkeeping, no copies.

Each cell is time-boxed (:func:`measure`: warm up, calibrate, then ``REPEATS`` timed repeats). With a
``clean_share`` (on CPU) a repeat counts only if the process had at least that share of a core (CPU
time / wall time), and a busy machine gets extra repeats (up to ``MAX_REPEATS``); without one every
repeat counts. On CUDA the clock is read only after ``torch.cuda.synchronize()``.

``seqstream bench`` runs both cells (its ``model_step`` scenario); ``bench/step_bench.py`` runs them
beside its per-event baselines, on top of :func:`measure` and the helpers here. This module loads
torch: import it where the cells run, not at start-up.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models import Batch, NetConfig, RecurrentForecaster, Runner, ScoringConfig

__all__ = [
    "MAX_REPEATS",
    "REPEATS",
    "Timing",
    "bench_batched",
    "bench_model_step",
    "check_accepted",
    "measure",
    "time_calls",
    "timed_repeats",
    "untrained_runner",
]

REPEATS = 5  # timed repeats per cell; the median of the clean ones is reported
MAX_REPEATS = 12  # on a busy machine, repeat until REPEATS clean ones (or this many in all)


@dataclass
class Timing:
    wall: list[float]  # wall seconds per call, one entry per timed repeat
    cpu: list[float]  # process CPU seconds per call, same repeats
    calls: int  # calls timed in all
    device: torch.device
    # a repeat is "clean" when the process got at least this share of one core (CPU time / wall
    # time); None: every repeat counts (and always on CUDA, where the host waits on the device)
    clean_share: float | None = None

    def clean(self) -> list[bool]:
        if self.clean_share is None or self.device.type != "cpu":
            return [True] * len(self.wall)
        return [c >= self.clean_share * w for w, c in zip(self.wall, self.cpu)]

    def reported(self) -> list[float]:
        """Wall seconds per call of the clean repeats (all repeats when none was clean)."""
        ok = [w for w, c in zip(self.wall, self.clean()) if c]
        return ok or self.wall


# -- timing ---------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], n: int, device: torch.device) -> tuple[float, float]:
    """Wall and process-CPU seconds of ``n`` calls (CPU < wall means the box was busy elsewhere)."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def timed_repeats(
    timed: Callable[[], tuple[float, float]], n: int, device: torch.device, clean_share: float | None = None
) -> Timing:
    """Run ``timed`` (``n`` calls -> wall, CPU seconds) ``REPEATS`` times, more while too few are clean."""
    t = Timing([], [], 0, device, clean_share)
    gc.collect()  # once per cell: a full collection costs tens of ms with torch loaded
    gc.disable()
    try:
        while len(t.wall) < MAX_REPEATS and (len(t.wall) < REPEATS or sum(t.clean()) < REPEATS):
            w, c = timed()
            t.wall.append(w / n)
            t.cpu.append(c / n)
            t.calls += n
    finally:
        gc.enable()
    return t


def measure(fn: Callable[[], Any], device: torch.device, budget_s: float, clean_share: float | None = None) -> Timing:
    """Seconds per call of ``fn`` in ``REPEATS`` repeats within about ``budget_s`` seconds (more if busy)."""
    # warm-up: at least 2 calls and ~10% of the budget (first calls allocate / assign slots)
    per_call = time_calls(fn, 2, device)[0] / 2
    extra = min(int(0.1 * budget_s / max(per_call, 1e-9)), 10_000)
    if extra > 0:
        per_call = time_calls(fn, extra, device)[0] / extra
    n = max(1, math.ceil(0.9 * budget_s / REPEATS / max(per_call, 1e-9)))
    return timed_repeats(lambda: time_calls(fn, n, device), n, device, clean_share)


# -- the cells ------------------------------------------------------------------------------------
def untrained_runner(cell: str, hidden: int, device: torch.device, capacity: int) -> Runner:
    """A Runner over a seeded untrained model with the plain scoring, room for ``capacity`` streams."""
    torch.manual_seed(0)
    model = RecurrentForecaster(NetConfig(cell=cell, input_size=1, hidden_size=hidden))  # type: ignore[arg-type]
    return Runner(model, ScoringConfig(), device=device, capacity=capacity, max_capacity=capacity)


def check_accepted(runner: Runner, what: str) -> None:
    """Refuse a cell whose events the runner rejected: it would have timed nothing."""
    if runner.rejected:
        raise RuntimeError(f"{what}: {runner.rejected} events rejected; the benchmark would be measuring nothing")


def _measure_checked(
    call: Callable[[], None],
    runner: Runner,
    device: torch.device,
    budget_s: float,
    what: str,
    clean_share: float | None = None,
) -> Timing:
    timing = measure(call, device, budget_s, clean_share)
    check_accepted(runner, what)
    return timing


def bench_batched(
    cell: str, hidden: int, batch: int, device: torch.device, budget_s: float, clean_share: float | None = None
) -> Timing:
    """``Runner.process`` on ``batch`` distinct resident streams per call."""
    runner = untrained_runner(cell, hidden, device, batch)
    rng = np.random.default_rng(batch)
    ids = [f"s{i}" for i in range(batch)]
    ts = np.zeros(batch)  # shared by every Batch below, advanced in place
    batches = [Batch(ids, ts, rng.standard_normal((batch, 1)).astype(np.float32)) for _ in range(4)]
    state = {"k": 0}

    def call() -> None:
        k = state["k"]
        ts[:] += 1.0  # the array every Batch shares, advanced in place
        runner.process(batches[k & 3])
        state["k"] = k + 1

    return _measure_checked(call, runner, device, budget_s, f"batched B={batch}", clean_share)


def bench_model_step(
    cell: str, hidden: int, batch: int, device: torch.device, budget_s: float, clean_share: float | None = None
) -> Timing:
    """The device work of one step on ``batch`` resident streams: gather, scorer, model step, scatter."""
    runner = untrained_runner(cell, hidden, device, batch)
    runner.slab.assign([f"s{i}" for i in range(batch)])  # resident streams, as after a first batch
    slab, scorer, model = runner.slab, runner.scorer, runner.model
    gen = torch.Generator().manual_seed(batch)
    idx = torch.randperm(batch, generator=gen).to(device)  # [B] fixed, distinct slots
    x = torch.randn(batch, 1, generator=gen).to(device)  # [B, 1]

    def call() -> None:
        with torch.inference_mode():
            h, aux = slab.gather(idx)  # [B, L, K, H], [B, A]
            x_norm, err = scorer.pre(aux, x)  # [B, 1], [B]
            forecast, h = model.step(x_norm, h)  # [B, 1], [B, L, K, H]
            scorer.post(aux, err, forecast)
            slab.scatter(idx, h, aux)

    return measure(call, device, budget_s, clean_share)
