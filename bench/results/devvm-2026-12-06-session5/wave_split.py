"""Experiment: thread CPU µs per wave of one source's pipeline, split into its parts (docs/benchmarks.md,
"Compiled per-wave loops"). The simulator's batches of B streams through ``SourcePipeline.process``;
400 warm batches, then 400 timed ones.

    .venv/bin/python bench/results/devvm-2026-12-06-session5/wave_split.py ticks 4
    SEQSTREAM_SCORER_KERNEL=0 SEQSTREAM_TICKS_KERNEL=0 .venv/bin/python ...   # the torch code
"""

import collections
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch

from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings
from stream.sources.simulator import Simulator

torch.set_num_threads(1)
src = sys.argv[1] if len(sys.argv) > 1 else "ticks"
b = int(sys.argv[2]) if len(sys.argv) > 2 else 4
settings = Settings(device="cpu", sources=(src,))
runner = build_runner(settings, src)
features = runner.features
acc: collections.defaultdict[str, int] = collections.defaultdict(int)
cnt: collections.defaultdict[str, int] = collections.defaultdict(int)


def wrap(obj: Any, name: str, key: str) -> None:
    fn: Callable[..., Any] = getattr(obj, name)

    def timed(*a: Any, **k: Any) -> Any:
        t = time.thread_time_ns()
        try:
            return fn(*a, **k)
        finally:
            acc[key] += time.thread_time_ns() - t
            cnt[key] += 1

    setattr(obj, name, timed)


if hasattr(features, "featurise"):
    wrap(features, "featurise", "rules")
wrap(features.scorer, "pre", "scorer.pre")
wrap(features.scorer, "post", "scorer.post")
wrap(runner._step_model, "step", "model.step")
wrap(runner.slab, "gather", "gather")
wrap(runner.slab, "scatter", "scatter")
wrap(runner, "_wave", "wave")
pipe = SourcePipeline(src, runner, settings, Metrics())
sim = Simulator(src, b, seed=1)
t0 = time.time() - 1e5
offset = 0


def records(k: int) -> list[SimpleNamespace]:
    global offset
    out = []
    for e in sim.round(t0 + k * 0.05):
        out.append(SimpleNamespace(topic="t", partition=0, offset=offset, key=e.key(), value=e.value(), timestamp=0))
        offset += 1
    return out


for k in range(400):
    pipe.process(records(k), now=time.time())
acc.clear()
cnt.clear()
t = time.thread_time_ns()
n = 0
for k in range(400, 800):
    recs = records(k)
    n += len(recs)
    pipe.process(recs, now=time.time())
total = time.thread_time_ns() - t
waves = cnt["wave"]
print(src, "events", n, "waves", waves, "total us/batch", total / 400 / 1e3, "us per wave:")
for key, v in acc.items():
    print(f"  {key:12s} {v / max(waves, 1) / 1e3:8.1f} us/wave  calls {cnt[key]}")
