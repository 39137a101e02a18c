"""``SourcePipeline.process`` in process (decode -> Runner -> encode -> explorer), no Kafka.

10k resident sensor streams of the bench's GRU-64, batches of 1/80/500/4096 records, one thread:

    .venv/bin/python bench/pipeline_bench.py

``--rev REV`` is a same-process A/B: a second pipeline runs ``stream/pipeline.py``,
``stream/codec.py`` and the explorer's ``RingStore`` of git revision ``REV`` (the model side is shared
code), both get the same batches, interleaved batch by batch, and the table adds the ratio:

    .venv/bin/python bench/pipeline_bench.py --rev HEAD --rounds 3

``--send`` also times handing each batch's outputs to ``BulkProducer.send_all`` (of ``REV``'s
``stream/engine.py`` for the A side) over a stand-in producer whose batches are aiokafka's own
``BatchBuilder`` (no broker): grouping by partition and ``BatchBuilder.append`` per record.
``--no-gc`` turns the cyclic garbage collector off while timing (see ``--help``).

``--profile N`` runs only one pipeline (the working tree's, or ``REV``'s with ``--rev``) on fresh
batches of N records for ``--seconds`` and prints µs per event: the target for a sampling profiler,
whose raw output ``bench/pyspy_shares.py`` splits into stages:

    .venv/bin/py-spy record -r 250 -f raw -o /tmp/p500.txt -- .venv/bin/python bench/pipeline_bench.py --profile 500
    .venv/bin/python bench/pyspy_shares.py /tmp/p500.txt
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream.tools.bench import drain as bench  # noqa: E402  # its _settings and _engine: the bench pipeline


def load_rev(rev: str) -> dict[str, Any]:
    """``stream/{codec,explorer,state_store,pipeline,engine}.py`` of a git revision, importing each other.

    ``state_store.py`` only where the revision has it (before the package ``stream/state``, whose
    modules both sides then share from the working tree).
    """
    mods = {}
    for name in ("codec", "explorer", "state_store", "pipeline", "engine"):
        path = f"stream/{name}.py"
        src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True)
        if src.returncode and name == "state_store":
            continue
        if src.returncode:
            raise SystemExit(
                f"--rev {rev}: no {path}; the loader takes revisions of the flat stream/ layout (7a7023d and "
                "before); for a later revision run this script in a git worktree of it and compare the numbers"
            )
        text = src.stdout.decode()
        for dep in ("codec", "explorer", "state_store", "pipeline"):
            text = text.replace(f"from .{dep} import", f"from ._ab_{dep}_{rev} import")
        mod = types.ModuleType(f"stream._ab_{name}_{rev}")
        mod.__package__ = "stream"
        mod.__file__ = str(ROOT / "stream" / f"{name}.py")  # the explorer reads its page next to it
        sys.modules[mod.__name__] = mod
        exec(compile(text, f"{rev}:{path}", "exec"), mod.__dict__)
        mods[name] = mod
    return mods


def pipeline(module: Any | None) -> Any:
    """The bench engine's sensors pipeline (GRU-64, seeded weights), of ``module`` if given."""
    eng = bench._engine(bench._settings("127.0.0.1:1", "in", "out", 4096), "gru", 64)
    pipe = eng.pipelines["sensors"]
    if module is None:
        return pipe
    return module.SourcePipeline("sensors", pipe.runner, pipe.settings, pipe.metrics)


