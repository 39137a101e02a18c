"""Experiment (issue 18): does an alert rule without chained blocks flatten the sensitivity table?

The calibrated scorer's per-channel scores do not depend on the alert lifecycle, so this records
them once per configuration (the torch scorer over ``DevSet``'s cached forecasts) and replays
alert rules over them in numpy:

* ``blocks``: the shipped rule (``CalibratedChannels.policy``): the channel that fired is blocked
  for R events, the others for R_other; an alert opens on the strongest unblocked channel at or
  above the threshold while none is open. A block starts at every firing, so one extra or missing
  alert shifts every later block (the chain);
* ``edge``: no memory of alerts for the blocks: channel c may open at t if its score is at or above
  the threshold now, was below it for the R events before, and no other channel was at or above it
  for the R_other events before (the open/resolve lifecycle as shipped); ``edge_self``: the
  channel's own look-back only, over R, R/2 or R/4 events;
* ``rearm``: a channel that was at or above the threshold may open again once its score stayed below
  0.1 for 10 events.

``blocks`` must reproduce ``DevSet.detections`` exactly (checked). Prints the all-dev standard
score of each rule for the base and each parameter at -25 % / +25 %.

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-07-session10/lifecycle_probe.py [NAME ...]
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.nab import NabCorpus
from models.protocol import FREE_PARAMETERS, DevSet
from models.scoring import Scorer
from models.scoring_config import ScoringConfig

DATA = "../shared/data/nab-dev/data"
LABELS = "../shared/data/nab-dev/combined_windows.json"


def dev_set() -> tuple[NabCorpus, ScoringConfig, DevSet]:
    """The NAB dev corpus, the shipped scoring and the model's forecasts over it (one thread)."""
    torch.set_num_threads(1)
    corpus = NabCorpus.load(DATA, LABELS)
    ck = load_checkpoint()
    return corpus, ck.scoring, DevSet(DATA, corpus, ck.model, ck.scoring)


