"""Experiment (issue 18): robust calibration: each channel's mean and variance fold in the event's
deviation winsorized at ``k`` sd (``--k``; default z0, the tail check's level), so one anomaly (a level
shift's onset, a spike) cannot inflate a channel's scale for the next W events. Values beyond
k sd still count in full for the tail check, which corrects the Gaussian tail for a heavy-tailed
stream. Applies to the overall and the time-of-day variances.

Prints the synthetic families (seed 0), the synthetic NAB corpus (seeds 0-2), the dev R landscape
and (unless ``--no-table``) the sensitivity table at R 200.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session11/robust_fold.py [--k 3.5]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from models.calibrated import CalibratedChannels

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"
K: float | None = None  # None: z0


def calibrate(self: CalibratedChannels, aux, r, ok, count, bucket, *_) -> None:  # type: ignore[no-untyped-def]
    cfg, k = self.config, self._k(r.device)
    kk = cfg.tail_z if K is None else K
    if cfg.residual_avg != 1.0:
        ra = aux[:, self._ravg]
        ra.lerp_(r[:, 0], (count + 1.0).reciprocal().clamp_min_(1.0 / cfg.residual_avg))
        r = torch.cat((ra.unsqueeze(1), r[:, 1:]), 1)
    mean, var = aux[:, self._mean], aux[:, self._var]
    d = r - mean  # [B, C]
    v = var.clamp_min(1e-4)  # [B, C]
    lim = v.sqrt() * kk  # [B, C] winsorizing bound of the overall scale
    if self.n_hourly:
        h = self.n_hourly
        i_v = self._bvar + bucket.long().unsqueeze(1) * h + k["chan"]
        i_c = (self._bcount + bucket.long()).unsqueeze(1)
        bv, bc = aux.gather(1, i_v), aux.gather(1, i_c)
        dh = d[:, :h]
        vh = torch.where(bc > 0.0, torch.maximum(v[:, :h], bv), v[:, :h])
        v = torch.cat((vh, v[:, h:]), 1)
        ab = (bc + 1.0).reciprocal_().clamp_min_(cfg.season_rate)
        lh = vh.sqrt() * kk  # [B, H] the bucket's own bound (its scale is the larger one)
        dhc = torch.maximum(torch.minimum(dh, lh), -lh)  # [B, H]
        aux.scatter_(1, i_v, bv + ab * (dhc * dhc - bv))
        aux.scatter_(1, i_c, bc + 1.0)
    z = d / v.sqrt()
    tail = torch.special.erfc(z * k["inv_sqrt2"]) * k["half"]
    logp = (tail + k["eps_p"]).log_().add_(k["log_c"])
    if cfg.tail_z:
        exc = aux[:, self._exc]
        logp.add_((exc * k["inv_q0"]).clamp_min_(1.0).log_())
        re = (count + k["n0"]).reciprocal_().clamp_min_(k["inv_w"]).unsqueeze(1) * ok
        exc.lerp_((z > k["tail_z"]).to(exc.dtype), re)
    logp.clamp_max_(0.0)
    aux[:, self._score] = (logp * k["inv_log_eps"]).clamp_(0.0, 1.0) * ok
    # the prior counts as one observation: winsorize only once the scale has been measured
    dc = torch.where((count > 1.0).unsqueeze(1), torch.maximum(torch.minimum(d, lim), -lim), d)  # [B, C]
    a = (count + 1.0).reciprocal().clamp_min_(1.0 / cfg.err_window).mul_(count > 0.0).unsqueeze(1)
    var.addcmul_(dc, dc * a).mul_(1.0 - a)
    mean.addcmul_(a, dc)


def patch(k: float | None) -> None:
    global K
    K = k
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=float, default=None)
    ap.add_argument("--no-table", action="store_true")
    ap.add_argument("--no-dev", action="store_true")
    args = ap.parse_args()
    from report import before_step_scale

    before_step_scale()  # the configuration of the runs recorded here
    patch(args.k)
    print("winsorized at", args.k or "z0", flush=True)
    from report import report

    report(dev=not args.no_dev, table=not args.no_table)


if __name__ == "__main__":
    main()
