"""Eager vs torch.compile of Features.step (one wave) for a source's shipped runner, B rows."""

import logging
import sys
import time

import torch

sys.path.insert(0, "/work/main/bench")
from source_batch_cost import _records

from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings

torch.set_num_threads(1)
logging.disable(logging.WARNING)
source = sys.argv[1]
settings = Settings(device="cpu", sources=(source,))
pipe = SourcePipeline(source, build_runner(settings, source), settings, Metrics())
runner = pipe.runner if hasattr(pipe, "runner") else pipe._runner
rounds = _records(source, 64, 300, time.time() - 3600)
for rr in rounds:
    pipe.process(rr, now=time.time())
feat, model = runner.features, runner._step_model
print("resident", len(runner.slab._slot_of), "aux", feat.aux_size)
p = feat.scorer.n_phases
F = runner.n_features + p


def fn(aux, x, h, dt):
    return feat.step(model, aux, x, h, dt)


def bench(f, B, n=300):
    idx = torch.arange(B)
    h0, a0 = runner.slab.gather(idx)
    x = torch.randn(B, F).abs()
    dt = torch.ones(B) if feat.needs_dt else None
    with torch.inference_mode():
        for _ in range(20):
            f(a0.clone(), x, h0, dt)
        t = time.thread_time()
        for _ in range(n):
            f(a0.clone(), x, h0, dt)
        return (time.thread_time() - t) / n * 1e6


for B in (1, 32, 256):
    print(source, "eager B", B, round(bench(fn, B)), "us")
mode = sys.argv[2] if len(sys.argv) > 2 else "default"
t = time.time()
cf = torch.compile(fn, dynamic=(mode != "static"), mode=None)
try:
    for B in (1, 32, 256):
        print(
            source,
            "compiled B",
            B,
            round(bench(cf, B)),
            "us",
            "(first-call incl. compile %.1fs)" % (time.time() - t) if B == 1 else "",
        )
    # equality
    idx = torch.arange(32)
    h0, a0 = runner.slab.gather(idx)
    x = torch.randn(32, F).abs()
    dt = torch.ones(32) if feat.needs_dt else None
    with torch.inference_mode():
        a1, a2 = a0.clone(), a0.clone()
        o1, h1 = fn(a1, x, h0, dt)
        o2, h2 = cf(a2, x, h0, dt)
    print(
        "max diff out",
        (o1 - o2).abs().nan_to_num().max().item(),
        "h",
        (h1 - h2).abs().max().item(),
        "aux",
        (a1 - a2).abs().nan_to_num().max().item(),
        "nan eq",
        torch.equal(o1.isnan(), o2.isnan()),
    )
except Exception as e:
    print("compile failed:", type(e).__name__, str(e)[:2000])
from torch.profiler import profile  # noqa: E402

idx = torch.arange(256)
h0, a0 = runner.slab.gather(idx)
x = torch.randn(256, F).abs()
dt = torch.ones(256) if feat.needs_dt else None
with torch.inference_mode(), profile() as prof:
    for _ in range(20):
        cf(a0.clone(), x, h0, dt)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
