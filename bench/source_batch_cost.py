"""Each source's fixed cost per micro-batch on the CPU: ``SourcePipeline.process`` (decode -> shipped
model and scoring -> encode -> explorer) on batches of B records of B distinct warm streams, no Kafka.

    .venv/bin/python bench/source_batch_cost.py                     # batches of 1, 8, 32, 128; one thread
    .venv/bin/python bench/source_batch_cost.py --batches 32 --threads 2
    .venv/bin/python bench/source_batch_cost.py --batches 32 4096 --phases   # where a batch's time goes

Prints one JSON line per (source, batch) and a Markdown table: µs per batch and per event (median of
``--repeats`` timed batches, CPU time of the thread, after ``--warm`` rounds that make every stream
warm). At real-time rates a worker's batches are small, so this fixed cost, not the saturated
drain's per-event cost, is what it spends (issue 17: the demo mix). ``--phases`` adds the thread CPU
time per event of each stage (decode, the Runner, the explorer, encode, the outputs; "other" is the
rest of ``process``), summed over the timed batches.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch


def _records(source: str, n_streams: int, rounds: int, t0: float) -> list[list[SimpleNamespace]]:
    from stream.sources import SOURCES
    from stream.sources.simulator import Simulator

    sim = Simulator(source, n_streams, seed=7)
    out = []
    off = 0
    topic = SOURCES[source].topic
    for k in range(rounds):
        recs = []
        for e in sim.round(t0 + k * 0.05):
            rec = SimpleNamespace(topic=topic, partition=0, offset=off, key=e.key(), value=e.value(), timestamp=0)
            recs.append(rec)
            off += 1
        out.append(recs)
    return out


def _timed(acc: dict[str, float], name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def g(*a: Any, **k: Any) -> Any:
        t = time.thread_time()
        try:
            return f(*a, **k)
        finally:
            acc[name] += time.thread_time() - t

    return g


def _cost(source: str, batch: int, warm: int, repeats: int, phases: bool = False) -> dict[str, Any]:
    import stream.pipeline as sp
    from stream.metrics import Metrics
    from stream.pipeline import SourcePipeline, build_runner
    from stream.settings import Settings

    settings = Settings(device="cpu", sources=(source,))
    acc: collections.defaultdict[str, float] = collections.defaultdict(float)
    saved = sp.decode_batch, sp.encode_predictions, sp.Output.many
    if phases:  # the stages SourcePipeline.process calls, wrapped for this measurement only
        sp.decode_batch = _timed(acc, "decode", sp.decode_batch)
        sp.encode_predictions = _timed(acc, "encode", sp.encode_predictions)
        sp.Output.many = _timed(acc, "outputs", sp.Output.many)  # type: ignore[method-assign]
    try:
        return _measure(
            SourcePipeline(source, build_runner(settings, source), settings, Metrics()),
            source,
            batch,
            warm,
            repeats,
            acc,
            phases,
        )
    finally:
        sp.decode_batch, sp.encode_predictions, sp.Output.many = saved  # type: ignore[method-assign]


def _measure(
    pipe: Any, source: str, batch: int, warm: int, repeats: int, acc: dict[str, float], phases: bool
) -> dict[str, Any]:
    if phases:
        pipe.runner.process = _timed(acc, "runner", pipe.runner.process)
        if pipe.explorer is not None:
            pipe.explorer.record = _timed(acc, "explorer", pipe.explorer.record)
    t0 = time.time() - 3600.0
    n_rounds = warm + repeats
    while True:  # a round of a few ticks symbols can hold fewer events than symbols: make enough rounds
        flat = [r for rr in _records(source, batch, n_rounds, t0) for r in rr]
        if len(flat) >= (warm + repeats) * batch or n_rounds >= 64 * (warm + repeats):
            break
        n_rounds *= 2
    i = 0
    for _ in range(warm):  # every stream warm (scorer past its warm-up), slab grown
        pipe.process(flat[i : i + batch], now=time.time())
        i += batch
    times = []
    acc.clear()
    for _ in range(repeats):
        chunk = flat[i : i + batch]
        if len(chunk) < batch:
            break
        # CPU time of this thread (torch runs one thread here): what the batch costs, not what other
        # processes on a shared host took from it
        t = time.thread_time()
        pipe.process(chunk, now=time.time())
        times.append(time.thread_time() - t)
        i += batch
    if not times:
        raise SystemExit(f"{source}: the simulation gave too few events for one timed batch of {batch}")
    med = statistics.median(times)
    us = med * 1e6
    out: dict[str, Any] = {
        "source": source,
        "batch": batch,
        "us_per_batch": round(us, 1),
        "us_per_event": round(us / batch, 2),
    }
    if phases:  # sums over the timed batches, per event
        ev = batch * len(times)
        split = {k: v / ev * 1e6 for k, v in acc.items()}
        split["other"] = sum(times) / ev * 1e6 - sum(split.values())
        out["phases_us_per_event"] = {k: round(v, 2) for k, v in split.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", nargs="+", default=["sensors", "speech", "ticks", "machines", "audio"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warm", type=int, default=300, help="batches before timing")
    p.add_argument("--repeats", type=int, default=200, help="timed batches")
    p.add_argument("--phases", action="store_true", help="also split each batch's time into stages")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import logging

    logging.disable(logging.WARNING)
    rows = []
    for s in a.sources:
        for b in a.batches:
            r = _cost(s, b, a.warm, a.repeats, a.phases)
            print(json.dumps(r), flush=True)
            rows.append(r)
    print(f"\n| source | {' | '.join(f'batch {b}: µs/batch (µs/event)' for b in a.batches)} |")
    print("|---|" + "---:|" * len(a.batches))
    for s in a.sources:
        cells = [f"{r['us_per_batch']:,.0f} ({r['us_per_event']})" for r in rows if r["source"] == s]
        print(f"| {s} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
