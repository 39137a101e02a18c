"""Experiment (issue 18): the profile and shift channels while the stream has not moved yet.

Their distances are divided by the normaliser's sd, which is ``min_std`` while every value so far
is equal (a quantised series often starts so). The first value that differs then gives a distance
of ~1e3-1e4, and the calibration's exact running variance keeps the channel silent for thousands
of events (``shifts_0`` of seed 2: both channels at 0 throughout). Here a row whose sd is still the
floor measures both distances as 0 (the sd passed to the channels is infinite there). Runs on the
shipped detector (with the step scale).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/degenerate_start.py [--no-table]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from models.scoring import Scorer

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
_ctx = Scorer._context


def _context(self, aux, x, std, count, err, phase, *rest):  # type: ignore[no-untyped-def]
    floor = self.config.min_std * (1.0 + 1e-6)
    sd = torch.where(std <= floor, torch.full_like(std, float("inf")), std)  # [B, F]
    return _ctx(self, aux, x, sd, count, err, phase, *rest)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-table", action="store_true")
    args = ap.parse_args()
    Scorer._context = _context  # type: ignore[method-assign]
    from report import report

    report(table=not args.no_table)


if __name__ == "__main__":
    main()
