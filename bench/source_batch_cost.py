"""Each source's fixed cost per micro-batch on the CPU: ``SourcePipeline.process`` (decode -> shipped
model and scoring -> encode -> explorer) on batches of B records of B distinct warm streams, no Kafka.

    .venv/bin/python bench/source_batch_cost.py                     # batches of 1, 8, 32, 128; one thread
    .venv/bin/python bench/source_batch_cost.py --batches 32 --threads 2

Prints one JSON line per (source, batch) and a Markdown table: µs per batch and per event (median of
``--repeats`` timed batches, CPU time of the thread, after ``--warm`` rounds that make every stream
warm). At real-time rates a worker's batches are small, so this fixed cost, not the saturated
drain's per-event cost, is what it spends (issue 17: the demo mix).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from types import SimpleNamespace

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


def _cost(source: str, batch: int, warm: int, repeats: int) -> dict[str, float | int | str]:
    from stream.metrics import Metrics
    from stream.pipeline import SourcePipeline, build_runner
    from stream.settings import Settings

    settings = Settings(device="cpu", sources=(source,))
    pipe = SourcePipeline(source, build_runner(settings, source), settings, Metrics())
    t0 = time.time() - 3600.0
    rounds = _records(source, batch, warm + repeats, t0)
    flat = [r for rr in rounds for r in rr]
    i = 0
    for _ in range(warm):  # every stream warm (scorer past its warm-up), slab grown
        pipe.process(flat[i : i + batch], now=time.time())
        i += batch
    times = []
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
    med = statistics.median(times)
    us = med * 1e6
    return {"source": source, "batch": batch, "us_per_batch": round(us, 1), "us_per_event": round(us / batch, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", nargs="+", default=["sensors", "speech", "ticks", "machines", "audio"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warm", type=int, default=300, help="batches before timing")
    p.add_argument("--repeats", type=int, default=200, help="timed batches")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import logging

    logging.disable(logging.WARNING)
    rows = []
    for s in a.sources:
        for b in a.batches:
            r = _cost(s, b, a.warm, a.repeats)
            print(json.dumps(r), flush=True)
            rows.append(r)
    print(f"\n| source | {' | '.join(f'batch {b}: µs/batch (µs/event)' for b in a.batches)} |")
    print("|---|" + "---:|" * len(a.batches))
    for s in a.sources:
        cells = [f"{r['us_per_batch']:,.0f} ({r['us_per_event']})" for r in rows if r["source"] == s]
        print(f"| {s} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
