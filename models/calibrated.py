"""Calibrated scoring: one calibration for every channel, a Bonferroni combination, an alert lifecycle.

The scorer's channels (:meth:`models.scoring.Scorer._context`) measure one event three or four ways:
the forecaster's residual minus its usual value at this time of day, the value's distance from its
hour-of-week profile, the distance between a short and a long running mean (a level shift), and
(``drop_step``) a fall of a never-negative series below what was expected, as a ratio.
The context scoring (``CONTEXT_SCORING``) calibrated each with its own window, weight and gate
constants, chosen on the NAB dev files. Here every channel gets the same treatment:

* **calibration**: ``z = (r - mean) / sd`` against the channel's own running mean and variance over
  ``err_window`` events; for the two per-event channels (residual, profile) the variance is the
  larger of the stream's overall one and the one in this time-of-day bucket (the season channel's
  ``season_buckets``, a streamed estimate at ``season_rate``): a stream whose noise follows the
  clock (busy hours are noisier, a forecaster that misses the same daily transition every day) is
  judged by the noise of that time of day. The shift channel averages over many hours, so it has
  no time of day of its own (a per-bucket variance of it, from few correlated values, cost three
  NAB dev windows);
* **residual averaging**: the residual channel's statistic is an EMA over ``residual_avg`` events
  (rate ``1 / residual_avg``) before it is calibrated: one large draw of a stream's own noise (a white
  noise value 4 sd out, a single burst of a heavy-tailed count) is diluted, a residual that stays
  large, or a spike far outside the noise, is not. The profile and shift channels are not averaged
  (the shift channel is a difference of means already; averaging the profile channel cost NAB dev
  windows);
* **tail check** (``tail_z`` = z0 > 0): each channel keeps the rate at which its ``z`` exceeded z0
  (a streamed mean over ``err_window`` events, starting from the Gaussian rate ``q0`` with the weight
  of one expected exceedance, ``1 / q0`` events); where the stream's own ``z`` went past z0 more
  often than a Gaussian does, its tail probabilities are multiplied by that ratio (never divided):
  heavy-tailed noise (bursty counts) needs more evidence, a Gaussian-like stream keeps its
  calibration;
* **step scale** (``step_scale``): the residual is measured in units of the stream's typical step,
  the running mean of ``|x_t - x_(t-1)|`` over ``err_window`` events (the window the channel is
  calibrated over, so its units hold still over it), instead of the normaliser's sd.
  After a level shift that sd holds the shift itself for ~``norm_window`` events and shrinks every
  normalised residual by its size, so the shift's return (as large as its onset) went unseen; the
  steps of a stream move by one step at a shift. The profile and shift channels keep the
  normaliser's units (measured: in step units they add false alerts on NAB dev);
* **held shift calibration** (``hold_shift``): while an alert is open the shift channel's running mean
  and variance do not learn. Its statistic is a difference of running means and stays out for
  ~``shift_long`` events after one level shift; folded in, that one anomaly counted ~``shift_long``
  times and left the channel deaf to the shift's return for ~``err_window`` events. The hold ends by
  itself: the long mean reaches any new level within ~``shift_long`` events, whatever the
  calibration, and the alert closes. With ``hold_release`` the held events are folded in after all
  when the alert resolved within ``hold_release * shift_short`` events of opening: that was a spike's
  trace on the short mean, and a series with regular spikes must learn them (held, every spike
  re-opened an alert and was held again);
* **drop channel** (``drop_step`` > 0): a fall of a series that has never gone below 0, as a ratio,
  ``log((E + c) / (S + c))``: ``S`` the shift channel's short running mean of the value, ``E`` the same
  running mean of the hour-of-week profile's means (what was expected, lagging alike), ``c`` =
  ``drop_step`` typical steps. A fall to zero is bounded by the level in linear units while the upward
  noise of a count or a rate is not, so the ``|deviation|`` channels never saw an outage; one-sided:
  only a value below what was expected is evidence. It comes before the shift channel (which stays
  the last, the held one) and gets the overall variance;
* **half-normal profile** (``profile_halfnormal``): the profile channel's statistic
  ``|x - profile mean| / sd`` is an absolute value, half-normal where the value scatters around its
  profile, and a location-scale Gaussian puts a half-normal's tail far too thin (a 4-sd draw reads as
  5.3 sd of the statistic). Its tail is ``P(|N(0, rms^2)| > r)``, ``rms`` the statistic's running root
  mean square (``sqrt(var + mean^2)``, from the calibration's own two numbers); the tail check compares
  the channel's exceedances of z0 with that null's rate there. The shift channel, also an absolute
  value, keeps the Gaussian: a half-normal null there cost NAB dev windows and synthetic level shifts;
* **combination**: the smallest Gaussian tail probability ``p`` of the ``C`` channels, times ``C``
  (Bonferroni: C looks at one event are not C chances at a false alarm; C counts the drop channel
  also for a series that goes below 0, where it is never defined: ~0.0125 of score), becomes the
  score ``log(C p) / log(1e-10)`` in [0, 1]; 0.5 is ``C p = 1e-5``;
* **profile gate**: the profile channel counts only while the hour-of-week profile explains the
  value better than the shift channel's slow mean does (mean squares over ``shift_long`` events);
* **alert lifecycle** (:meth:`CalibratedChannels.policy`): the emitted score is the evidence and is
  never zeroed; an alert opens when a channel that is not blocked reaches ``open_threshold`` and no
  alert is open, and resolves after ``close_after`` events below ``close_threshold``; the channel
  that opened it may not open another for ``suppress`` events, the other channels for
  ``suppress_other`` (a different kind of anomaly soon after a first one still alerts). An alert
  that would open during the warm-up is not reported but still starts these blocks.

All state is in the stream's slab row; every operation is batched over rows (``[B, ...]``).

Example:
    >>> import torch
    >>> from models.scoring import Scorer
    >>> from models.scoring_config import CALIBRATED_SCORING
    >>> sc = Scorer(CALIBRATED_SCORING, 1)
    >>> sc.n_channels, sc.n_phases
    (4, 2)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .scoring_config import EPS_P, ScoringConfig

__all__ = ["CalibratedChannels"]

_EPS_P = EPS_P
_SINCE = 4  # the scorer's fixed column: events since an alert opened (the policy's ``since``)


class CalibratedChannels:
    """The calibrated mode's state layout (``size`` columns from ``offset``), calibration and policy.

    ``n_channels`` counts the residual channel and, when configured, the profile, drop and shift channels
    (in that order); ``hourly``: how many of the first channels get the time-of-day variance;
    ``gated``: a profile gate (needs both profile and shift channels).
    """

    def __init__(
        self, config: ScoringConfig, offset: int, n_channels: int, n_targets: int, gated: bool, hourly: int
    ) -> None:
        self.config = c = config
        self.n_channels = n = n_channels
        self.gated = gated
        t = n_targets
        o = offset
        # gate: mean square of (x - profile mean)[T], of (x - slow mean)[T], events measured [1]
        self._gate = slice(o, o + 2 * t + 1) if gated else slice(o, o)
        o += 2 * t + 1 if gated else 0
        self._mean, self._var = slice(o, o + n), slice(o + n, o + 2 * n)  # calibration per channel
        o += 2 * n
        self.n_buckets = nb = c.season_buckets
        self.n_hourly = h = hourly if nb else 0
        self._bvar = o  # [nb, H] variance per time-of-day bucket and per-event channel, then [nb] counts
        self._bcount = o + nb * h
        o += nb * (h + 1) if nb else 0
        self._score = slice(o, o + n)  # this event's per-channel score, for post()
        self._csince = slice(o + n, o + 2 * n)  # events since each channel opened an alert
        o += 2 * n
        self._ravg = o  # the residual statistic's running average over residual_avg events
        o += 1
        self._exc = slice(o, o + n) if c.tail_z else slice(o, o)  # [C] rate of z > tail_z per channel
        o += n if c.tail_z else 0
        self._q0 = 0.5 * math.erfc(c.tail_z / math.sqrt(2.0)) if c.tail_z else 1.0  # the Gaussian rate
        self._step = slice(o, o + 2 * t) if c.step_scale else slice(o, o)  # previous value[T], mean |step|[T]
        o += 2 * t if c.step_scale else 0
        self._hold = n - 1 if c.hold_shift and c.shift_short else -1  # the shift channel is the last one
        # the held channel's held events: sum of their deviations, of their squares, and their count
        self._pend = o if c.hold_release and self._hold >= 0 else -1
        o += 3 if self._pend >= 0 else 0
        # an alert that resolves within this many events of opening releases them (hold_release); the events
        # since an alert opened are counted up to R (the blocks), and up to this limit where it is longer
        self._release_at = float(c.hold_release * c.shift_short) if self._pend >= 0 else 0.0
        self._since_cap = max(float(c.suppress), self._release_at)
        # drop channel: the profile means' short running mean [T], 1 while every value so far was >= 0 [1]
        self._drop = slice(o, o + t + 1) if c.drop_channel else slice(o, o)
        o += t + 1 if c.drop_channel else 0
        self.end = o
        self._halfnormal = 1 if c.profile_halfnormal and c.profile_buckets else -1  # the profile channel, second
        self._log_c = math.log(n)
        self._dev: dict[torch.device, dict[str, Tensor]] = {}

    def init_row(self, row: Tensor) -> None:
        row[self._var] = self.config.err_var_prior  # a prior worth one observation
        row[self._csince] = float(self.config.suppress)  # no channel blocked yet
        row[self._exc] = self._q0  # the tail check starts from the Gaussian rate
        if self.config.drop_channel:
            row[self._drop.stop - 1] = 1.0  # no value below 0 yet

    def _k(self, dev: torch.device) -> dict[str, Tensor]:
        # 0-dim float32 constants (a Python scalar costs a dtype conversion per op); device copies made
        # once, outside any captured CUDA graph
        got = self._dev.get(dev)
        if got is None:
            c = self.config
            vals = {
                "inv_sqrt2": 1.0 / math.sqrt(2.0),
                "half": 0.5,
                "eps_p": _EPS_P,
                "log_c": self._log_c,
                "inv_log_eps": 1.0 / math.log(_EPS_P),
                "open": c.open_threshold,
                "close": c.close_threshold,
                "close_after": float(c.close_after),
                "warmup": float(c.warmup),
                "suppress": float(c.suppress),
                "suppress_other": float(c.suppress_other),
                "tail_z": c.tail_z,
                "inv_q0": 1.0 / self._q0,
                "n0": 1.0 / self._q0,  # the prior rate's weight: one expected exceedance
                "inv_w": 1.0 / c.err_window,
                "release": self._release_at,
            }
            got = {k: torch.tensor(v, dtype=torch.float32, device=dev) for k, v in vals.items()}
            got["chan"] = torch.arange(self.n_hourly, device=dev)  # [H]
            got["held"] = (torch.arange(self.n_channels, device=dev) == self._hold).float()  # [C] 1: the held one
            self._dev[dev] = got
        return got

    def step_factor(self, aux: Tensor, x: Tensor, std: Tensor, count: Tensor) -> Tensor:
        """``[B]``: the normaliser's ``std[B, T]`` over the stream's step scale (the running mean of
        ``|x_t - x_(t-1)|`` before this event; the normaliser's sd until one step is measured, floored at
        1e-3 of it and at ``min_std``), the targets' mean: it turns a normalised residual into one in
        units of the typical step. Then folds this event's targets ``x[B, T]`` in (``count[B]``: events
        before this one)."""
        t = x.shape[1]
        st = aux[:, self._step]  # [B, 2T] view
        prev, ms = st[:, :t], st[:, t:]  # [B, T] views
        measured = (count >= 2.0).unsqueeze(1)  # [B, 1]
        # floors: 1e-3 of the sd (a perfectly periodic series must not alarm at float noise), and the
        # normaliser's own min_std (steps all 0 so far: the sd is that floor too, and the factor stays 1)
        scale = torch.maximum(ms, std * 1e-3).clamp_min_(self.config.min_std)  # [B, T]
        f = std / torch.where(measured, scale, std)  # [B, T]
        rate = count.clamp_min(1.0).reciprocal().clamp_min_(1.0 / self.config.err_window)  # [B] exact, then EMA
        ms.lerp_((x - prev).abs(), (rate * (count >= 1.0)).unsqueeze(1))  # [B, T] no step before the 2nd event
        prev.copy_(x)
        return f.mean(1)

    def drop(
        self, aux: Tensor, x: Tensor, m: Tensor, seen: Tensor, ms: Tensor, std: Tensor, count: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``drop_step``: the drop channel's statistic ``[B]`` and where it is defined ``[B]`` (two events,
        the hour-of-week bucket seen before, no value below 0 so far). ``x[B, T]``: the event's targets,
        ``m[B, T]``: their hour-of-week means with it (``seen[B]``: the bucket had one), ``ms[B, T]``:
        the short running mean with it, ``std[B, T]``: the normaliser's sd (the step scale's floor)."""
        t = x.shape[1]
        dr = aux[:, self._drop]  # [B, T + 1] view
        e, nonneg = dr[:, :t], dr[:, t]  # [B, T], [B] views
        nonneg.mul_((x >= 0.0).all(1).to(x.dtype))  # [B] 0 for good after a value below 0
        first = (count + 1.0).reciprocal().clamp_min_(1.0 / self.config.shift_short).unsqueeze(1)  # [B, 1]
        e.lerp_(torch.where(seen.unsqueeze(1), m, x), first)  # [B, T] a new bucket expects the value itself
        step = aux[:, self._step][:, t:]  # [B, T] mean |step|, this event's folded in
        c = torch.maximum(step, std * 1e-3).clamp_min_(self.config.min_std).mul_(self.config.drop_step)  # [B, T]
        ok = (count > 1.0) & seen & (nonneg > 0.0)  # [B]
        r = ((e + c) / (ms + c)).log_().mean(1)  # [B] NaN where a value was below 0: masked next
        return torch.where(ok, r, 0.0), ok

    def gate(self, aux: Tensor, d_prof: Tensor, d_slow: Tensor, seen: Tensor) -> Tensor:
        """``[B]`` 1 where the hour-of-week profile explained the value better than the slow mean so
        far (mean squares of ``d_prof[B, T]`` and ``d_slow[B, T]`` over the last ``shift_long``
        measured events, before this one), else 0; then folds this event in where ``seen[B]``."""
        t = d_prof.shape[1]
        g = aux[:, self._gate]  # [B, 2T + 1] view
        vp, vs, n_q = g[:, :t], g[:, t : 2 * t], g[:, 2 * t]  # [B, T], [B, T], [B] views
        q = (vp / vs.clamp_min(1e-12)).mean(1)  # [B]
        on = (q < 1.0) & (n_q > 0.0)  # [B] nothing measured yet: off
        n_q.add_(seen).clamp_max_(float(self.config.shift_long))  # [B]
        av = (n_q.clamp_min(1.0).reciprocal() * seen).unsqueeze(1)  # [B, 1] exact mean, then EMA; 0: skip
        vp.lerp_(d_prof * d_prof, av)  # [B, T]
        vs.lerp_(d_slow * d_slow, av)  # [B, T]
        return on

    def calibrate(
        self, aux: Tensor, r: Tensor, ok: Tensor, count: Tensor, bucket: Tensor | None, is_open: Tensor
    ) -> None:
        """Score the channel statistics ``r[B, C]`` (``ok[B, C]``: defined for this event) against
        their history, then fold them in (``is_open[B]``: an alert is open, as the last event left it:
        the ``hold_shift`` channel does not learn); stores the per-channel scores for :meth:`policy`."""
        cfg, k = self.config, self._k(r.device)
        if cfg.residual_avg != 1.0:
            ra = aux[:, self._ravg]  # [B] view
            ra.lerp_(r[:, 0], (count + 1.0).reciprocal().clamp_min_(1.0 / cfg.residual_avg))  # [B] exact, then EMA
            r = torch.cat((ra.unsqueeze(1), r[:, 1:]), 1)  # [B, C]
        mean, var = aux[:, self._mean], aux[:, self._var]  # [B, C] views
        if self._pend >= 0:
            self._release(aux, r[:, self._hold], ok[:, self._hold], count, is_open, k)
        d = r - mean  # [B, C]
        v = var.clamp_min(1e-4)  # [B, C]
        if self.n_hourly:
            assert bucket is not None
            h = self.n_hourly
            i_v = self._bvar + bucket.long().unsqueeze(1) * h + k["chan"]  # [B, H]
            i_c = (self._bcount + bucket.long()).unsqueeze(1)  # [B, 1]
            bv, bc = aux.gather(1, i_v), aux.gather(1, i_c)  # [B, H], [B, 1]
            dh = d[:, :h]  # [B, H]
            vh = torch.where(bc > 0.0, torch.maximum(v[:, :h], bv), v[:, :h])  # [B, H] the noisier of the two
            v = torch.cat((vh, v[:, h:]), 1)  # [B, C] (the drop and shift channels keep the overall)
            ab = (bc + 1.0).reciprocal_().clamp_min_(cfg.season_rate)  # [B, 1] exact mean, then EMA
            aux.scatter_(1, i_v, bv + ab * (dh * dh - bv))
            aux.scatter_(1, i_c, bc + 1.0)
        z = d / v.sqrt()  # [B, C]
        tail = torch.special.erfc(z * k["inv_sqrt2"]) * k["half"]  # [B, C] one-sided Gaussian tail
        f = self._halfnormal
        if f >= 0:  # profile_halfnormal: that channel's tail is P(|N(0, rms^2)| > r), rms its root mean square
            rms = (v[:, f] + mean[:, f] * mean[:, f]).sqrt()  # [B]
            tail[:, f] = torch.special.erfc(r[:, f] / rms * k["inv_sqrt2"])  # [B] two-sided
        logp = (tail + k["eps_p"]).log_().add_(k["log_c"])  # [B, C] Bonferroni: C p
        if cfg.tail_z:
            exc = aux[:, self._exc]  # [B, C] view: rate of z > z0 so far
            ratio = exc * k["inv_q0"]  # [B, C] the exceedance rate over the null's rate at z0 (Gaussian) ...
            if f >= 0:  # ... the half-normal's there
                at = mean[:, f] + k["tail_z"] * v[:, f].sqrt()  # [B] the statistic at z = z0
                ratio[:, f] = exc[:, f] * torch.special.erfc(at / rms * k["inv_sqrt2"]).reciprocal()  # [B]
            logp.add_(ratio.clamp_min_(1.0).log_())  # [B, C] times the excess over the null's rate
            re = (count + k["n0"]).reciprocal_().clamp_min_(k["inv_w"]).unsqueeze(1) * ok  # [B, C] 0: not defined
            exc.lerp_((z > k["tail_z"]).to(exc.dtype), re)  # [B, C]
        logp.clamp_max_(0.0)  # [B, C]
        aux[:, self._score] = (logp * k["inv_log_eps"]).clamp_(0.0, 1.0) * ok  # [B, C]
        # fold in: exact running mean/variance from the second event (the prior counts as one), then EMA
        a = (count + 1.0).reciprocal().clamp_min_(1.0 / cfg.err_window).mul_(count > 0.0).unsqueeze(1)  # [B, 1]
        if self._hold >= 0:
            a = a * (1.0 - (is_open > 0.0).to(a.dtype).unsqueeze(1) * k["held"])  # [B, C] 0: held
        var.addcmul_(d, d * a).mul_(1.0 - a)  # [B, C]
        mean.addcmul_(a, d)  # [B, C]

    def _release(
        self, aux: Tensor, r: Tensor, ok: Tensor, count: Tensor, is_open: Tensor, k: dict[str, Tensor]
    ) -> None:
        """``hold_release``: fold the held channel's held events in after all where the alert that held
        them resolved within ``hold_release * shift_short`` events of opening (at the running estimate's
        rate of now), else drop them; then set this event's statistic ``r[B]`` aside if it is held."""
        h = self._hold
        p = aux[:, self._pend : self._pend + 3]  # [B, 3] view: sum d, sum d^2, count
        mean, var = aux[:, self._mean.start + h], aux[:, self._var.start + h]  # [B] views
        was_open = is_open > 0.0  # [B]
        ended = ~was_open & (p[:, 2] > 0.0)  # [B] the alert resolved at the last event
        short = ended & (aux[:, _SINCE] < k["release"])  # [B] events since it opened (the policy's count)
        a = (count + 1.0).reciprocal().clamp_min_(k["inv_w"])  # [B]
        var.copy_(torch.where(short, (var + a * p[:, 1]) * (1.0 - a).pow(p[:, 2]), var))  # [B]
        mean.copy_(torch.where(short, mean + a * p[:, 0], mean))  # [B]
        p.masked_fill_(ended.unsqueeze(1), 0.0)
        held = (was_open & ok).to(r.dtype)  # [B]
        d = (r - mean) * held  # [B] against the estimate before this event
        p[:, 0].add_(d)
        p[:, 1].addcmul_(d, d)
        p[:, 2].add_(held)

    def policy(self, aux: Tensor, steps: Tensor, is_open: Tensor, below: Tensor, since: Tensor) -> tuple[Tensor, ...]:
        """The alert lifecycle of one event: ``(score[B], anomaly[B], now_open[B])``; updates the
        blocks, the below-close counter is returned for the caller to store.

        ``score`` (the evidence, not zeroed during an alert) is the strongest channel; an alert opens
        on the strongest channel that is not blocked.
        """
        k = self._k(aux.device)
        sc = aux[:, self._score].masked_fill((steps < 2.0).unsqueeze(1), 0.0)  # [B, C] two residuals of history
        score = sc.amax(1)  # [B]
        csince = aux[:, self._csince]  # [B, C] view
        blocked = (csince < k["suppress"]) | (since < k["suppress_other"]).unsqueeze(1)  # [B, C]
        best, ch = sc.masked_fill(blocked, 0.0).max(1)  # [B], [B]
        was_open = is_open > 0.0  # [B]
        fire = (best >= k["open"]) & ~was_open  # [B] an alert would open (also in the warm-up)
        below_new = (below + 1.0).masked_fill_(score >= k["close"], 0.0)  # [B]
        resolves = was_open & (below_new >= k["close_after"])  # [B]
        opens = fire & (steps >= k["warmup"])  # [B] reported only once warm
        now_open = (was_open | opens) & ~resolves  # [B]
        csince.add_(1.0).clamp_max_(float(self.config.suppress))  # [B, C]
        hit = torch.zeros_like(csince, dtype=torch.bool).scatter_(1, ch.unsqueeze(1), fire.unsqueeze(1))  # [B, C]
        csince.masked_fill_(hit, 0.0)  # [B, C] the channel that fired starts its block again
        since.add_(1.0).masked_fill_(fire, 0.0).clamp_max_(self._since_cap)  # [B] every channel's
        return score, now_open, below_new.masked_fill_(~now_open, 0.0)
