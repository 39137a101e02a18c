"""A/B of the CPU GRU cell in one process: ``torch.gru_cell`` (what ``RecurrentForecaster.step`` calls)
vs the hand-written cell the CPU step used from 2026-11-27 to 2026-12-06 (``_handwritten``, below).

Prints the cell alone (µs per call) and ``Runner.process`` (stream-steps/s, via
``bench/step_bench.py``) for each, twice, so both are measured under the same machine load; for
``Runner.process`` the script swaps ``torch.gru_cell`` itself:

    .venv/bin/python bench/gru_cell_ab.py [--hidden 64] [--batches 1 8 32 1024 4096]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import step_bench  # type: ignore[import-not-found]


def _handwritten(
    x: torch.Tensor, h: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    """The old CPU cell: r and z share one in-place ``sigmoid_``, ``tanh(v) = 2 sigmoid(2v) - 1``, one ``lerp``."""
    hd = h.shape[1]
    gi = torch.addmm(b_ih, x, w_ih.t())  # [B, 3H]
    gh = torch.addmm(b_hh, h, w_hh.t())  # [B, 3H]
    rz = gi[:, : 2 * hd].add_(gh[:, : 2 * hd]).sigmoid_()  # [B, 2H] reset and update gates
    n = gh[:, 2 * hd :].mul_(rz[:, :hd]).add_(gi[:, 2 * hd :])  # [B, H] i_n + r * h_n
    n = n.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)  # [B, H] tanh
    return torch.lerp(n, h, rz[:, hd:])  # [B, H] (1 - z) * n + z * h


def _time(fn: object, seconds: float) -> float:
    for _ in range(20):
        fn()  # type: ignore[operator]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()  # type: ignore[operator]
        n += 1
    return (time.perf_counter() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 8, 32, 1024, 4096])
    ap.add_argument("--seconds", type=float, default=0.6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    h_size, dev = args.hidden, torch.device("cpu")
    fused = torch.gru_cell
    w_ih, w_hh = torch.randn(3 * h_size, 1) * 0.3, torch.randn(3 * h_size, h_size) * 0.1
    b_ih, b_hh = torch.randn(3 * h_size) * 0.1, torch.randn(3 * h_size) * 0.1
    with torch.inference_mode():
        for rep in range(2):
            for name, cell in (("torch.gru_cell", fused), ("hand-written", _handwritten)):
                torch.gru_cell = cell  # type: ignore[assignment]  # what RecurrentForecaster.step calls
                for b in args.batches:
                    x, h = torch.randn(b, 1), torch.randn(b, h_size) * 0.5
                    alone = _time(lambda c=cell, x=x, h=h: c(x, h, w_ih, w_hh, b_ih, b_hh), args.seconds)
                    t = step_bench.bench_batched("gru", h_size, b, dev, args.seconds)
                    rate = b / float(np.median(t.reported()))
                    print(
                        f"rep {rep} {name:15s} B={b:5d}: cell {alone * 1e6:8.1f} µs, "
                        f"Runner.process {rate / 1e6:.2f} M stream-steps/s",
                        flush=True,
                    )
    torch.gru_cell = fused  # type: ignore[assignment]
    return 0


if __name__ == "__main__":
    sys.exit(main())
