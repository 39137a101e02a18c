"""Experiment (issue 18): the synthetic checks of the bundled detector with single scoring fields changed:
the families (`evaluate_synthetic`: recall, alerts, false alerts per 10k) and the corpus scored as NAB
(session 11's `synthetic_nab.py`), for the given seeds.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/results/devvm-2026-12-07-session14/with_scoring.py \\
        drop_step=0.25 ... --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))

import synthetic_nab

import models.checkpoint as mc
from models.synthetic import evaluate_synthetic

_load = mc.load_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("fields", nargs="*")
    a = ap.parse_args()
    over = {}
    for kv in a.fields:
        k, v = kv.split("=")
        over[k] = v

    def load(path=None):  # type: ignore[no-untyped-def]
        ck = _load(path)
        f = {k: type(getattr(ck.scoring, k))(float(v)) for k, v in over.items()}
        return dataclasses.replace(ck, scoring=dataclasses.replace(ck.scoring, **f))

    mc.load_checkpoint = load  # type: ignore[assignment]
    synthetic_nab.load_checkpoint = load  # type: ignore[attr-defined]
    torch.set_num_threads(1)
    print(f"fields {over or 'as bundled'}, seeds {a.seeds}", flush=True)
    for seed in a.seeds:
        cells = []
        for r in evaluate_synthetic(seed=seed):
            rec = f"recall {r.recall:.2f}, " if r.windows else ""
            cells.append(f"{r.family} {rec}alerts {r.alerts}, false/10k {r.false_per_10k:.2f}")
        print(f"seed {seed}: " + "; ".join(cells), flush=True)
    res = synthetic_nab.run(a.seeds)
    keys = list(res[a.seeds[0]])
    print("mean: " + ", ".join(f"{k} {sum(r[k] for r in res.values()) / len(res):.2f}" for k in keys), flush=True)


if __name__ == "__main__":
    main()
