"""Experiment: the ticks rules as an AOTInductor package vs TorchScript, µs per call (docs/benchmarks.md)."""

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
runner = pipe.runner
for rr in _records("ticks", 256, 30, time.time() - 3600):
    pipe.process(rr, now=time.time())
feat = runner.features
args = feat._rule_args


class Rules(torch.nn.Module):
    def forward(self, s, x, dt, close):
        s2 = s.clone()
        out = mt._tick_rules(s2, x, dt, close, *args)
        return (*out, s2)


B = 8
_, a0 = runner.slab.gather(torch.arange(B))
s = a0[:, feat._o : feat._o + mt._OWN].contiguous()
x = torch.tensor([[100.0, 9.0, 99.9, 100.1]]).repeat(B, 1)
dt = torch.ones(B)
close = feat._close_on(x.device)
b = torch.export.Dim("b", min=1, max=1 << 16)
t = time.time()
ep = torch.export.export(Rules(), (s, x, dt, close), dynamic_shapes=({0: b}, {0: b}, {0: b}, None))
path = torch._inductor.aoti_compile_and_package(ep, package_path="/tmp/p17/rules.pt2")
print("aot compile %.1fs" % (time.time() - t))
t = time.time()
fn = torch._inductor.aoti_load_package("/tmp/p17/rules.pt2")
print("load %.2fs" % (time.time() - t))


def bench(f, B, n=300):
    _, a0 = runner.slab.gather(torch.arange(B))
    x = torch.tensor([[100.0, 9.0, 99.9, 100.1]]).repeat(B, 1) * (1 + 0.001 * torch.randn(B, 1))
    dt = torch.ones(B)
    with torch.inference_mode():
        for _ in range(10):
            f(a0[:, feat._o : feat._o + mt._OWN].contiguous(), x, dt)
        t = time.thread_time()
        for _ in range(n):
            f(a0[:, feat._o : feat._o + mt._OWN].contiguous(), x, dt)
        return (time.thread_time() - t) / n * 1e6


def run_script(s, x, dt):
    with torch.jit.optimized_execution(False):
        return mt._RULES(s, x, dt, close, *args)


def run_aot(s, x, dt):
    return fn(s, x, dt, close)


for B in (1, 8, 32, 64, 256):
    print(B, "script", round(bench(run_script, B)), "aot", round(bench(run_aot, B)))
