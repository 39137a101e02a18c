"""Experiment (issue 18): how far from their own seasonal level the shipped detector's false alerts on
``counts_quiet`` fire, against the injected surges of ``counts`` (seeds 0-2).

Re-generates the families with ``_counts`` patched to record the noise-free seasonal level
``exp(cyc)`` (daily and weekend cycle, no buzz, no burst; same random draws, so the same series), runs
both families through the product's Runner (every series of a family in one batch per time step), and
prints, per series kind, the ratio value / seasonal level at each alert opening (false alerts on
``counts_quiet``) and at each injected surge's first event and at its first alert inside the window
(``counts``). A detector that alerts on a surge's first event but never on ``counts_quiet`` needs the
two sets apart.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session13/counts_ratio.py
"""

from __future__ import annotations

import numpy as np
import torch

import models.synthetic as syn
from models.checkpoint import load_checkpoint
from models.runner import Runner
from models.types import Batch

LEVEL: dict[str, np.ndarray] = {}
_orig = syn._counts


def _counts(name, rng, inject, n=10_000):  # type: ignore[no-untyped-def]
    # the generator's first draws, replayed on a copy of the generator to get the seasonal level
    probe = np.random.Generator(np.random.PCG64())
    probe.bit_generator.state = rng.bit_generator.state
    ts = syn._times(n, 300.0, probe)
    day = (ts % syn.DAY) / syn.DAY
    weekend = ((ts // syn.DAY + 3) % 7) >= 5
    base = probe.uniform(5, 200)
    cyc = np.log(base) + probe.uniform(0.3, 1.0) * np.cos(2 * np.pi * (day - probe.uniform(0.4, 0.7)))
    cyc = cyc - probe.uniform(0.0, 0.5) * weekend
    LEVEL[name] = np.exp(cyc)
    return _orig(name, rng, inject, n)


def run(fam: str, seed: int) -> tuple[list[float], list[float], list[float]]:
    ck = load_checkpoint()
    series = syn.make_families(seed, 6)[fam]
    ids = [s.name for s in series]
    r = Runner(ck.model, ck.scoring, device="cpu", capacity=16)
    opened = np.zeros((len(series[0].values), len(series)), bool)
    for t in range(len(series[0].values)):
        x = np.array([[s.values[t]] for s in series], np.float32)
        res = r.process(Batch(ids, np.array([s.ts[t] for s in series]), x))
        opened[t] = res.transition > 0
    false, first, alert = [], [], []
    for j, s in enumerate(series):
        ratio = s.values / LEVEL[s.name]
        inside = np.zeros(len(s.values), bool)
        for a, b in s.windows:
            inside[a : b + 1] = True
            if s.values[a] > LEVEL[s.name][a]:  # a surge (an outage drops the value)
                first.append(float(ratio[a]))
                hits = np.flatnonzero(opened[a : b + 1, j])
                if len(hits):
                    alert.append(float(ratio[a + hits[0]]))
        false += [float(ratio[t]) for t in np.flatnonzero(opened[:, j] & ~inside) if t >= ck.scoring.warmup]
    return false, first, alert


def main() -> None:
    syn._counts = _counts
    torch.set_num_threads(1)
    qs = (0.1, 0.25, 0.5, 0.75, 0.9)
    fq, fs, fa = [], [], []
    for seed in (0, 1, 2):
        f, _, _ = run("counts_quiet", seed)
        _, s, a = run("counts", seed)
        fq, fs, fa = fq + f, fs + s, fa + a
    sets = {"counts_quiet false alerts": fq, "counts surges, first event": fs, "counts surges, first alert": fa}
    for name, v in sets.items():
        print(f"{name}: n {len(v)}, ratio quantiles {qs}: {np.round(np.quantile(v, qs), 2).tolist()}")
    lo = float(np.min(fs))
    print(f"false alerts at a ratio >= the smallest surge's first event ({lo:.2f}): {int((np.array(fq) >= lo).sum())}")
    lo_a = float(np.quantile(fa, 0.1))
    print(
        f"false alerts at a ratio >= the 10th percentile of the surges' alerting ratio ({lo_a:.2f}): "
        f"{int((np.array(fq) >= lo_a).sum())}"
    )


if __name__ == "__main__":
    main()
