"""The ticks rules run under TorchScript (``models.ticks._RULES``): bitwise the same as the Python function.

TorchScript runs the same ATen kernels, but it parses some Python differently (``~a & b`` is
``~(a & b)`` there), so the scripted function is checked against the eager one on every output and
on the state it updates, over ticks that open and resolve every alert kind.
"""

from __future__ import annotations

import pytest
import torch

import models.ticks as ticks
from models.nets import NetConfig
from models.scoring_config import ScoringConfig

from .conftest import tick_states, tick_wave


def _features() -> ticks.TickFeatures:
    cfg = NetConfig(input_size=7, output_size=2, hidden_size=8, inputs="ticks", residual=False)
    return ticks.TickFeatures(cfg, ScoringConfig())


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit, NaN where NaN."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))


def test_scripted_rules_equal_the_python_function_bitwise() -> None:
    f = _features()
    assert isinstance(ticks._RULES, torch.jit.ScriptFunction)  # the worker's path is the scripted one
    g = torch.Generator().manual_seed(3)
    b = 8
    s_eager, s_script, price = tick_states(f, b)  # [b, S], [b, S], [b]
    kinds_opened = torch.zeros(5)  # [5]
    for step in range(600):
        price, x, dt = tick_wave(step, b, price, g)
        close = f._close_on(x.device)
        out_e = ticks._tick_rules(s_eager, x, dt if step else None, close, *f._rule_args)
        out_s = ticks._RULES(s_script, x, dt if step else None, close, *f._rule_args)
        for k, (e, s) in enumerate(zip(out_e, out_s, strict=True)):
            assert _same(e, s), (step, k)
        assert _same(s_eager, s_script), step
        kinds_opened += out_e[5].clamp_min(0).sum(0)  # [5] opens per kind (trans > 0)
    assert (kinds_opened > 0).all(), kinds_opened  # every rule fired at least once: all paths compared


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_scripted_rules_on_cuda_equal_the_cpu() -> None:
    """The worker's ticks path on a GPU: the same scripted function on CUDA tensors, within 1e-4 of the CPU."""
    f = _features()
    g = torch.Generator().manual_seed(5)
    b = 16
    s_cpu = f.init_row().unsqueeze(0).repeat(b, 1)[:, f._o : f._o + ticks._OWN].clone()  # [b, S]
    s_gpu = s_cpu.cuda()  # [b, S]
    price = torch.full((b,), 50.0)  # [b]
    for step in range(300):
        price = price * torch.exp(torch.randn(b, generator=g) * 0.002)  # [b]
        x = torch.stack((price, torch.rand(b, generator=g) * 50, price - 0.01, price + 0.01), 1)  # [b, 4]
        dt = torch.rand(b, generator=g) + 0.1  # [b]
        out_c = ticks._RULES(s_cpu, x, dt, f._close_on(x.device), *f._rule_args)
        xg, dg = x.cuda(), dt.cuda()
        out_g = ticks._RULES(s_gpu, xg, dg, f._close_on(xg.device), *f._rule_args)
        for k, (c, d) in enumerate(zip(out_c, out_g, strict=True)):
            if c.dtype.is_floating_point:
                torch.testing.assert_close(d.cpu(), c, atol=1e-4, rtol=1e-4, equal_nan=True, msg=f"{step}/{k}")
            else:
                assert torch.equal(d.cpu(), c), (step, k)
