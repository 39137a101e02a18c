"""Experiment (issue 18): ``seqstream evaluate nab --protocol``'s LOCO folds and sensitivity table
(``models.protocol.run_protocol``) with ``open_fold.py``'s patch (``--mode skip --chans 2``: the shift
channel's calibration does not learn while an alert is open), or without (``none``).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session12/protocol_open_fold.py skip --chans 2
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
    ap.add_argument("mode", choices=["none", "skip", "winsor", "censor"])
    ap.add_argument("--chans", type=int, nargs="+", default=[2])
    args = ap.parse_args()
    if args.mode != "none":
        import open_fold

        open_fold.patch(args.mode, tuple(args.chans))
    from lifecycle_probe import dev_set

    from models.protocol import run_protocol

    torch.set_num_threads(1)
    _, shipped, dev = dev_set()
    print(args, flush=True)
    print(run_protocol(dev, shipped).table(), flush=True)


if __name__ == "__main__":
    main()
