"""How NAB dev numbers are chosen and reported: leave-one-category-out, fixed threshold, sensitivity.

The detector's free parameters are chosen by one rule only: the candidate configuration (a small
grid, :data:`GRID`) with the best *worst* standard NAB score at the production threshold (the config's
``open_threshold``: the ``anomaly`` flag, an alert opening) on the files it is chosen on, the worst
over the candidate itself and each grid parameter moved by -25 % and +25 %. A candidate at a cliff's
edge (one more event of block and a window is lost) is not chosen for its best point. The
*leave-one-category-out* (LOCO) estimate applies that rule to two of the dev categories and scores
the third with the chosen configuration, for each category in turn; its mean is the headline, next
to the all-dev score of the configuration the same rule picks on all three. The sensitivity table
moves each free parameter (:data:`FREE_PARAMETERS`) by -25 % and +25 % and reports the all-dev score.

Candidates are scored without the replay: the forecaster's outputs do not depend on the scoring
(only on the normaliser, which no candidate changes), so the model runs once over all files in
lock-step and each candidate only re-runs the scorer (:class:`DevSet`). The result equals the
Runner's replay (``tests/test_protocol.py``).

Example:
    >>> [p.name for p in FREE_PARAMETERS][:3]
    ['W', 'R', 'rho']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .nab import NabCorpus, NabResult
from .nets import RecurrentForecaster
from .replay import read_csv
from .scoring import Scorer
from .scoring_config import ScoringConfig, detection_signal

__all__ = ["FREE_PARAMETERS", "GRID", "DevSet", "FreeParameter", "ProtocolReport", "run_protocol"]

_LOG_EPS = math.log(1e-10)


@dataclass(frozen=True)
class FreeParameter:
    """One free parameter: how to read it from a config and how to write a value back.

    ``get`` returns the parameter's value (in its natural unit: events, a rate, a probability);
    ``set`` returns a config with that value (moving every field it ties together).
    """

    name: str
    doc: str
    get: Callable[[ScoringConfig], float]
    set: Callable[[ScoringConfig, float], ScoringConfig]
    integer: bool = False


def _alpha(c: ScoringConfig) -> float:
    """The tail probability (times the channel count) the open threshold stands for."""
    return math.exp(c.open_threshold * _LOG_EPS)


def _with_alpha(c: ScoringConfig, a: float) -> ScoringConfig:
    thr = math.log(a) / _LOG_EPS
    return replace(c, open_threshold=thr, close_threshold=min(c.close_threshold, thr))


FREE_PARAMETERS: tuple[FreeParameter, ...] = (
    FreeParameter(
        "W", "calibration window (events)", lambda c: c.err_window, lambda c, v: replace(c, err_window=int(v)), True
    ),
    FreeParameter(
        "R",
        "events the alerting channel may not open another alert (R / 2 for the others)",
        lambda c: c.suppress,
        lambda c, v: replace(c, suppress=int(v), suppress_other=round(v * c.suppress_other / c.suppress)),
        True,
    ),
    FreeParameter(
        "rho",
        "rate of every per-bucket running estimate (season, profile, time-of-day variance)",
        lambda c: c.season_rate,
        lambda c, v: replace(c, season_rate=v, profile_rate=v),
    ),
    FreeParameter(
        "shift_short", "short mean (events)", lambda c: c.shift_short, lambda c, v: replace(c, shift_short=int(v)), True
    ),
    FreeParameter(
        "shift_long",
        "long mean and gate window (events)",
        lambda c: c.shift_long,
        lambda c, v: replace(c, shift_long=int(v)),
        True,
    ),
    FreeParameter("alpha", "alert tail probability (times the channel count)", _alpha, _with_alpha),
    FreeParameter(
        "z0",
        "level (sd) of each channel's tail check",
        lambda c: c.tail_z,
        lambda c, v: replace(c, tail_z=v),
    ),
    FreeParameter(
        "avg",
        "events the residual channel's statistic is averaged over",
        lambda c: c.residual_avg,
        lambda c, v: replace(c, residual_avg=v),
    ),
    FreeParameter(
        "R_other/R",
        "share of R the other channels are blocked",
        lambda c: c.suppress_other / c.suppress,
        lambda c, v: replace(c, suppress_other=round(v * c.suppress)),
    ),
    FreeParameter("close", "close threshold", lambda c: c.close_threshold, lambda c, v: replace(c, close_threshold=v)),
    FreeParameter(
        "close_after",
        "events below it to resolve",
        lambda c: c.close_after,
        lambda c, v: replace(c, close_after=int(v)),
        True,
    ),
    FreeParameter(
        "warmup", "events before the first alert", lambda c: c.warmup, lambda c, v: replace(c, warmup=int(v)), True
    ),
    FreeParameter(
        "release",
        "an alert shorter than this many shift_short releases the shift channel's held events",
        lambda c: c.hold_release,
        lambda c, v: replace(c, hold_release=v),
    ),
    FreeParameter(
        "drop",
        "the drop channel's slack in typical steps: a fall is log((expected + c) / (short mean + c))",
        lambda c: c.drop_step,
        lambda c, v: replace(c, drop_step=v),
    ),
)
"""The calibrated detector's free parameters (docs/accuracy.md counts them)."""