class _Producer:
    """What ``BulkProducer.send_all`` calls on an aiokafka producer, with real ``BatchBuilder``s and no broker."""

    def __init__(self) -> None:
        self.records = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(8))

    def create_batch(self) -> Any:
        from aiokafka.producer.message_accumulator import BatchBuilder

        return BatchBuilder(1 << 20, 0)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        self.records += batch.record_count()
        batch.close()
        return None

    async def send(self, topic: str, value: bytes, *, key: bytes | None, partition: int) -> Any:
        self.records += 1
        return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", default=None, help="A/B against this git revision's pipeline, codec, explorer, engine")
    p.add_argument("--rounds", type=int, default=1, help="repeat the batch sizes (A/B: the order alternates)")
    p.add_argument("--batches", type=int, default=20, help="batches per size and round")
    p.add_argument("--send", action="store_true", help="also time BulkProducer.send_all (aiokafka BatchBuilder)")
    p.add_argument(
        "--no-gc",
        action="store_true",
        help="cyclic GC off while timing (gc.collect() untimed between batch sizes): a full collection costs "
        "~100 ms here and lands on whichever side happens to run, which swamps an A/B at batch 4096",
    )
    p.add_argument("--profile", type=int, default=0, metavar="N", help="only run batches of N (for a profiler)")
    p.add_argument("--seconds", type=float, default=25.0, help="how long --profile runs")
    p.add_argument("--freeze", action="store_true", help="gc.freeze() after the warm-up (--profile)")
    args = p.parse_args()
    torch.set_num_threads(1)
    from stream.engine import BulkProducer

    pipes = {"new": pipeline(None)}
    bulks = {"new": BulkProducer(_Producer())}
    if args.rev:
        mods = load_rev(args.rev)
        pipes = {args.rev: pipeline(mods["pipeline"]), **pipes}  # separate runners, identical weights
        bulks = {args.rev: mods["engine"].BulkProducer(_Producer()), **bulks}
    if args.profile:  # one pipeline only
        pipes = {n: p for n, p in pipes.items() if n == (args.rev or "new")}
    loop = asyncio.new_event_loop()

    def run(name: str, batch: list[SimpleNamespace]) -> Any:
        res = pipes[name].process(batch)
        if args.send:
            loop.run_until_complete(bulks[name].send_all(res.outputs))
        return res

    rng = np.random.default_rng(0)

    def recs(n: int, k0: int) -> list[SimpleNamespace]:
        out = []
        for i in range(n):
            sid = f"s-{(k0 + i) % 10000:07d}"
            value = orjson.dumps({"stream": sid, "ts": time.time(), "values": [float(rng.standard_normal())]})
            out.append(
                SimpleNamespace(
                    topic="in", partition=i % 8, offset=k0 + i, key=sid.encode(), value=value,
                    timestamp=int(time.time() * 1000), headers=(),
                )
            )  # fmt: skip
        return out

    k = 0
    for _ in range(10):  # every stream resident
        batch = recs(1000, k)
        for name in pipes:
            run(name, batch)
        k += 1000
    if args.profile:
        name = args.rev or "new"
        gc_s = [0.0, 0.0]  # time in cyclic GC collections, start of the running one

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                gc_s[1] = time.perf_counter()
            else:
                gc_s[0] += time.perf_counter() - gc_s[1]

        gc.callbacks.append(on_gc)
        if args.freeze:
            gc.freeze()  # everything alive after the warm-up: never traversed again
        spent_s, gc_in, events, end = 0.0, 0.0, 0, time.perf_counter() + args.seconds
        while time.perf_counter() < end:
            batch = recs(args.profile, k)  # fresh event times (a replayed batch would be out of order)
            k += args.profile
            if args.no_gc:  # collect outside the measured call
                gc.collect()
                gc.disable()
            g0, t0 = gc_s[0], time.perf_counter()
            run(name, batch)
            spent_s += time.perf_counter() - t0
            gc_in += gc_s[0] - g0
            events += args.profile
            gc.enable()
        print(
            f"{name}: batch {args.profile}: {spent_s / events * 1e6:.2f} µs per event over {events} events, "
            f"of which cyclic GC {gc_in / events * 1e6:.2f} µs"
        )
        return 0
    for r in range(args.rounds):
        for n in (1, 80, 500, 4096):
            batches = [recs(n, k + j * n) for j in range(args.batches)]
            k += args.batches * n
            spent = dict.fromkeys(pipes, 0.0)
            names = list(pipes) if r % 2 == 0 else list(pipes)[::-1]
            if args.no_gc:
                gc.collect()
                gc.disable()
            for b in batches:
                for name in names:
                    t0 = time.perf_counter()
                    run(name, b)
                    spent[name] += time.perf_counter() - t0
            gc.enable()
            cells = []
            for name, total in spent.items():
                dt = total / len(batches)
                label = f"{name}: " if args.rev else ""
                cells.append(f"{label}{dt * 1e3:7.2f} ms per batch, {dt / n * 1e6:7.1f} µs per event")
            ratio = f"  ({args.rev} / new = {spent[args.rev] / spent['new']:.2f}x)" if args.rev else ""
            print(f"batch {n:5d}: " + "  |  ".join(cells) + ratio, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
