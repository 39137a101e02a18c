"""The scoring configuration: :class:`ScoringConfig` (horizons, thresholds, alert policy, context
channels) and the named presets (:data:`CALIBRATED_SCORING`, :data:`CONTEXT_SCORING`, ``plain``).

Plain data, below everything that scores (:mod:`models.scoring`, :mod:`models.calibrated`), builds a
featuriser or reads a checkpoint. :func:`detection_signal` is here too: what a detector with a given
scoring reports as its detections depends on the config alone, and both the NAB evaluation and the
tuning protocol read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["CALIBRATED_SCORING", "CONTEXT_SCORING", "EPS_P", "ScoringConfig", "detection_signal", "named_scoring"]

# the floor of a tail probability p in a score log(p + EPS_P) / log(EPS_P) (0.5 is p = 1e-5): one value for the
# scorers and their compiled loops
EPS_P = 1e-10

# options added after runners' state fingerprints were first written, and when each changes nothing (off, or
# without the parts it needs): a config where it changes nothing fingerprints as it did before the option
# existed (ScoringConfig.fingerprint_dict)
_ADDED_OFF: dict[str, Callable[[ScoringConfig], bool]] = {
    "hold_release": lambda c: c.hold_release == 0.0,
    "drop_step": lambda c: not c.drop_channel,
    "profile_halfnormal": lambda c: not (c.profile_halfnormal and c.profile_buckets),
}


@dataclass(frozen=True)
class ScoringConfig:
    """Horizons are in events of one stream; thresholds are on the [0, 1] anomaly score."""

    norm_window: int = 1000
    err_window: int = 2000
    err_short: int = 1
    warmup: int = 150
    open_threshold: float = 0.5
    close_threshold: float = 0.3
    close_after: int = 10
    clip: float = 8.0
    min_std: float = 1e-3
    err_var_prior: float = 0.25
    err_scales: tuple[int, ...] = ()
    fold_clip: float = 0.0
    suppress: int = 200
    suppress_level: float = 0.5
    suppress_factor: float = 0.0
    max_window: int = 0
    max_ratio: float = 1.0
    max_power: float = 1.0
    # context channels (0 buckets / 0 shift_short = off); periods in seconds of event time
    season_buckets: int = 0
    season_period: float = 86400.0
    season_rate: float = 0.1
    profile_buckets: int = 0
    profile_period: float = 604800.0
    profile_rate: float = 0.3
    profile_window: int = 1000
    profile_weight: float = 0.75
    shift_short: int = 0
    shift_long: int = 100
    shift_window: int = 2000
    shift_weight: float = 0.9
    # profile gate (0 = off): the profile channel's score is multiplied by
    # clip((high - q) / (high - low), 0, 1), q = running mean square of (x - its hour-of-week mean)
    # / running mean square of (x - a slow EMA of x, profile_gate_slow events), both over
    # profile_gate_window events: a profile that explains the series no better than a slow level
    # does not alarm
    profile_gate_slow: int = 0
    profile_gate_window: int = 300
    profile_gate_low: float = 0.8
    profile_gate_high: float = 1.2
    # per-channel suppression (0 = off: one counter for all channels); needs suppress_factor 0
    suppress_other: int = 0
    # alert policy: an alert opens only when at least open_k of the stream's last open_n scores
    # (after suppression) reached open_threshold; 1 of 1: any such score opens one
    open_k: int = 1
    open_n: int = 1
    # online adapter (0 = off): a per-stream affine correction of the forecast, (1 + a) * f + b per
    # target in normalised units, fitted to the stream's own residuals by normalised LMS at rate
    # adapter_lr (O(targets) per event, state in the slab row); a and b are kept within +-adapter_clip
    adapter_lr: float = 0.0
    adapter_clip: float = 2.0
    # calibrated mode (models/calibrated.py): every channel calibrated alike over err_window events
    # (variance: the larger of the overall one and the one in this season bucket of the day, at
    # season_rate), Bonferroni combination, the hard profile gate on the shift channel's
    # slow mean, and the alert lifecycle (the score is never zeroed; suppress / suppress_other block
    # the opening of alerts). The per-channel windows, weights and gate constants above are unused.
    calibrated: bool = False
    # calibrated mode: the residual channel's statistic is averaged over residual_avg events (an EMA at
    # rate 1 / residual_avg, exact from the first event) before it is calibrated; 1 = this event's own
    residual_avg: float = 1.0
    # calibrated mode, tail check (0 = off): each channel counts how often its z exceeded tail_z over
    # err_window events; where that is more often than the Gaussian tail says, its tail probabilities
    # are multiplied by the ratio (a stream whose noise is heavy-tailed needs more evidence)
    tail_z: float = 0.0
    # calibrated mode: the residual in units of the stream's typical step, the running mean of
    # |x_t - x_(t-1)| over err_window events (the horizon it is calibrated over), instead of the
    # normaliser's sd: a level shift inflates that sd for ~norm_window events, and the shift's
    # return would be measured with it
    step_scale: bool = False
    # calibrated mode: the shift channel's calibration does not learn while an alert is open. Its
    # statistic, a difference of a short and a long running mean, stays out for ~shift_long events
    # after one level shift; folded in, that one anomaly counted ~shift_long times and deafened the
    # channel to the shift's return for ~err_window events. Self-limiting: the long mean catches up
    # with any new level within ~shift_long events whatever the calibration, and the alert closes.
    # Without a shift channel (shift_short 0) nothing is held
    hold_shift: bool = False
    # calibrated mode, with hold_shift (0 = off): an alert that resolves within hold_release *
    # shift_short events of opening was a spike's trace on the short mean (decayed to e^-3 by
    # 3 * shift_short), not a level shift's (~shift_long): the shift channel's held events are folded
    # in after all. Without it a series with regular spikes opened an alert at each spike whose events
    # were held, and the channel never learnt the spikes. Nothing to release without hold_shift
    hold_release: float = 0.0
    # calibrated mode (0 = off): a fourth channel, for a fall of a series that has never gone below 0,
    # measured as a ratio: log((E + c) / (S + c)), S the short running mean of the value (shift_short),
    # E the same running mean of its hour-of-week profile means (what was expected, lagging alike, so a
    # rising edge of the profile is no fall), c = drop_step typical steps (step_scale's running mean of
    # |x_t - x_(t-1)|: a fall smaller than a step or two is no fall). In linear units a fall to zero is
    # bounded by the level while the upward noise of a count or a rate is not, so the |deviation|
    # channels never see an outage. Without the profile or shift channel or step_scale there is no drop
    # channel (as there is nothing to hold without a shift channel)
    drop_step: float = 0.0
    # calibrated mode: the profile channel's statistic, |x - profile mean| / sd, is an absolute value,
    # half-normal where the value scatters around its profile; its tail is P(|N(0, rms^2)| > r), rms the
    # statistic's running root mean square (sqrt(var + mean^2)), instead of the location-scale Gaussian,
    # which puts a half-normal's tail far too thin. Without a profile channel it changes nothing
    profile_halfnormal: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "err_scales", tuple(int(k) for k in self.err_scales))  # JSON gives lists
        if not 0.0 <= self.close_threshold <= self.open_threshold <= 1.0:
            raise ConfigError(
                f"need 0 <= close_threshold ({self.close_threshold}) <= open_threshold ({self.open_threshold}) <= 1"
            )
        for name in ("norm_window", "err_window", "err_short", "close_after"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if any(k < 1 for k in self.err_scales):
            raise ConfigError(f"err_scales must all be >= 1, got {self.err_scales}")
        if self.warmup < 0 or self.suppress < 0 or self.fold_clip < 0:
            raise ConfigError("warmup, suppress and fold_clip must be >= 0")
        if not 0.0 <= self.suppress_factor <= 1.0:
            raise ConfigError(f"suppress_factor must be in [0, 1], got {self.suppress_factor}")
        for name in ("season_buckets", "profile_buckets", "shift_short"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0 (0 turns the channel off), got {getattr(self, name)}")
        for name in ("profile_window", "shift_long", "shift_window"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.season_period <= 0 or self.profile_period <= 0:
            raise ConfigError("season_period and profile_period must be > 0 seconds")
        for name in ("season_rate", "profile_rate"):
            if not 0.0 < float(getattr(self, name)) <= 1.0:
                raise ConfigError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.profile_gate_slow < 0 or self.profile_gate_window < 1:
            raise ConfigError("profile_gate_slow must be >= 0 (0 turns the gate off) and profile_gate_window >= 1")
        if not 0.0 <= self.profile_gate_low < self.profile_gate_high:
            raise ConfigError(
                f"need 0 <= profile_gate_low ({self.profile_gate_low}) < profile_gate_high ({self.profile_gate_high})"
            )
        if not 0 <= self.suppress_other <= self.suppress:
            raise ConfigError(f"suppress_other must be in [0, suppress={self.suppress}], got {self.suppress_other}")
        if self.suppress_other and self.suppress_factor != 0.0:
            raise ConfigError("per-channel suppression (suppress_other > 0) needs suppress_factor 0")
        if not 1 <= self.open_k <= self.open_n <= 64:
            raise ConfigError(f"need 1 <= open_k ({self.open_k}) <= open_n ({self.open_n}) <= 64")
        if not 0.0 <= self.adapter_lr <= 1.0 or self.adapter_clip <= 0.0:
            raise ConfigError(
                f"adapter_lr must be in [0, 1] (0: off) and adapter_clip > 0, "
                f"got {self.adapter_lr}, {self.adapter_clip}"
            )
        if self.residual_avg < 1.0:
            raise ConfigError(f"residual_avg must be >= 1 event, got {self.residual_avg}")
        if self.residual_avg != 1.0 and not self.calibrated:
            raise ConfigError("residual_avg is a calibrated-scoring option (calibrated=True)")
        if not 0.0 <= self.tail_z <= 8.0 or (self.tail_z and not self.calibrated):
            # past ~13 sd the Gaussian rate at z0 underflows float32 (and a half-normal's past ~12)
            raise ConfigError(f"tail_z is a calibrated-scoring option in [0, 8] (0: off), got {self.tail_z}")
        for name in ("step_scale", "hold_shift", "profile_halfnormal"):  # switches of the calibrated scoring
            if getattr(self, name) and not self.calibrated:
                raise ConfigError(f"{name} is a calibrated-scoring option (calibrated=True)")
        if not (math.isfinite(self.hold_release) and self.hold_release >= 0.0):
            raise ConfigError(f"hold_release must be a finite number >= 0 (0: off), got {self.hold_release}")
        if self.hold_release and not self.calibrated:
            raise ConfigError("hold_release is a calibrated-scoring option (calibrated=True, with hold_shift)")
        if not (math.isfinite(self.drop_step) and self.drop_step >= 0.0):
            raise ConfigError(f"drop_step must be a finite number >= 0 (0: off), got {self.drop_step}")
        if self.drop_step and not self.calibrated:
            raise ConfigError("drop_step is a calibrated-scoring option (calibrated=True)")
        if self.drop_step and not self.min_std > 0.0:
            raise ConfigError(f"drop_step needs min_std > 0 (it floors the drop channel's slack), got {self.min_std}")
        if self.calibrated:
            unused = {
                "err_short": (self.err_short, 1),
                "err_scales": (self.err_scales, ()),
                "fold_clip": (self.fold_clip, 0.0),
                "max_window": (self.max_window, 0),
                "suppress_factor": (self.suppress_factor, 0.0),
                "profile_gate_slow": (self.profile_gate_slow, 0),
                "open_n": (self.open_n, 1),
            }
            bad = [k for k, (v, default) in unused.items() if v != default]
            if bad:
                raise ConfigError(f"calibrated scoring does not use {', '.join(bad)}: leave them at their defaults")

    @property
    def scales(self) -> tuple[int, ...]:
        return (self.err_short, *self.err_scales)

    @property
    def drop_channel(self) -> bool:
        """Whether the calibrated scorer has the drop channel (``drop_step`` with what it is made of)."""
        return bool(self.drop_step and self.profile_buckets and self.shift_short and self.step_scale)

    @property
    def n_phases(self) -> int:
        """Event-time phase columns the scorer needs per event (see :meth:`Scorer.phases`)."""
        return int(self.season_buckets > 0) + int(self.profile_buckets > 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` for a runner's state fingerprint (:mod:`models.fingerprint`), without the options
        added since fingerprints were first written while they are off: they change nothing then, and a
        checkpoint that does not use them keeps its fingerprint, so its streams' state restores after an
        upgrade instead of being re-warmed (or refused)."""
        d = self.to_dict()
        for k, off in _ADDED_OFF.items():
            if off(self):
                del d[k]
        return d