GRID: dict[str, tuple[float, ...]] = {"R": (150, 200, 250), "shift_short": (9, 12, 15)}
"""The candidates LOCO chooses among: every combination, applied to the base config."""


def _param(name: str) -> FreeParameter:
    return next(p for p in FREE_PARAMETERS if p.name == name)


def _moved(p: FreeParameter, c: ScoringConfig) -> list[ScoringConfig]:
    """``c`` with ``p`` moved by -25 % and +25 %, rounded half to even where it counts events (R 150: 112 and
    188, so -25.3 % and +25.3 %; the sensitivity table takes the same steps)."""
    vals = [p.get(c) * f for f in (0.75, 1.25)]
    return [p.set(c, float(round(x)) if p.integer else x) for x in vals]


def grid_configs(base: ScoringConfig, grid: Mapping[str, Sequence[float]] = GRID) -> list[tuple[str, ScoringConfig]]:
    """Every combination of the grid's values applied to ``base``, with a label."""
    out = [("", base)]
    for name, values in grid.items():
        p = _param(name)
        out = [(f"{lab} {name}={v:g}".strip(), p.set(c, v)) for lab, c in out for v in values]
    return out


class DevSet:
    """The labelled files, their categories and the model's forecasts, computed once.

    :meth:`detections` runs only the scorer over the cached forecasts (all files in lock-step) and
    returns each file's NAB detection signal (:func:`models.scoring_config.detection_signal`).
    """

    def __init__(
        self, data_dir: str | Path, corpus: NabCorpus, model: RecurrentForecaster, norm: ScoringConfig
    ) -> None:
        self.corpus = corpus
        self.files = corpus.files
        self.category = {f: f.split("/")[0] if "/" in f else "" for f in self.files}
        tables = [read_csv(Path(data_dir) / f) for f in self.files]
        self.x = [t.x[:, :1] for t in tables]  # [T, 1] each
        self.ts = [t.ts for t in tables]
        self.norm = norm
        self.forecasts = self._forecasts(model, norm)
        self._cache: dict[ScoringConfig, dict[str, np.ndarray]] = {}

    @torch.inference_mode()
    def _forecasts(self, model: RecurrentForecaster, norm: ScoringConfig) -> np.ndarray:
        plain = replace(ScoringConfig(), norm_window=norm.norm_window, clip=norm.clip, min_std=norm.min_std)
        sc = Scorer(plain, 1)
        xs, lengths = self._stack(self.x)
        n = len(self.x)
        aux = sc.init_row().expand(n, -1).clone()  # [S, A]
        h = model.zero_state(n)  # [S, L, K, H]
        out = np.zeros((len(xs), n), np.float32)
        for t in range(len(xs)):
            idx = torch.from_numpy(np.flatnonzero(lengths > t))  # [s]
            a, hh = aux[idx], h[idx]
            x_n, err = sc.pre(a, torch.from_numpy(xs[t, idx.numpy()]))  # [s, 1], [s]
            fc, hh = model.step(x_n, hh)  # [s, 1]
            sc.post(a, err, fc)
            aux[idx], h[idx] = a, hh
            out[t, idx.numpy()] = fc[:, 0].numpy()
        return out  # [T, S]

    @staticmethod
    def _stack(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        lengths = np.array([len(s) for s in series])
        xs = np.zeros((int(lengths.max()), len(series), series[0].shape[1]), np.float32)  # [T, S, F]
        for i, s in enumerate(series):
            xs[: len(s), i] = s
        return xs, lengths

    @torch.inference_mode()
    def detections(self, scoring: ScoringConfig) -> dict[str, np.ndarray]:
        """Each file's NAB detection signal under ``scoring`` (memoised per config)."""
        for k in ("norm_window", "clip", "min_std"):
            if getattr(scoring, k) != getattr(self.norm, k):
                raise ValueError(f"{k} changes the model's input: the cached forecasts do not apply")
        got = self._cache.get(scoring)
        if got is not None:
            return got
        sc = Scorer(scoring, 1)
        xs, lengths = self._stack(self.x)
        if sc.n_phases:
            ph, _ = self._stack([sc.phases(t) for t in self.ts])  # [T, S, P]
        n = len(self.x)
        aux = sc.init_row().expand(n, -1).clone()  # [S, A]
        score = np.zeros((len(xs), n), np.float32)
        trans = np.zeros((len(xs), n), np.float32)
        for t in range(len(xs)):
            live = np.flatnonzero(lengths > t)
            full = len(live) == n
            idx = torch.from_numpy(live)  # [s]
            a = aux if full else aux[idx]
            phase = torch.from_numpy(ph[t, live]) if sc.n_phases else None  # [s, P]
            _, err = sc.pre(a, torch.from_numpy(xs[t, live]), phase)  # [s]
            out = sc.post(a, err, torch.from_numpy(self.forecasts[t, live]).unsqueeze(1))  # [s, W]
            if not full:
                aux[idx] = a
            score[t, live] = out[:, sc.SCORE].numpy()
            trans[t, live] = out[:, sc.TRANSITION].numpy()
        got = {
            f: detection_signal(scoring, score[: lengths[i], i], trans[: lengths[i], i])
            for i, f in enumerate(self.files)
        }
        self._cache[scoring] = got
        return got

    def score(self, scoring: ScoringConfig, files: Sequence[str] | None = None, swept: bool = False) -> NabResult:
        """Standard NAB score of ``files`` (default all) at the config's threshold, or swept."""
        files = sorted(files or self.files)
        det = self.detections(scoring)
        corpus = self.corpus if files == self.files else self.corpus.subset(files)
        thr = None if swept else scoring.open_threshold
        return corpus.score({f: det[f] for f in files}, threshold=thr)["standard"]


@dataclass
class ProtocolReport:
    """LOCO folds, the all-dev choice and the sensitivity table (standard profile, fixed threshold)."""

    folds: list[dict[str, Any]]
    loco_mean: float
    chosen: str
    all_dev: float
    all_dev_swept: float
    all_dev_worst: float  # the choice's worst all-dev score within +-25 % of each grid parameter
    sensitivity: list[dict[str, Any]] = field(default_factory=list)

    def table(self) -> str:
        lines = [
            f"leave-one-category-out mean (standard, fixed threshold): {self.loco_mean:.2f}",
            f"all dev, the same rule's choice ({self.chosen or 'base'}): {self.all_dev:.2f} fixed, "
            f"{self.all_dev_swept:.2f} swept over the alerts; worst within +-25 % of its grid parameters "
            f"{self.all_dev_worst:.2f}",
        ]
        for f in self.folds:
            lines.append(
                f"  held out {f['category']:24s} chosen on the others: {f['chosen'] or 'base':28s} "
                f"held-out {f['held_out']:6.2f} (swept {f['held_out_swept']:6.2f}), "
                f"training {f['train']:6.2f} (worst +-25 % {f['train_worst']:6.2f}); "
                f"base config held-out {f['base_held_out']:6.2f}"
            )
        if self.sensitivity:
            lines.append("sensitivity (all dev, standard, fixed threshold): parameter value -25% / base / +25%")
            for s in self.sensitivity:
                lines.append(
                    f"  {s['name']:12s} {s['value']:<10.4g} {s['minus']:6.2f} / {s['base']:6.2f} / {s['plus']:6.2f}"
                    f"   max |delta| {s['max_delta']:.2f}"
                )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": self.folds,
            "loco_mean": self.loco_mean,
            "chosen": self.chosen,
            "all_dev": self.all_dev,
            "all_dev_swept": self.all_dev_swept,
            "all_dev_worst": self.all_dev_worst,
            "sensitivity": self.sensitivity,
        }


