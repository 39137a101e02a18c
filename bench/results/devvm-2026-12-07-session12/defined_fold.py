"""Experiment (issue 18): a channel's calibration learns only from events where the channel is defined.

The shipped calibration folds every channel's statistic in at every event; a channel that is not
defined yet contributes 0: the profile channel for the first week (its hour-of-week bucket was
never seen) and whenever its bucket is new, the shift and profile channels at the first event.
Its running mean and variance then start from a week of zeros, and its exact start (weight
1 / (count + 1)) is spent on them. Here each channel keeps its own count of defined events, its
mean / variance / per-bucket variance fold in only where it is defined (profile: its bucket seen
and two events of history, whether or not the gate lets it score; shift: two events), with the
exact start counted from its own first defined event.

``--floor``: also treat the profile and shift distances as undefined while the normaliser's sd is
still at its ``min_std`` floor (a quantised series whose first values are equal: those distances are
divided by ~0 and would swell the calibration for thousands of events).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session12/defined_fold.py [--floor] [--no-table]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))

from models.calibrated import CalibratedChannels

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"

FLOOR = False
_init, _gate, _step_factor = CalibratedChannels.__init__, CalibratedChannels.gate, CalibratedChannels.step_factor


def init(self: CalibratedChannels, *a: Any, **kw: Any) -> None:
    _init(self, *a, **kw)
    self._n = slice(self.end, self.end + self.n_channels)  # [C] defined events folded in per channel
    self.end += self.n_channels
    self._seen_p = None
    self._at_floor = None


def gate(self: CalibratedChannels, aux, d_prof, d_slow, seen):  # type: ignore[no-untyped-def]
    self._seen_p = seen > 0.0  # [B]
    return _gate(self, aux, d_prof, d_slow, seen)


def step_factor(self: CalibratedChannels, aux, x, std, count):  # type: ignore[no-untyped-def]
    self._at_floor = (std <= self.config.min_std * 1.0001).any(1)  # [B]
    return _step_factor(self, aux, x, std, count)


def calibrate(self: CalibratedChannels, aux, r, ok, count, bucket, *_) -> None:  # type: ignore[no-untyped-def]
    cfg, k = self.config, self._k(r.device)
    if cfg.residual_avg != 1.0:
        ra = aux[:, self._ravg]
        ra.lerp_(r[:, 0], (count + 1.0).reciprocal().clamp_min_(1.0 / cfg.residual_avg))
        r = torch.cat((ra.unsqueeze(1), r[:, 1:]), 1)
    # defined: the residual always; profile: two events and its bucket seen (gate or not); shift: two events
    ready = count > 1.0  # [B]
    cols = [torch.ones_like(ready)]
    n_c = self.n_channels
    if n_c == 3:
        assert self._seen_p is not None
        cols += [ready & self._seen_p, ready]
    elif n_c == 2:
        cols += [ready]
    defined = torch.stack(cols, 1)  # [B, C]
    if FLOOR and self._at_floor is not None and n_c > 1:
        defined[:, 1:] &= ~self._at_floor.unsqueeze(1)
    ok = ok & defined
    nf = aux[:, self._n]  # [B, C] view
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
        ab = (bc + 1.0).reciprocal_().clamp_min_(cfg.season_rate) * defined[:, :h]  # [B, H]
        aux.scatter_(1, i_v, bv + ab * (dh * dh - bv))
        aux.scatter_(1, i_c, bc + defined[:, :1].to(bc.dtype))
    z = d / v.sqrt()
    tail = torch.special.erfc(z * k["inv_sqrt2"]) * k["half"]
    logp = (tail + k["eps_p"]).log_().add_(k["log_c"])
    if cfg.tail_z:
        exc = aux[:, self._exc]
        logp.add_((exc * k["inv_q0"]).clamp_min_(1.0).log_())
        re = (nf + k["n0"]).reciprocal_().clamp_min_(k["inv_w"]) * ok
        exc.lerp_((z > k["tail_z"]).to(exc.dtype), re)
    logp.clamp_max_(0.0)
    aux[:, self._score] = (logp * k["inv_log_eps"]).clamp_(0.0, 1.0) * ok
    # exact running mean/variance from the channel's second defined event (the prior counts as one), then EMA
    a = (nf + 1.0).reciprocal().clamp_min_(1.0 / cfg.err_window).mul_(nf > 0.0).mul_(defined)  # [B, C]
    var.addcmul_(d, d * a).mul_(1.0 - a)
    mean.addcmul_(a, d)
    nf.add_(defined.to(nf.dtype))


def patch(floor: bool) -> None:
    global FLOOR
    FLOOR = floor
    CalibratedChannels.__init__ = init  # type: ignore[method-assign]
    CalibratedChannels.gate = gate  # type: ignore[method-assign]
    CalibratedChannels.step_factor = step_factor  # type: ignore[method-assign]
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--floor", action="store_true")
    ap.add_argument("--no-table", action="store_true")
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args()
    patch(args.floor)
    print("defined-only fold", "+ floor" if args.floor else "", flush=True)
    from report import report

    report(table=not args.no_table, seeds=args.seeds)


if __name__ == "__main__":
    main()
