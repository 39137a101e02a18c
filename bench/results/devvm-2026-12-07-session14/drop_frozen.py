"""Experiment (issue 18): the drop channel against an expectation frozen for the hour.

The shipped drop channel's E follows the hour-of-week mean, which learns within its hour (at 5-minute
steps 12 events a visit, each at the rate rho): an outage that starts inside an hour is soon partly
expected, and the outages caught alerted 11-38 events after they started (`counts_misses_drop.txt`).
Here E follows the bucket's mean as it stood when the stream entered the bucket this time (last
visit's learning, none of this visit's). Torch scorer; prints dev and the synthetic families
(seeds 0-4), then the corpus as NAB (seeds 0-2 and 3-5) and the outage table (seeds 0-2).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-07-session14/drop_frozen.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session13"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))

import counts_misses
import synthetic_nab
from window_table import dev_and_synthetic

from models.calibrated import CalibratedChannels
from models.scoring import Scorer

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
DATA = "../shared/data/nab-dev/data"
LABELS = "../shared/data/nab-dev/combined_windows.json"
_init, _init_row, _context, _drop = Scorer.__init__, Scorer.init_row, Scorer._context, CalibratedChannels.drop


def init(self, config, n_targets=1, *a, **kw):  # type: ignore[no-untyped-def]
    _init(self, config, n_targets, *a, **kw)
    if self.calibrated is not None and config.drop_channel:
        t = self.n_targets
        self._visit = slice(self.size, self.size + t + 1)  # [T] the bucket's mean at entry, [1] the bucket
        self.size += t + 1
        self.calibrated._owner = self


def init_row(self):  # type: ignore[no-untyped-def]
    row = _init_row(self)
    if hasattr(self, "_visit"):
        row[self._visit.stop - 1] = -1.0
    return row


def context(self, aux, x, std, count, err, phase, step=None):  # type: ignore[no-untyped-def]
    self._phase_now = phase
    return _context(self, aux, x, std, count, err, phase, step)


def drop(self, aux, x, m, seen, ms, std, count):  # type: ignore[no-untyped-def]
    sc = self._owner
    t = x.shape[1]
    col = sc._phase_now[:, 1].long()  # [B] hour-of-week bucket
    n = self.config.profile_buckets
    cn = aux.gather(1, (sc._profile + n * t + col).unsqueeze(1))[:, 0]  # [B] visits so far, this one counted
    rate = cn.reciprocal().clamp_min(self.config.profile_rate).unsqueeze(1)  # [B, 1] the rate m was folded at
    m_before = torch.where(rate < 1.0, (m - rate * x) / (1.0 - rate).clamp_min(1e-6), x)  # [B, T]
    v = aux[:, sc._visit]  # [B, T + 1] view
    new = v[:, t] != col.to(v.dtype)  # [B] entered another bucket
    v[:, :t] = torch.where(new.unsqueeze(1), m_before, v[:, :t])
    v[:, t] = col.to(v.dtype)
    return _drop(self, aux, x, v[:, :t].clone(), seen, ms, std, count)


def main() -> None:
    Scorer.__init__ = init  # type: ignore[method-assign]
    Scorer.init_row = init_row  # type: ignore[method-assign]
    Scorer._context = context  # type: ignore[method-assign]
    CalibratedChannels.drop = drop  # type: ignore[method-assign]
    torch.set_num_threads(1)
    dev_and_synthetic(DATA, LABELS, range(5), per_file=False)
    for seeds in ([0, 1, 2], [3, 4, 5]):
        res = synthetic_nab.run(seeds)
        keys = list(res[seeds[0]])
        print("mean: " + ", ".join(f"{k} {sum(r[k] for r in res.values()) / len(res):.2f}" for k in keys), flush=True)
    for seed in (0, 1, 2):
        counts_misses.run(seed)


if __name__ == "__main__":
    main()