CONTEXT_SCORING = ScoringConfig(
    err_window=6000,
    season_buckets=96,  # 15-minute buckets of the day for the residual's daily baseline
    season_rate=0.1,
    profile_buckets=168,  # hourly buckets of the week for the value profile
    profile_rate=0.3,
    profile_window=1000,
    profile_weight=0.75,
    shift_short=12,
    shift_long=200,
    shift_window=2000,
    shift_weight=0.9,
    profile_gate_slow=2000,  # the profile must explain the value better than a ~2000-event level
    profile_gate_window=300,
    profile_gate_low=0.8,
    profile_gate_high=1.2,
    suppress_other=80,  # another channel may alert 80 events after an alert, the same one after 200
)
"""The previous bundled sensor scoring: residual + season + profile + shift channels, each with its
own calibration window and weight, a profile gate and per-channel suppression; ~20 parameters chosen
on the NAB dev files (docs/accuracy.md). Kept for comparison; the bundled detector uses
:data:`CALIBRATED_SCORING`.
"""

CALIBRATED_SCORING = ScoringConfig(
    calibrated=True,
    err_window=6000,  # W: every channel's calibration window
    season_buckets=96,  # 15-minute buckets of the day for the residual's daily baseline
    season_rate=0.2,  # rho: the rate of every per-bucket running estimate ...
    profile_buckets=168,  # hourly buckets of the week for the value profile
    profile_rate=0.2,  # ... (the same rho)
    shift_short=15,  # short and long running means of the level-shift channel; the long one is also
    shift_long=200,  # the profile gate's slow mean, over as many events
    suppress=200,  # R: the channel that opened an alert cannot open another for R events ...
    suppress_other=100,  # ... the other channels for R / 2
    residual_avg=2.0,  # the residual channel's statistic averaged over ~2 events (one odd draw is not an alert)
    tail_z=3.5,  # z0: each channel's Gaussian tail checked against its own exceedances of 3.5 sd
    step_scale=True,  # the residual in units of the stream's typical step (a level shift does not inflate it)
    hold_shift=True,  # the shift channel's calibration does not learn from an open alert (a shift's own echo)
    hold_release=3.0,  # ... unless the alert resolved within 3 * shift_short events (a spike's echo)
    drop_step=0.25,  # a fall of a never-negative series as a ratio to what was expected (an outage)
    profile_halfnormal=True,  # the profile channel's null is a half-normal (its statistic is an absolute value)
)
"""The bundled univariate sensor detector's scoring (models/calibrated.py, docs/accuracy.md): the
context channels with one calibration, a Bonferroni combination and the alert lifecycle; its free
parameters are W, rho, the two shift horizons, R (and R / 2), the residual's averaging, the tail
check's level, the threshold, the lifecycle's close/warm-up settings, the held shift's release and
the drop channel's slack (the half-normal profile null adds none: its scale is the calibration's own).
"""

SCORINGS = {"calibrated": CALIBRATED_SCORING, "context": CONTEXT_SCORING, "plain": ScoringConfig()}


def named_scoring(name: str) -> ScoringConfig:
    """A named scoring config: ``calibrated`` (the bundled sensor detector), ``context`` (the
    previous one) or ``plain`` (``ScoringConfig()``, residual only)."""
    if name not in SCORINGS:
        raise ConfigError(f"unknown scoring {name!r}; choose one of {', '.join(SCORINGS)}")
    return SCORINGS[name]


def detection_signal(scoring: ScoringConfig, score: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """What NAB scores: the score where an alert opened (calibrated scoring), else the score itself.

    The calibrated scoring's score is the evidence and stays high while an anomaly goes on, so its
    detections are the alert openings; the older scorings zero the score after an alert already.
    """
    if scoring.calibrated:
        return np.where(transition > 0, score, 0.0).astype(score.dtype)
    return score
