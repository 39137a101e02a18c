"""Experiment (issue 18, seventeenth session): why ``rearm`` opens more alerts on ``counts_quiet``. The
synthetic families of one seed are written as a NAB corpus (the eleventh session's ``synthetic_nab.py``),
the channel scores recorded once (the tenth session's ``lifecycle_probe.traces``), and the shipped rule
(``blocks``) and ``rearm`` (LOW 0.3, QUIET 10, as the lifecycle's close) replayed over them in numpy. For
every ``rearm`` alert that ``blocks`` does not have: the channel that opened it, the events since the
previous alert and since that channel's own previous firing, and what blocked it under ``blocks``.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \\
        bench/results/devvm-2026-12-08-session17/counts_quiet_rules.py [--seed 0] [--family counts_quiet]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session11"))
sys.path.insert(0, str(Path(__file__).parents[1] / "devvm-2026-12-07-session10"))

from lifecycle_probe import rule_blocks, rule_rearm, traces
from synthetic_nab import write_corpus

from models.checkpoint import load_checkpoint
from models.nab import NabCorpus
from models.protocol import DevSet

_NAMES = ("residual", "profile", "drop", "shift")


def _openings(c, sc: np.ndarray, det: np.ndarray) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """(row, channel) of each opening: the strongest channel at or above the threshold there."""
    return [(int(t), int(sc[t].argmax())) for t in np.flatnonzero(det > 0)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--family", default="counts_quiet")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ck = load_checkpoint()
    c = ck.scoring
    with tempfile.TemporaryDirectory() as tmp:
        data, labels = write_corpus(a.seed, Path(tmp))
        corpus = NabCorpus.load(data, labels)
        dev = DevSet(data, corpus, ck.model, c)
        files = [f for f in dev.files if f.startswith(a.family + "/")]
        chans, steps = traces(dev, c)
        idx = {f: i for i, f in enumerate(dev.files)}
        extra_by = collections.Counter()
        totals = collections.Counter()
        for f in files:
            sc, st = chans[idx[f]], steps[idx[f]]
            b = rule_blocks(c, sc, st)
            r = rule_rearm(c, sc, st, low=c.close_threshold, quiet=c.close_after)
            ob, orr = _openings(c, sc, b), _openings(c, sc, r)
            totals["blocks"] += len(ob)
            totals["rearm"] += len(orr)
            for ch in (x[1] for x in ob):
                totals[f"blocks {_NAMES[ch]}"] += 1
            for ch in (x[1] for x in orr):
                totals[f"rearm {_NAMES[ch]}"] += 1
            bset = {x[0] for x in ob}
            print(f"{f}: blocks {len(ob)}, rearm {len(orr)}")
            prev, last_ch = -(10**9), {}
            for t, ch in orr:
                if t not in bset:
                    own = t - last_ch.get(ch, -(10**9))
                    why = (
                        "own block (R)"
                        if own < c.suppress
                        else ("other's block (R_other)" if t - prev < c.suppress_other else "neither")
                    )
                    extra_by[(_NAMES[ch], why)] += 1
                    gap = f"since last alert {t - prev}, own last {own}"
                    print(f"  +{t} {_NAMES[ch]:8s} score {sc[t, ch]:.2f}; {gap}: {why}")
                prev = t
                last_ch[ch] = t
        print("totals", dict(totals))
        print("rearm-only alerts by channel and what blocked them under blocks:", dict(extra_by))


if __name__ == "__main__":
    main()
