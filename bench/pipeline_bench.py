"""``SourcePipeline.process`` in process (decode -> Runner -> encode -> explorer), no Kafka.

10k resident sensor streams of the bench's GRU-64, batches of 1/80/500/4096 records, one thread:

    .venv/bin/python bench/pipeline_bench.py

``--rev REV`` is a same-process A/B: a second pipeline runs ``stream/pipeline.py`` and
``stream/codec.py`` of git revision ``REV`` (the model side is shared code), both get the same
batches, interleaved batch by batch, and the table adds the ratio:

    .venv/bin/python bench/pipeline_bench.py --rev HEAD --rounds 3
"""

from __future__ import annotations

import argparse
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

from stream import bench  # noqa: E402


def load_rev(rev: str) -> Any:
    """``stream/pipeline.py`` of a git revision, importing that revision's ``stream/codec.py``."""
    mods = {}
    for name in ("codec", "pipeline"):
        src = subprocess.run(["git", "show", f"{rev}:stream/{name}.py"], cwd=ROOT, check=True, capture_output=True)
        text = src.stdout.decode().replace("from .codec import", f"from ._ab_codec_{rev} import")
        mod = types.ModuleType(f"stream._ab_{name}_{rev}")
        mod.__package__ = "stream"
        sys.modules[mod.__name__] = mod
        exec(compile(text, f"{rev}:stream/{name}.py", "exec"), mod.__dict__)
        mods[name] = mod
    return mods["pipeline"]


def pipeline(module: Any | None) -> Any:
    """The bench engine's sensors pipeline (GRU-64, seeded weights), of ``module`` if given."""
    eng = bench._engine(bench._settings("127.0.0.1:1", "in", "out", 4096), "gru", 64)
    pipe = eng.pipelines["sensors"]
    if module is None:
        return pipe
    return module.SourcePipeline("sensors", pipe.runner, pipe.settings, pipe.metrics)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", default=None, help="A/B against this git revision's pipeline and codec")
    p.add_argument("--rounds", type=int, default=1, help="repeat the batch sizes (A/B: the order alternates)")
    args = p.parse_args()
    torch.set_num_threads(1)
    pipes = {"new": pipeline(None)}
    if args.rev:
        pipes = {args.rev: pipeline(load_rev(args.rev)), **pipes}  # separate runners, identical weights
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
        for pipe in pipes.values():
            pipe.process(batch)
        k += 1000
    for r in range(args.rounds):
        for n in (1, 80, 500, 4096):
            batches = [recs(n, k + j * n) for j in range(20)]
            k += 20 * n
            spent = dict.fromkeys(pipes, 0.0)
            names = list(pipes) if r % 2 == 0 else list(pipes)[::-1]
            for b in batches:
                for name in names:
                    t0 = time.perf_counter()
                    pipes[name].process(b)
                    spent[name] += time.perf_counter() - t0
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
