"""Experiment: the ticks rules under torch.compile vs TorchScript, µs per call and the state difference."""

import logging
import sys
import time

import torch

sys.path.insert(0, "/work/main/bench")
from source_batch_cost import _records

import models.ticks as mt
from stream.metrics import Metrics
from stream.pipeline import SourcePipeline, build_runner
from stream.settings import Settings

torch.set_num_threads(1)
logging.disable(logging.WARNING)
settings = Settings(device="cpu", sources=("ticks",))
pipe = SourcePipeline("ticks", build_runner(settings, "ticks"), settings, Metrics())
runner = pipe.runner if hasattr(pipe, "runner") else pipe._runner
for rr in _records("ticks", 64, 200, time.time() - 3600):
    pipe.process(rr, now=time.time())
feat = runner.features


def wrapped(s, x, dt, close, *a):
    s2 = s.clone()
    out = mt._tick_rules(s2, x, dt, close, *a)
    return out, s2


cfn = torch.compile(wrapped, dynamic=True)


def run_script(s, x, dt):
    with torch.jit.optimized_execution(False):
        return mt._RULES(s, x, dt, feat._close_on(x.device), *feat._rule_args)


def run_comp(s, x, dt):
    out, s2 = cfn(s, x, dt, feat._close_on(x.device), *feat._rule_args)
    s.copy_(s2)
    return out


def bench(f, B, n=300):
    idx = torch.arange(B)
    _, a0 = runner.slab.gather(idx)
    x = torch.tensor([[100.0, 9.0, 99.9, 100.1]]).repeat(B, 1) * (1 + 0.001 * torch.randn(B, 1))
    dt = torch.ones(B)
    with torch.inference_mode():
        for _ in range(10):
            f(a0[:, feat._o : feat._o + mt._OWN].clone(), x, dt)
        t = time.thread_time()
        for _ in range(n):
            s = a0[:, feat._o : feat._o + mt._OWN].clone()
            f(s, x, dt)
        return (time.thread_time() - t) / n * 1e6


for B in (1, 8, 32, 256):
    print("script", B, round(bench(run_script, B)))
t = time.time()
for B in (1, 8, 32, 256):
    print("compiled", B, round(bench(run_comp, B)), f"{time.time() - t:.1f}s")
# equality
idx = torch.arange(32)
_, a0 = runner.slab.gather(idx)
x = torch.tensor([[100.0, 9.0, 99.9, 100.1]]).repeat(32, 1) * (1 + 0.01 * torch.randn(32, 1))
dt = torch.rand(32) * 5
with torch.inference_mode():
    s1 = a0[:, feat._o : feat._o + mt._OWN].clone()
    s2 = s1.clone()
    o1 = run_script(s1, x, dt)
    o2 = run_comp(s2, x, dt)
print(
    "state diff",
    (s1 - s2).abs().nan_to_num().max().item(),
    [(a.float() - b.float()).abs().nan_to_num().max().item() for a, b in zip(o1, o2)],
)
