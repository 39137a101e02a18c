"""Experiment (issue 18): the channels in the value's own units instead of the normaliser's.

Today the residual channel is the forecast error of the normalised value (the input minus its
running mean over ``norm_window`` = 1000 events, divided by its running sd) and the profile and
shift channels divide their distances by the same running sd. After a level shift that sd
contains the shift itself for ~1000 events, so every channel shrinks by that factor, while each
channel's calibration (W = 6000) still remembers the scale from before: the shift's return is
scored against an inflated normaliser and is missed (``shifts_windows.txt``: 0 of 29 returns).
Here the residual is multiplied back by the running sd and the profile/shift distances are not
divided by it; each channel's own calibration (``--winsor``: winsorized at z0, ``robust_fold.py``)
supplies the scale.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/raw_units.py [--winsor] [--no-table]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from models.scoring import Scorer

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
_ctx = Scorer._context


def _context(self, aux, x, std, count, err, phase, *rest):  # type: ignore[no-untyped-def]
    s = std[:, : self.n_targets].mean(1)  # [B] the normaliser's running sd, input units
    return _ctx(self, aux, x, torch.ones_like(std), count, err * s, phase, *rest) / s


def patch() -> None:
    Scorer._context = _context  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--winsor", action="store_true")
    ap.add_argument("--no-table", action="store_true")
    ap.add_argument("--no-dev", action="store_true")
    args = ap.parse_args()
    from report import before_step_scale

    before_step_scale()  # the configuration of the runs recorded here
    patch()
    if args.winsor:
        import robust_fold

        robust_fold.patch(None)
    print("raw units", "+ winsorized calibration" if args.winsor else "", flush=True)
    from report import report

    report(dev=not args.no_dev, table=not args.no_table)


if __name__ == "__main__":
    main()
