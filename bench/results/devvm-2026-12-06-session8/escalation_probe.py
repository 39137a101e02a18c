"""Experiment (issue 18): would a block that yields to stronger evidence make R less of a cliff?

    SEQSTREAM_SCORER_KERNEL=0 OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python \
        bench/results/devvm-2026-12-06-session8/escalation_probe.py

The shipped lifecycle blocks the channel that opened an alert for R events (the others for R/2). Two
of the six marginal NAB dev windows are caught only when an earlier alert's block ends. The rule
tried here adds no constant: while blocked, a channel may still open an alert if its score is above
the score that started the block. That level is kept per stream, in a side array: a prototype of
the torch policy (``CalibratedChannels.policy``) over ``DevSet``'s cached forecasts, not the
product's code. Prints the all-dev standard score (fixed threshold), windows and FP rows, for R at
-25 %, base and +25 %, with and without the rule.
"""

import importlib.util
from dataclasses import replace
from pathlib import Path

import torch

from models import calibrated
from models.checkpoint import load_checkpoint
from models.nab import NabCorpus
from models.protocol import DevSet

DATA = "../shared/data/nab-dev/data"
LABELS = "../shared/data/nab-dev/combined_windows.json"

# the seventh session's window count (windows an alert opened in, FP rows, standard score), not a copy
_spec = importlib.util.spec_from_file_location(
    "window_flips", Path(__file__).parents[1] / "devvm-2026-12-06-session7" / "window_flips.py"
)
assert _spec is not None and _spec.loader is not None
window_flips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(window_flips)

state: dict[str, object] = {"live": None, "level": None, "on": False}
_orig_policy = calibrated.CalibratedChannels.policy


def policy(self, aux, steps, is_open, below, since):  # type: ignore[no-untyped-def]
    """``CalibratedChannels.policy`` with the escalation rule (``state["on"]``), rows = ``state["live"]``."""
    if not state["on"]:
        return _orig_policy(self, aux, steps, is_open, below, since)
    live = state["live"]
    level = state["level"]
    assert isinstance(level, torch.Tensor) and isinstance(live, torch.Tensor)
    assert len(live) == aux.shape[0]  # the rows are the loop's live files, in order
    k = self._k(aux.device)
    sc = aux[:, self._score].masked_fill((steps < 2.0).unsqueeze(1), 0.0)  # [B, C]
    score = sc.amax(1)  # [B]
    csince = aux[:, self._csince]  # [B, C] view
    blocked = (csince < k["suppress"]) | (since < k["suppress_other"]).unsqueeze(1)  # [B, C]
    lv = level[live]  # [B] the score that started the stream's block
    blocked = blocked & ~(sc > lv.unsqueeze(1))  # stronger evidence than the block's own opens anyway
    best, ch = sc.masked_fill(blocked, 0.0).max(1)  # [B], [B]
    was_open = is_open > 0.0  # [B]
    fire = (best >= k["open"]) & ~was_open  # [B]
    below_new = (below + 1.0).masked_fill_(score >= k["close"], 0.0)  # [B]
    resolves = was_open & (below_new >= k["close_after"])  # [B]
    opens = fire & (steps >= k["warmup"])  # [B]
    now_open = (was_open | opens) & ~resolves  # [B]
    csince.add_(1.0).clamp_max_(float(self.config.suppress))  # [B, C]
    hit = torch.zeros_like(csince, dtype=torch.bool).scatter_(1, ch.unsqueeze(1), fire.unsqueeze(1))  # [B, C]
    csince.masked_fill_(hit, 0.0)
    since.add_(1.0).masked_fill_(fire, 0.0).clamp_max_(float(self.config.suppress))  # [B]
    level[live] = torch.where(fire, best, lv)  # [B]
    return score, now_open, below_new.masked_fill_(~now_open, 0.0)


calibrated.CalibratedChannels.policy = policy  # type: ignore[method-assign]


class ProbeSet(DevSet):
    """DevSet whose scorer loop tells the patched policy which files its rows are."""

    @torch.inference_mode()
    def detections(self, scoring):  # type: ignore[no-untyped-def]
        import models.protocol as mp

        got = self._cache.get((scoring, state["on"]))  # type: ignore[call-overload]
        if got is not None:
            return got
        state["level"] = torch.full((len(self.x),), 2.0)  # above any score: no escalation before a fire
        real_flatnonzero = mp.np.flatnonzero

        def flatnonzero(a):  # type: ignore[no-untyped-def]
            live = real_flatnonzero(a)
            state["live"] = torch.from_numpy(live)
            return live

        mp.np.flatnonzero = flatnonzero  # the loop's live rows, step by step
        try:
            self._cache.pop(scoring, None)
            got = DevSet.detections(self, scoring)
        finally:
            mp.np.flatnonzero = real_flatnonzero
            self._cache.pop(scoring, None)
        self._cache[(scoring, state["on"])] = got  # type: ignore[index]
        return got


def main() -> None:
    torch.set_num_threads(1)
    corpus = NabCorpus.load(DATA, LABELS)
    ck = load_checkpoint()
    base = ck.scoring
    dev = ProbeSet(DATA, corpus, ck.model, base)
    for on in (False, True):
        state["on"] = on
        for r in (150, 200, 250):
            sc = replace(base, suppress=r, suppress_other=round(r * base.suppress_other / base.suppress))
            hit, fp, s = window_flips.windows_hit(dev, corpus, sc)
            rule = "on " if on else "off"
            print(f"escalation {rule} R {r}: standard {s:.2f}, {sum(hit.values())} windows, {fp} FP rows", flush=True)


if __name__ == "__main__":
    main()
