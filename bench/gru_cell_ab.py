"""A/B of the CPU GRU cell in one process: ``torch.gru_cell`` vs ``models.nets._gru_cell_cpu``.

Prints the cell alone (µs per call) and ``Runner.process`` (stream-steps/s, via
``bench/step_bench.py``) for each, twice, so both are measured under the same machine load:

    .venv/bin/python bench/gru_cell_ab.py [--hidden 64] [--batches 1024 4096]
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

import models.nets as nets


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
    ap.add_argument("--batches", type=int, nargs="*", default=[1024, 4096])
    ap.add_argument("--seconds", type=float, default=0.6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    h_size, dev = args.hidden, torch.device("cpu")
    fast = nets._gru_cell_cpu
    w_ih, w_hh = torch.randn(3 * h_size, 1) * 0.3, torch.randn(3 * h_size, h_size) * 0.1
    b_ih, b_hh = torch.randn(3 * h_size) * 0.1, torch.randn(3 * h_size) * 0.1
    with torch.inference_mode():
        for rep in range(2):
            for name, cell in (("torch.gru_cell", torch.gru_cell), ("_gru_cell_cpu", fast)):
                nets._gru_cell_cpu = cell  # what RecurrentForecaster.step calls on CPU
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
    nets._gru_cell_cpu = fast
    return 0


if __name__ == "__main__":
    sys.exit(main())
