"""Experiment: a ticks batch (SourcePipeline.process) with the rules from the AOTInductor package that
aoti_ticks_rules.py wrote (/tmp/p17/rules.pt2) instead of TorchScript; µs per batch, one thread."""

import sys
import time

import torch

import models.ticks as mt

sys.path.insert(0, "bench")
from source_batch_cost import _cost

torch.set_num_threads(1)
for b in (1, 32):
    print("script", _cost("ticks", b, 100, 100))
fn = torch._inductor.aoti_load_package("/tmp/p17/rules.pt2")


def aot_rules(s, x, dt, close, *_args):  # the package has the shipped rule constants baked in
    if dt is None:
        dt = torch.full_like(x[:, 0], float("inf"))
    *out, s2 = fn(s.contiguous(), x, dt, close)
    s.copy_(s2)
    return tuple(out)


mt._RULES = aot_rules
t = time.time()
for b in (1, 32):
    print("aot", _cost("ticks", b, 100, 100))
