"""Experiment (issue 18): ``seqstream evaluate nab --protocol``'s LOCO folds and sensitivity table
(``models.protocol.run_protocol``) with a patched scorer from this folder.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/protocol_with.py noise_scale --channels 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("patch", choices=["none", "noise_scale"])
    ap.add_argument("--channels", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    from report import before_step_scale

    before_step_scale()  # both runs start from the configuration before the step scale
    if args.patch == "noise_scale":
        import noise_scale

        noise_scale.patch(1.0, tuple(args.channels))
    from lifecycle_probe import dev_set

    from models.protocol import run_protocol

    torch.set_num_threads(1)
    _, shipped, dev = dev_set()
    print(args, flush=True)
    print(run_protocol(dev, shipped).table(), flush=True)


if __name__ == "__main__":
    main()
