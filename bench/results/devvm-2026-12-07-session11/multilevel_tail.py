"""Experiment (issue 18): a tail check at several levels instead of one.

The shipped tail check keeps, per channel, the rate at which ``z`` exceeded z0 (3.5) and multiplies
the channel's Gaussian tail probability by that rate over the Gaussian one. A heavy-tailed stream
(bursty counts) goes far past z0: one level says how often it leaves 3.5 sd, not how far it goes.
Here each channel keeps the rate at several levels ``z_j = z0 * m_j`` (``--mult``, default 1 1.5 2 3);
at a value ``z`` the Gaussian tail is multiplied by the largest excess ratio ``rate_j / q_j`` among
the levels at or below ``max(z, z0)``: a value is judged against what this stream did in the last
W events at the highest level it reached. Level 0 is the shipped check (same prior); the higher
levels start at their Gaussian rate with a prior worth W events (1/q_j is astronomic).

Prints the R landscape of the shipped rule over dev, the sensitivity table at R 200,
and the synthetic families (seed 0..``--seeds``-1).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/multilevel_tail.py --mult 1 1.5 2 3
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from models.calibrated import CalibratedChannels

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"

MULT: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
_init, _init_row, _k = CalibratedChannels.__init__, CalibratedChannels.init_row, CalibratedChannels._k


def _q(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def init(self: CalibratedChannels, *a: Any, **kw: Any) -> None:
    _init(self, *a, **kw)
    n, lv = self.n_channels, len(MULT) - 1
    z0 = self.config.tail_z
    self._lz = [z0 * m for m in MULT[1:]] if z0 else []
    self._lq = [_q(z) for z in self._lz]
    self._exc_hi = slice(self.end, self.end + n * lv) if z0 else slice(self.end, self.end)  # [L-1, C]
    self.end += n * lv if z0 else 0


def init_row(self: CalibratedChannels, row: torch.Tensor) -> None:
    _init_row(self, row)
    n = self.n_channels
    for j, q in enumerate(self._lq):
        row[self._exc_hi.start + j * n : self._exc_hi.start + (j + 1) * n] = q


def calibrate(self: CalibratedChannels, aux, r, ok, count, bucket, *_) -> None:  # type: ignore[no-untyped-def]
    cfg, k = self.config, self._k(r.device)
    if cfg.residual_avg != 1.0:
        ra = aux[:, self._ravg]
        ra.lerp_(r[:, 0], (count + 1.0).reciprocal().clamp_min_(1.0 / cfg.residual_avg))
        r = torch.cat((ra.unsqueeze(1), r[:, 1:]), 1)
    mean, var = aux[:, self._mean], aux[:, self._var]
    d = r - mean
    v = var.clamp_min(1e-4)
    if self.n_hourly:
        h = self.n_hourly
        i_v = self._bvar + bucket.long().unsqueeze(1) * h + k["chan"]
        i_c = (self._bcount + bucket.long()).unsqueeze(1)
        bv, bc = aux.gather(1, i_v), aux.gather(1, i_c)
        dh = d[:, :h]
        vh = torch.where(bc > 0.0, torch.maximum(v[:, :h], bv), v[:, :h])
        v = torch.cat((vh, v[:, h:]), 1)
        ab = (bc + 1.0).reciprocal_().clamp_min_(cfg.season_rate)
        aux.scatter_(1, i_v, bv + ab * (dh * dh - bv))
        aux.scatter_(1, i_c, bc + 1.0)
    z = d / v.sqrt()
    tail = torch.special.erfc(z * k["inv_sqrt2"]) * k["half"]
    logp = (tail + k["eps_p"]).log_().add_(k["log_c"])
    if cfg.tail_z:
        exc = aux[:, self._exc]
        ratio = (exc * k["inv_q0"]).clamp_min(1.0)  # [B, C]
        n = self.n_channels
        hi = aux[:, self._exc_hi].view(-1, len(self._lq), n)  # [B, L-1, C] view
        for j, (zj, qj) in enumerate(zip(self._lz, self._lq)):
            rj = (hi[:, j] / qj).clamp_min(1.0)  # [B, C]
            ratio = torch.where(z >= zj, torch.maximum(ratio, rj), ratio)
        logp.add_(ratio.log())
        re = (count + k["n0"]).reciprocal_().clamp_min_(k["inv_w"]).unsqueeze(1) * ok
        exc.lerp_((z > k["tail_z"]).to(exc.dtype), re)
        rw = k["inv_w"] * ok  # [B, C]
        for j, zj in enumerate(self._lz):
            hi[:, j].lerp_((z > zj).to(exc.dtype), rw)
    logp.clamp_max_(0.0)
    aux[:, self._score] = (logp * k["inv_log_eps"]).clamp_(0.0, 1.0) * ok
    a = (count + 1.0).reciprocal().clamp_min_(1.0 / cfg.err_window).mul_(count > 0.0).unsqueeze(1)
    var.addcmul_(d, d * a).mul_(1.0 - a)
    mean.addcmul_(a, d)


def patch(mult: tuple[float, ...]) -> None:
    global MULT
    MULT = mult
    CalibratedChannels.__init__ = init  # type: ignore[method-assign]
    CalibratedChannels.init_row = init_row  # type: ignore[method-assign]
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mult", type=float, nargs="+", default=list(MULT))
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--no-table", action="store_true")
    args = ap.parse_args()
    from report import before_step_scale

    before_step_scale()  # the configuration of the runs recorded here
    patch(tuple(args.mult))
    print("levels z0 x", MULT, flush=True)
    from report import report

    report(table=not args.no_table, seeds=args.seeds, nab=False)


if __name__ == "__main__":
    main()