@torch.inference_mode()
def traces(dev: DevSet, scoring: ScoringConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per file: the channel scores [T, C] as the policy sees them, and the step count [T]."""
    sc = Scorer(scoring, 1)
    cal = sc.calibrated
    assert cal is not None
    xs, lengths = dev._stack(dev.x)
    ph, _ = dev._stack([sc.phases(t) for t in dev.ts])
    n = len(dev.x)
    aux = sc.init_row().expand(n, -1).clone()
    chans = np.zeros((len(xs), n, cal.n_channels), np.float32)
    steps = np.zeros((len(xs), n), np.float32)
    for t in range(len(xs)):
        live = np.flatnonzero(lengths > t)
        full = len(live) == n
        idx = torch.from_numpy(live)
        a = aux if full else aux[idx]
        _, err = sc.pre(a, torch.from_numpy(xs[t, live]), torch.from_numpy(ph[t, live]))
        sc.post(a, err, torch.from_numpy(dev.forecasts[t, live]).unsqueeze(1))
        st = a[:, sc.STEPS].numpy() - 1.0  # the policy ran before post() counted this event
        chans[t, live] = a[:, cal._score].numpy() * (st >= 2.0)[:, None]
        steps[t, live] = st
        if not full:
            aux[idx] = a
    return [chans[: lengths[i], i] for i in range(n)], [steps[: lengths[i], i] for i in range(n)]


class _Lifecycle:
    """The shipped open/resolve lifecycle of one stream: an alert opens where a rule fires while none
    is open (reported only once warm), and resolves after ``close_after`` events below ``close_threshold``."""

    def __init__(self, c: ScoringConfig) -> None:
        self.c, self.is_open, self.below = c, False, 0.0

    def step(self, fire: bool, score: float, steps: float) -> tuple[bool, bool]:
        """(whether the rule fired while no alert was open, whether an alert opened)."""
        c = self.c
        fire = fire and not self.is_open
        self.below = 0.0 if score >= c.close_threshold else self.below + 1.0
        resolves = self.is_open and self.below >= c.close_after
        opens = fire and steps >= c.warmup
        self.is_open = (self.is_open or opens) and not resolves
        if not self.is_open:
            self.below = 0.0
        return fire, opens


def rule_blocks(
    c: ScoringConfig, sc: np.ndarray, steps: np.ndarray, rearm: tuple[float, int] | None = None
) -> np.ndarray:
    """The shipped policy, one stream: the detection signal (the score where an alert opened).
    ``rearm = (low, quiet)`` (eleventh session, ``rule_scan.py``): besides its block, a channel that
    fired opens again only after ``quiet`` events below ``low``."""
    t_n, n_c = sc.shape
    out = np.zeros(t_n, np.float32)
    csince = np.full(n_c, float(c.suppress))
    since = float(c.suppress)
    armed = np.ones(n_c, bool)
    calm = np.zeros(n_c)
    life = _Lifecycle(c)
    for t in range(t_n):
        s = sc[t]
        blocked = (csince < c.suppress) | (since < c.suppress_other) | ~armed
        m = np.where(blocked, 0.0, s)
        ch = int(m.argmax())
        fire, opens = life.step(bool(m[ch] >= c.open_threshold), s.max(), steps[t])
        csince = np.minimum(csince + 1.0, c.suppress)
        if fire:
            csince[ch] = 0.0
        since = 0.0 if fire else min(since + 1.0, c.suppress)
        if rearm is not None:
            low, quiet = rearm
            armed[ch] &= not fire
            calm = np.where(s < low, calm + 1.0, 0.0)
            armed |= calm >= quiet
        if opens:
            out[t] = s.max()
    return out


def rule_edge(c: ScoringConfig, sc: np.ndarray, steps: np.ndarray, own: float = 1.0, cross: bool = True) -> np.ndarray:
    """No chained blocks: a channel opens on a score at or above the threshold after ``own`` x R events
    below it, while (``cross``) no other channel was at or above it for R_other events."""
    t_n, n_c = sc.shape
    above = sc >= c.open_threshold  # [T, C]
    last = np.full(n_c, -1e18)  # last event each channel was at or above the threshold
    out = np.zeros(t_n, np.float32)
    life = _Lifecycle(c)
    for t in range(t_n):
        ok = above[t] & (t - last > own * c.suppress)
        if cross and n_c > 1:
            others_last = np.array([np.delete(last, k).max() for k in range(n_c)])
            ok &= t - others_last > c.suppress_other
        _, opens = life.step(bool(ok.any()), sc[t].max(), steps[t])
        last[above[t]] = t
        if opens:
            out[t] = sc[t].max()
    return out


def rule_rearm(c: ScoringConfig, sc: np.ndarray, steps: np.ndarray, low: float = 0.1, quiet: int = 10) -> np.ndarray:
    """No blocks of R: a channel that was at or above the threshold may open again once its score stayed
    below ``low`` for ``quiet`` events (the open/resolve lifecycle as shipped)."""
    t_n, n_c = sc.shape
    armed = np.ones(n_c, bool)
    calm = np.zeros(n_c)
    out = np.zeros(t_n, np.float32)
    life = _Lifecycle(c)
    for t in range(t_n):
        s = sc[t]
        above = s >= c.open_threshold
        _, opens = life.step(bool((armed & above).any()), s.max(), steps[t])
        if opens:
            out[t] = s.max()
        armed &= ~above
        calm = np.where(s < low, calm + 1.0, 0.0)
        armed |= calm >= quiet
    return out


RULES: dict[str, Callable[[ScoringConfig, np.ndarray, np.ndarray], np.ndarray]] = {
    "blocks": rule_blocks,
    "edge": rule_edge,
    "edge_self": lambda c, sc, st: rule_edge(c, sc, st, 1.0, cross=False),
    "edge_self_half": lambda c, sc, st: rule_edge(c, sc, st, 0.5, cross=False),
    "edge_self_quarter": lambda c, sc, st: rule_edge(c, sc, st, 0.25, cross=False),
    "rearm": rule_rearm,
}


def windows_and_fp(corpus: NabCorpus, det: dict[str, np.ndarray], threshold: float) -> tuple[int, int]:
    """Windows with an alert opening inside (after NAB's probation), and openings outside every window."""
    hit = fp = 0
    for f, d in det.items():
        win, mask = corpus._win[f], corpus._mask[f]
        on = d >= threshold
        hit += sum(bool((on & (win == w) & mask).any()) for w in np.unique(win[win >= 0]))
        fp += int((on & (win < 0) & mask).sum())
    return hit, fp


def evaluate(dev: DevSet, corpus: NabCorpus, c: ScoringConfig, check: bool = False) -> dict[str, tuple[float, int]]:
    chans, steps = traces(dev, c)
    res = {}
    for name, rule in RULES.items():
        det = {f: rule(c, chans[i], steps[i]) for i, f in enumerate(dev.files)}
        if check and name == "blocks":
            ref = dev.detections(c)
            bad = [f for f in dev.files if not np.array_equal(ref[f] > 0, det[f] > 0)]
            print("blocks reproduces DevSet.detections:", not bad, bad[:3])
        r = corpus.score(det, threshold=c.open_threshold)["standard"]
        n_alerts = sum(int((d > 0).sum()) for d in det.values())
        res[name] = (r.normalized, n_alerts)
        if check:
            w, fp = windows_and_fp(corpus, det, c.open_threshold)
            print(f"{name}: {r.normalized:.2f}, {w} windows, {fp} FP rows, {n_alerts} alerts")
    return res


def main() -> None:
    corpus, base, dev = dev_set()
    b = evaluate(dev, corpus, base, check=True)
    print("base", {k: (round(v[0], 2), v[1]) for k, v in b.items()}, flush=True)
    names = sys.argv[1:] or [p.name for p in FREE_PARAMETERS]
    for p in FREE_PARAMETERS:
        if p.name not in names:
            continue
        v = p.get(base)
        row = []
        for m in (0.75, 1.25):
            nv = round(v * m) if p.integer else v * m
            r = evaluate(dev, corpus, p.set(base, nv))
            cells = (f"{k} {s:.2f} ({s - b[k][0]:+.2f}, {n} alerts)" for k, (s, n) in r.items())
            row.append(f"{nv:.4g}: " + ", ".join(cells))
        print(p.name, " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
