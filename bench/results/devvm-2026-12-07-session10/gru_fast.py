"""Experiment: ``torch.gru_cell`` on the CPU against the same math with contiguous gate buffers.

ATen's CPU GRU cell runs its gate arithmetic in place on strided thirds of the gate matrices. This
writes the reset and update gates into one contiguous buffer instead, checks bitwise equality with
``torch.gru_cell`` over batch sizes, and times both (ms per call, median; one thread).

    .venv/bin/python bench/results/devvm-2026-12-07-session10/gru_fast.py
"""

import time
from collections.abc import Callable

import torch
import torch.nn.functional as fn


def gru(
    x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    n_h = h.shape[1]
    gi = fn.linear(x, w_ih, b_ih)  # [B, 3H]
    gh = fn.linear(h, w_hh, b_hh)  # [B, 3H]
    rz = torch.add(gh[:, : 2 * n_h], gi[:, : 2 * n_h]).sigmoid_()  # [B, 2H]
    new = torch.mul(gh[:, 2 * n_h :], rz[:, :n_h]).add_(gi[:, 2 * n_h :]).tanh_()  # [B, H]
    return (h - new).mul_(rz[:, n_h:]).add_(new)  # [B, H]


def ms(f: Callable[[], object], n: int = 100) -> float:
    with torch.inference_mode():
        for _ in range(10):
            f()
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
    return round(sorted(ts)[n // 2] * 1e3, 3)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for n_h, n_in in ((64, 1), (128, 1), (64, 3), (8, 3), (32, 1), (128, 16)):
        w = (torch.randn(3 * n_h, n_in), torch.randn(3 * n_h, n_h) * 0.2, torch.randn(3 * n_h), torch.randn(3 * n_h))
        diffs = []
        for b in (1, 2, 3, 5, 7, 16, 31, 33, 100, 1000, 4096):
            x, h = torch.randn(b, n_in) * 3, torch.randn(b, n_h)
            with torch.inference_mode():
                if not torch.equal(torch.gru_cell(x, h, *w), gru(x, h, *w)):
                    diffs.append(b)
        x, h = torch.randn(4096, n_in), torch.randn(4096, n_h)
        big = ms(lambda x=x, h=h, w=w: torch.gru_cell(x, h, *w)), ms(lambda x=x, h=h, w=w: gru(x, h, *w))
        xs, hs = x[:32], h[:32]
        small = ms(lambda x=xs, h=hs, w=w: torch.gru_cell(x, h, *w)), ms(lambda x=xs, h=hs, w=w: gru(x, h, *w))
        print(
            f"H {n_h} in {n_in}: {'bitwise equal' if not diffs else f'differs at batch {diffs}'}; batch 4096: "
            f"gru_cell {big[0]} ms, contiguous gates {big[1]} ms; batch 32: {small[0]} / {small[1]} ms"
        )


if __name__ == "__main__":
    main()