def run_protocol(
    dev: DevSet,
    base: ScoringConfig,
    grid: Mapping[str, Sequence[float]] = GRID,
    params: Sequence[FreeParameter] = FREE_PARAMETERS,
    sensitivity: bool = True,
    robust: bool = True,
) -> ProtocolReport:
    """LOCO over the dev categories with the selection rule, then the sensitivity of ``base``."""
    cands = grid_configs(base, grid)
    gridded = [_param(name) for name in grid]
    cats = sorted(set(dev.category.values()))

    def pick(files: list[str]) -> tuple[str, ScoringConfig, float, float]:
        """The chosen candidate's label, config, score and worst score within +-25 % of each grid parameter."""
        scored = []
        for i, (_, c) in enumerate(cands):
            own = dev.score(c, files).normalized
            near = [dev.score(m, files).normalized for p in gridded for m in _moved(p, c)]
            scored.append((min([own, *near]), own, i))
        # ties: the better own score, the earlier; robust=False: the best own score (the rule before)
        worst, own, i = max(scored, key=lambda s: (s[0], s[1], -s[2]) if robust else (s[1], -s[2]))
        return cands[i][0], cands[i][1], own, worst

    folds = []
    for cat in cats if len(cats) > 1 else []:
        held = [f for f in dev.files if dev.category[f] == cat]
        train = [f for f in dev.files if dev.category[f] != cat]
        label, cfg, train_score, train_worst = pick(train)
        folds.append(
            {
                "category": cat,
                "chosen": label,
                "train": train_score,
                "train_worst": train_worst,
                "held_out": dev.score(cfg, held).normalized,
                "held_out_swept": dev.score(cfg, held, swept=True).normalized,
                "base_held_out": dev.score(base, held).normalized,
            }
        )
    label, cfg, best, worst = pick(dev.files)
    rows = []
    if sensitivity:
        ref = dev.score(base).normalized
        for p in params:
            v = p.get(base)
            got = [dev.score(m).normalized for m in _moved(p, base)]
            rows.append(
                {
                    "name": p.name,
                    "value": v,
                    "minus": got[0],
                    "base": ref,
                    "plus": got[1],
                    "max_delta": max(abs(g - ref) for g in got),
                }
            )
    mean = float(np.mean([f["held_out"] for f in folds])) if folds else float("nan")
    return ProtocolReport(folds, mean, label, best, dev.score(cfg, swept=True).normalized, worst, rows)
