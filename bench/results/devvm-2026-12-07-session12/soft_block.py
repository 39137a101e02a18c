"""Experiment (issue 18): soft blocks. Instead of forbidding a channel to open for R events after it
fired, raise the evidence it needs: the threshold for channel c at event t is

    open + (top - open) * g((t - t_c) / R)   (own block; R_other and any channel's last firing likewise)

with g(u) = max(0, 1 - u) (``lin``) or exp(-u) (``exp``), ``top`` the score needed right after a
firing (1.0: only saturated evidence; > 1: a hard block at first). A strong anomaly soon after a
false alert still opens one, a repeat excursion of a disturbance needs more than the first did.
Prints the R landscape of each shape and the sensitivity table of the chosen one.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session12/soft_block.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))
sys.path.insert(0, str(Path(__file__).parent))

import r_landscape
from fp_anatomy import cached
from lifecycle_probe import _Lifecycle, windows_and_fp

from models.scoring_config import ScoringConfig


def rule_soft(c: ScoringConfig, sc: np.ndarray, steps: np.ndarray, shape: str, top: float) -> np.ndarray:
    t_n, n_c = sc.shape
    out = np.zeros(t_n, np.float32)
    last = np.full(n_c, -1e18)
    last_any = -1e18
    life = _Lifecycle(c)
    g = (lambda u: np.maximum(0.0, 1.0 - u)) if shape == "lin" else (lambda u: np.exp(-u))
    r, ro = float(c.suppress), float(max(c.suppress_other, 1))
    span = top - c.open_threshold
    for t in range(t_n):
        s = sc[t]
        thr = c.open_threshold + span * np.maximum(g((t - last) / r), g((t - last_any) / ro))
        ok = s >= thr
        m = np.where(ok, s, 0.0)
        ch = int(m.argmax())
        fire, opens = life.step(bool(ok.any()), float(s.max()), steps[t])
        if fire:
            last[ch] = t
            last_any = t
        if opens:
            out[t] = s.max()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", default=["lin:1.0", "exp:1.0", "lin:1.2", "exp:1.2"])
    ap.add_argument("--rs", type=int, nargs="+", default=[50, 100, 150, 200, 250, 300, 400, 600])
    ap.add_argument("--table", default="")
    args = ap.parse_args()
    corpus, shipped, dev, chans, steps = cached()

    def run(c: ScoringConfig, tr, shape: str, top: float) -> tuple[float, int, int]:
        ch, st = tr
        det = {f: rule_soft(c, ch[i], st[i], shape, top) for i, f in enumerate(dev.files)}
        r = corpus.score(det, threshold=c.open_threshold)["standard"].normalized
        w, fp = windows_and_fp(corpus, det, c.open_threshold)
        return r, w, fp

    for spec in args.shapes:
        shape, top = spec.split(":")
        cells = []
        for rr in args.rs:
            s, w, fp = run(r_landscape.with_r(shipped, rr), (chans, steps), shape, float(top))
            cells.append(f"R {rr}: {s:.2f} ({w}w {fp}fp)")
        print(spec, " | ".join(cells), flush=True)
    if args.table:
        shape, top, rr = args.table.split(":")
        base = r_landscape.with_r(shipped, int(rr))
        b = run(base, (chans, steps), shape, float(top))
        print(f"table {args.table}: base {b[0]:.2f} ({b[1]}w {b[2]}fp)", flush=True)
        moved = r_landscape.moved_traces(dev, base)
        worst = 0.0
        for (name, m), (c, tr) in moved.items():
            s = run(c, tr or (chans, steps), shape, float(top))
            worst = max(worst, abs(s[0] - b[0]))
            print(f"  {name} x{m}: {s[0]:.2f} ({s[0] - b[0]:+.2f}; {s[1]}w {s[2]}fp)", flush=True)
        print(f"  largest move {worst:.2f}")


if __name__ == "__main__":
    main()
