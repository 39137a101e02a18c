"""Experiment (issue 18): an open alert does not teach the calibration that it is normal.

The shipped calibration folds every event in, the anomaly's own too. A level shift's onset keeps
the shift channel's distance (and the profile's) far out for ~shift_long events; folded into a
W-event variance, that excursion deafens the channel to the shift's return (``shifts_windows``:
profile and shift scored ~0 at every missed return). Here, while the stream's alert is open (as of
the previous event), the calibration (mean, variance, per-bucket variance) either skips the event
(``--mode skip``; ``--chans``: only these channels, 0 residual, 1 profile, 2 shift) or folds it in
winsorised at +-z0 sd (``--mode winsor``): it keeps adapting, at a bounded pace, so a lasting change
of noise still closes the alert. ``--mode censor``: per channel, skip the events where that
channel's own score at the previous event reached the open threshold. ``--mode skip --chans 2`` is
what the product adopted as ``hold_shift``.

Prints the synthetic families (seed 0), the synthetic corpus as NAB (seeds 0-2) and all dev at
R 50 / 100 / 150 / 200 / 250 by the full scorer (the channel scores now depend on the lifecycle,
so they are not replayed).

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session12/open_fold.py --mode winsor
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))

from models.calibrated import CalibratedChannels
from models.scoring import Scorer

assert os.environ.get("SEQSTREAM_SCORER_KERNEL") == "0", "the compiled kernel would bypass the patch"

MODE = "winsor"
CHANS: tuple[int, ...] = (0, 1, 2)  # the channels whose calibration the open alert holds (skip, winsor)


def calibrate(self: CalibratedChannels, aux, r, ok, count, bucket, *_) -> None:  # type: ignore[no-untyped-def]
    cfg, k = self.config, self._k(r.device)
    frozen = (aux[:, Scorer.OPEN] > 0.0).unsqueeze(1)  # [B, 1] an alert is open (as of the last event)
    if MODE != "censor":  # [B, C]
        sel = torch.tensor([i in CHANS for i in range(self.n_channels)])
        frozen = frozen & sel
    if MODE == "censor":  # [B, C] the channel's own score at the last event reached the threshold
        frozen = aux[:, self._score] >= cfg.open_threshold
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
        if MODE in ("skip", "censor"):
            ab = ab * ~frozen[:, :h]
            dhf = dh
        else:
            lim = cfg.tail_z * vh.sqrt()  # [B, H]
            dhf = torch.where(frozen[:, :h], torch.maximum(torch.minimum(dh, lim), -lim), dh)
        aux.scatter_(1, i_v, bv + ab * (dhf * dhf - bv))
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
    a = (count + 1.0).reciprocal().clamp_min_(1.0 / cfg.err_window).mul_(count > 0.0).unsqueeze(1)
    if MODE in ("skip", "censor"):
        a = a * ~frozen
        df = d
    else:
        lim = cfg.tail_z * v.sqrt()  # [B, C]
        df = torch.where(frozen, torch.maximum(torch.minimum(d, lim), -lim), d)
    var.addcmul_(df, df * a).mul_(1.0 - a)
    mean.addcmul_(a, df)


def patch(mode: str, chans: tuple[int, ...] = (0, 1, 2)) -> None:
    global MODE, CHANS
    MODE, CHANS = mode, chans
    CalibratedChannels.calibrate = calibrate  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["skip", "winsor", "censor"], default="winsor")
    ap.add_argument("--chans", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rs", type=int, nargs="*", default=[50, 100, 150, 200, 250])
    args = ap.parse_args()
    patch(args.mode, tuple(args.chans))
    print("open alerts fold:", MODE, "channels", CHANS, flush=True)
    import r_landscape
    from lifecycle_probe import dev_set, windows_and_fp
    from report import report

    report(dev=False)
    corpus, shipped, dev = dev_set()
    for rr in args.rs:
        c = r_landscape.with_r(shipped, rr)
        det = dev.detections(c)
        s = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
        w, fp = windows_and_fp(corpus, det, c.open_threshold)
        print(f"dev R {rr}: {s:.2f} ({w}w {fp}fp)", flush=True)


if __name__ == "__main__":
    main()
