"""Trading ticks: the per-symbol features and alert rules on the device (:class:`TickFeatures`).

The alert kinds, their thresholds (:class:`~models.tick_alerts.TickConfig`), the packed columns the
rules' evidence travels in and the alerts' texts are in :mod:`models.tick_alerts`.

Input per event (decoded by the codec): ``[price, size, bid, ask]``; ``bid``/``ask`` may be NaN
(no quote). With the time since the symbol's previous tick ``dt`` (from the slab's event-time
bookkeeping) and the symbol's state in its ``aux`` row, each tick becomes the features

====  ===========================================================================================
col   feature
====  ===========================================================================================
0     ``ret``: log return ``log p_t - log p_{t-1}`` (0 on a symbol's first tick)
1     ``absret``: ``|ret|``
2     ``spread``: relative spread ``(ask - bid) / mid`` (0 when bid or ask is missing)
3     ``lsize``: ``log1p(size)``
4     ``ldt``: ``log(max(dt, 1 ms))`` (the usual value on a symbol's first tick)
5     ``lvol``: ``log`` of the realised volatility, ``sqrt`` of an EWMA of squared returns
6     ``quoted``: 1 when bid and ask are both present (not normalised), else 0
====  ===========================================================================================

Columns 0-5 go through the scorer's running per-symbol normaliser; the GRU forecasts the next
tick's ``ret`` and ``absret`` (columns 0-1, so ``E|r|``): ``forecast = [r_hat, sigma_hat]`` with
``sigma_hat = sqrt(pi/2) E|r|``. ``prediction`` is the next tick in input units
``[price, size, bid, ask]`` (price from ``r_hat``, size from its running level, bid/ask from the
running spread), so ticks chart like every other source.

Rule alerts (each with its own open/resolved hysteresis, ``kind`` in the alert), all against
the symbol's own history and armed after ``warmup`` ticks:

* ``jump``: one tick's return is more than ``jump_z`` realised volatilities, and the next tick
  does not continue it as a crash (a second large down tick); reported one tick later.
* ``flash_crash``: a run of consecutive down ticks that starts with one more than ``run_z``
  volatilities down and holds at least two such ticks, whose cumulative drop exceeds ``crash_z``
  volatilities over those ticks (at the volatility before the run); the resolution says how much
  of the drop was recovered.
* ``stale_quote``: price, bid and ask unchanged for more ticks than the symbol's usual
  unchanged-tick rate makes likelier than ``stale_p`` (at least ``stale_min``), or a gap since
  the previous tick ``gap_z`` standard deviations (log scale) and ``gap_factor`` times above usual.
* ``crossed_quote``: ``bid > ask``.
* ``volume_burst``: a short EWMA of ``log1p(size)`` ``burst_z`` standard deviations above the
  symbol's slow running level.

Volatility is the EWMA realised volatility, floored at half the symbol's usual non-zero move (so a
one-tick price change of a coarse-ticked symbol is not a jump); updates are winsorised so one
event does not blind the symbol to the next.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._jit import AVAILABLE, torch_path_rows
from ._tick_kernel import (  # the rules' own aux columns (after the scorer's): one layout for both codes
    _BIG,
    _CRL,
    _CRO,
    _CRS,
    _CUM,
    _DTM,
    _DTV,
    _LA,
    _LB,
    _LP,
    _LSM,
    _LSS,
    _LSV,
    _MNZ,
    _N,
    _OPEN,
    _OWN,
    _PLP,
    _PR,
    _PS,
    _PSAME,
    _PZ,
    _QUIET,
    _RSIG,
    _RUN,
    _RV,
    _SAME,
    _SPM,
    TickKernel,
)
from .errors import ConfigError
from .features import Features
from .nets import NetConfig
from .scoring import Scorer
from .scoring_config import ScoringConfig
from .tick_alerts import FORECAST_COLS, N_PACKED_EXTRA, RAW_TICK, TickConfig, tick_alerts
from .types import Alert

__all__ = ["N_TICK_FEATURES", "N_TICK_TARGETS", "RAW_TICK", "TickFeatures"]

N_TICK_FEATURES = 7  # model input width (see the module docstring)
N_TICK_TARGETS = 2  # ret, absret
_SQRT_HALF_PI = math.sqrt(math.pi / 2.0)


def _tick_rules(
    s: Tensor,
    x: Tensor,
    dt: Tensor | None,
    close: Tensor,
    rc_warmup: int,
    rc_vol_window: int,
    rc_level_window: int,
    rc_jump_z: float,
    rc_run_z: float,
    rc_crash_z: float,
    rc_stale_min: int,
    rc_log_stale_p: float,
    rc_same_max_p: float,
    rc_gap_z: float,
    rc_gap_factor: float,
    rc_burst_alpha: float,
    rc_burst_z: float,
    rc_winsor: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The features and alert rules of :meth:`TickFeatures.featurise` on a batch of symbols, whose own
    state ``s[b, S]`` (a view into their aux rows) they update in place; ``rc_*``: the
    :class:`(~models).tick_alerts.TickConfig` fields (``rc_log_stale_p``: ``log(stale_p)``). A free
    function of tensors and numbers so that TorchScript can run it (:data:`_RULES`): ~150 small ops
    per wave, whose Python dispatch was most of a ticks batch's cost on the CPU. Every ``~x`` is
    parenthesised: TorchScript parses ``~a & b`` as ``~(a & b)``."""
    price, size, bid, ask = x[:, 0], x[:, 1], x[:, 2], x[:, 3]  # [b] each
    if dt is None:
        dt = torch.full_like(price, float("inf"))  # [b]
    n = s[:, _N]  # [b]
    first = n == 0  # [b]
    ready = n >= rc_warmup  # [b]
    lp = torch.log(price)  # [b]
    lp_old = s[:, _LP].clone()  # [b]
    r = torch.where(first, torch.zeros_like(lp), lp - lp_old)  # [b]
    absr = r.abs()  # [b]
    quoted = torch.isfinite(bid) & torch.isfinite(ask)  # [b]
    mid = (bid + ask) * 0.5  # [b]
    spread = torch.where(quoted, (ask - bid) / mid, torch.zeros_like(mid))  # [b]
    lsize = torch.log1p(size)  # [b]
    has_dt = torch.isfinite(dt) & (~first)  # [b]
    ldt = torch.where(has_dt, torch.log(dt.clamp_min(1e-3)), s[:, _DTM])  # [b]

    # volatility measured before this tick (floored at half the usual non-zero move)
    sig = torch.maximum(s[:, _RV].sqrt(), 0.5 * s[:, _MNZ]).clamp_min(1e-6)  # [b]
    z = r / sig  # [b]

    # flash crash: a run of down ticks that starts with a large one
    run_old = s[:, _RUN].clone()  # [b]
    starts = (z < -rc_run_z) & (~first) & (run_old == 0)  # [b]
    down = starts | ((run_old > 0) & (r < 0))  # [b]
    s[:, _CRS] = torch.where(starts, lp_old, s[:, _CRS])  # [b]
    s[:, _RSIG] = torch.where(starts, sig, s[:, _RSIG])  # [b]
    s[:, _RUN] = torch.where(down, run_old + 1, torch.zeros_like(run_old))  # [b]
    s[:, _CUM] = torch.where(down, s[:, _CUM] + r, torch.zeros_like(r))  # [b]
    big = (z < -rc_run_z).float()  # [b]
    s[:, _BIG] = torch.where(down, s[:, _BIG] + big, torch.zeros_like(big))  # [b]
    run, n_big = s[:, _RUN], s[:, _BIG]  # [b], [b]
    cstat = -s[:, _CUM] / (s[:, _RSIG].clamp_min(1e-6) * run.clamp_min(1.0).sqrt())  # [b]
    open_old = s[:, _OPEN : _OPEN + 5] > 0  # [b, 5]
    fire_crash = ready & (n_big >= 2) & (cstat > rc_crash_z)  # [b]

    # jump: the pending large move of the previous tick, not continued as a crash
    pz = s[:, _PZ].clone()  # [b]
    fire_jump = ready & (pz != 0) & (n_big < 2) & (~open_old[:, 1])  # [b]
    ev_pz, ev_pr, ev_ps, ev_plp = pz, s[:, _PR].clone(), s[:, _PS].clone(), s[:, _PLP].clone()  # [b] each
    pend = (z.abs() > rc_jump_z) & (~first) & (n_big < 2)  # [b]
    s[:, _PZ] = torch.where(pend, z, torch.zeros_like(z))  # [b]
    s[:, _PR] = torch.where(pend, r, s[:, _PR])  # [b]
    s[:, _PS] = torch.where(pend, sig, s[:, _PS])  # [b]
    s[:, _PLP] = torch.where(pend, lp_old, s[:, _PLP])  # [b]

    # stale quote: an unchanged (price, bid, ask) run longer than this symbol makes likely, or a gap
    same_b = (bid == s[:, _LB]) | (torch.isnan(bid) & torch.isnan(s[:, _LB]))  # [b]
    same_a = (ask == s[:, _LA]) | (torch.isnan(ask) & torch.isnan(s[:, _LA]))  # [b]
    unchanged = (~first) & (lp == lp_old) & same_b & same_a  # [b]
    s[:, _SAME] = torch.where(unchanged, s[:, _SAME] + 1, torch.zeros_like(r))  # [b]
    p_same = s[:, _PSAME].clamp(1e-3, rc_same_max_p)  # [b]
    limit = (torch.log(p_same).reciprocal() * rc_log_stale_p).clamp_min(float(rc_stale_min))  # [b]
    dt_sd = s[:, _DTV].clamp_min(1e-4).sqrt()  # [b]
    gap_z = torch.where(has_dt, (ldt - s[:, _DTM]) / dt_sd, torch.zeros_like(ldt))  # [b]
    usual_dt = s[:, _DTM].exp()  # [b]
    gap = has_dt & (gap_z > rc_gap_z) & (dt > rc_gap_factor * usual_dt)  # [b]
    fire_stale = ready & ((s[:, _SAME] >= limit) | gap)  # [b]

    # crossed quote
    fire_crossed = quoted & (bid > ask)  # [b]

    # volume burst: short size level vs the slow one
    a_b = rc_burst_alpha
    lss = torch.where(first, lsize, s[:, _LSS] + a_b * (lsize - s[:, _LSS]))  # [b]
    s[:, _LSS] = lss
    lsd = s[:, _LSV].clamp_min(1e-4).sqrt()  # [b]
    bz = (lss - s[:, _LSM]) / (lsd * math.sqrt(a_b / (2.0 - a_b)))  # [b]
    fire_burst = ready & (bz > rc_burst_z)  # [b]

    # per-kind hysteresis
    fires = torch.stack((fire_jump, fire_crash, fire_stale, fire_crossed, fire_burst), 1)  # [b, 5]
    quiet = torch.where(fires, torch.zeros_like(s[:, _QUIET : _QUIET + 5]), s[:, _QUIET : _QUIET + 5] + 1)
    opens = fires & (~open_old)  # [b, 5]
    resolves = open_old & (~fires) & (quiet >= close)  # [b, 5]
    open_new = (open_old | opens) & (~resolves)  # [b, 5]
    s[:, _OPEN : _OPEN + 5] = open_new.float()  # [b, 5]
    s[:, _QUIET : _QUIET + 5] = torch.where(open_new, quiet, torch.zeros_like(quiet))  # [b, 5]
    s[:, _CRO] = torch.where(opens[:, 1], s[:, _CRS], s[:, _CRO])  # [b]
    s[:, _CRL] = torch.where(opens[:, 1], lp, torch.minimum(s[:, _CRL], lp))  # [b]
    kscore = torch.stack(
        (
            ev_pz.abs() / rc_jump_z,
            cstat / rc_crash_z,
            torch.maximum(s[:, _SAME] / limit, gap_z / rc_gap_z),
            torch.full_like(r, 1.5),
            bz / rc_burst_z,
        ),
        1,
    )  # [b, 5]
    kscore = (kscore * 0.5).clamp_(0.0, 1.0).masked_fill_(~fires, 0.0)  # [b, 5]

    # statistics, after the rules saw this tick (1/n starts, winsorised once warm)
    a_v = (n.clamp_min(1.0)).reciprocal().clamp_min(1.0 / rc_vol_window)  # [b] per return
    r_w = torch.where(ready, r.clamp(-rc_winsor * sig, rc_winsor * sig), r)  # [b]
    frozen = s[:, _SAME] >= rc_stale_min  # [b] a frozen quote says nothing about volatility
    learn_v = (~first) & (~frozen)  # [b]
    s[:, _RV] = torch.where(learn_v, s[:, _RV] + a_v * (r_w * r_w - s[:, _RV]), s[:, _RV])  # [b]
    nz = (~first) & (absr > 0)  # [b]
    a_nz = torch.where(s[:, _MNZ] == 0, torch.ones_like(a_v), a_v)  # [b] the first move sets it
    s[:, _MNZ] = torch.where(nz, s[:, _MNZ] + a_nz * (torch.minimum(absr, rc_winsor * sig) - s[:, _MNZ]), s[:, _MNZ])
    a_l = (n + 1).reciprocal().clamp_min(1.0 / rc_level_window)  # [b]
    d = lsize - s[:, _LSM]  # [b]
    d = torch.where(ready, torch.minimum(d, 3.0 * lsd), d)  # [b] bursts barely move the level
    s[:, _LSV] = (s[:, _LSV] + a_l * d * d) * (1 - a_l)  # [b]
    s[:, _LSM] = s[:, _LSM] + a_l * d  # [b]
    a_t = torch.where(has_dt, (n.clamp_min(1.0)).reciprocal().clamp_min(1.0 / rc_level_window), torch.zeros_like(n))
    dd = torch.where(ready, torch.minimum(ldt - s[:, _DTM], 3.0 * dt_sd), ldt - s[:, _DTM])  # [b]
    s[:, _DTV] = (s[:, _DTV] + a_t * dd * dd) * (1 - a_t)  # [b]
    s[:, _DTM] = s[:, _DTM] + a_t * dd  # [b]
    a_s = torch.where(quoted & (spread > 0), a_l, torch.zeros_like(a_l))  # [b]
    s[:, _SPM] = s[:, _SPM] + a_s * (spread - s[:, _SPM])  # [b]
    counted = (~first) & (s[:, _SAME] < limit)  # [b] a stale run beyond the limit does not teach "usual"
    a_p = torch.where(counted, a_l, torch.zeros_like(a_l))  # [b]
    s[:, _PSAME] = s[:, _PSAME] + a_p * (unchanged.float() - s[:, _PSAME])  # [b]
    s[:, _LP] = lp
    s[:, _LB] = bid
    s[:, _LA] = ask
    s[:, _N] = n + 1

    lvol = 0.5 * torch.log(s[:, _RV].clamp_min(1e-14))  # [b]
    feats = torch.stack((r, absr, spread, lsize, ldt, lvol), 1)  # [b, 6]
    evidence = torch.stack(
        (
            z,
            sig,
            ev_pz,
            ev_pr,
            ev_ps,
            ev_plp,
            cstat,
            run,
            s[:, _CUM],
            s[:, _CRS],
            s[:, _CRO],
            s[:, _CRL],
            s[:, _SAME],
            limit,
            torch.where(has_dt, dt, torch.zeros_like(dt)),
            usual_dt,
            gap_z,
            torch.expm1(lss),
            torch.expm1(s[:, _LSM]),
            bz,
            s[:, _SPM],
        ),
        1,
    )  # [b, 21]
    trans = opens.float() - resolves.float()  # [b, 5]
    return feats, quoted, lp_old, first, evidence, trans, kscore, open_new


def _script(fn: Any) -> Any:
    """``fn`` compiled by TorchScript, with the aux column names (``_N``, ``_LP``...: module globals,
    which TorchScript cannot close over) written in as the numbers they are."""
    cols = {k: v for k, v in globals().items() if re.fullmatch(r"_[A-Z]+", k) and isinstance(v, int)}
    src = textwrap.dedent(inspect.getsource(fn))
    src = re.sub(r"\b_[A-Z]+\b", lambda m: str(cols.get(m.group(0), m.group(0))), src)
    src = src.replace("Tensor | None", "Optional[Tensor]").replace("-> tuple[", "-> Tuple[")
    return getattr(torch.jit.CompilationUnit(src), fn.__name__)


# Scripted once at import: the same ATen kernels as eager mode (bitwise the same results:
# tests/test_ticks_script.py) at ~40 % of eager's cost per wave (run unoptimised: see featurise).
# SEQSTREAM_TICKS_EAGER=1 runs the Python function instead (to debug it).
_RULES = _tick_rules if os.environ.get("SEQSTREAM_TICKS_EAGER") else _script(_tick_rules)
# On the CPU the rules run as one compiled loop over a wave's rows (models/_tick_kernel.py: a few µs
# per wave instead of ~650); SEQSTREAM_TICKS_KERNEL=0 (or SEQSTREAM_TICKS_EAGER=1) runs _RULES there too.
_KERNEL = (
    os.environ.get("SEQSTREAM_TICKS_KERNEL", "1") != "0" and not os.environ.get("SEQSTREAM_TICKS_EAGER") and AVAILABLE
)


class TickFeatures(Features):
    """``ticks``: ``[price, size, bid, ask]`` per event; see the module docstring.

    Example:
        >>> cfg = NetConfig(input_size=7, output_size=2, hidden_size=8, inputs="ticks", residual=False)
        >>> f = TickFeatures(cfg, ScoringConfig())
        >>> f.raw_size, f.needs_dt, f.valid(np.array([[10.0, 5.0, np.nan, np.nan]], np.float32)).tolist()
        (4, True, [True])
    """

    kind = "ticks"
    needs_dt = True

    def __init__(self, config: NetConfig, scoring: ScoringConfig, rules: TickConfig | None = None) -> None:
        if config.input_size != N_TICK_FEATURES or config.out_size != N_TICK_TARGETS:
            raise ConfigError(
                f"a ticks model takes {N_TICK_FEATURES} features and forecasts {N_TICK_TARGETS} "
                f"(next return and |return|); got input_size {config.input_size}, output_size {config.out_size}"
            )
        if scoring.n_phases or scoring.shift_short:
            raise ConfigError(
                "the ticks features have no season/profile/shift channels; turn them off in the scoring config"
            )
        self.config = config
        self.scoring = scoring
        self.rules = rules or TickConfig()
        self.scorer = Scorer(scoring, N_TICK_FEATURES - 1, n_targets=N_TICK_TARGETS)
        self.raw_size = RAW_TICK
        self.n_extra = N_PACKED_EXTRA
        self._o = self.scorer.size
        self._close = {torch.device("cpu"): torch.tensor(self.rules.close_after, dtype=torch.float32)}  # [5]
        rc = self.rules
        self._rule_args = (
            rc.warmup,
            rc.vol_window,
            rc.level_window,
            rc.jump_z,
            rc.run_z,
            rc.crash_z,
            rc.stale_min,
            math.log(rc.stale_p),
            rc.same_max_p,
            rc.gap_z,
            rc.gap_factor,
            rc.burst_alpha,
            rc.burst_z,
            rc.winsor,
        )
        # the compiled CPU loops (models/_tick_kernel.py), compiled now rather than in the first batch
        self._kernel = TickKernel(self.rules, self.aux_size, self._o) if _KERNEL else None

    @property
    def aux_size(self) -> int:
        return self.scorer.size + _OWN

    def _close_on(self, dev: torch.device) -> Tensor:
        c = self._close.get(dev)
        if c is None:
            c = self._close[dev] = self._close[torch.device("cpu")].to(dev)
        return c

    @property
    def in_place(self) -> bool:
        # the compiled rules and scorer take the slab's rows; the torch rules work on views of gathered rows
        return self._kernel is not None and _KERNEL and self.scorer.in_place

    def init_row(self) -> Tensor:
        own = torch.zeros(_OWN)  # [S]
        own[_RV] = 1e-6  # (0.1 % per tick)^2 until the first return
        own[_LB] = own[_LA] = float("nan")
        return torch.cat((self.scorer.init_row(), own))  # [A]

    def valid(self, x: np.ndarray) -> np.ndarray:
        ok = np.isfinite(x[:, :2]).all(1) & (x[:, 0] > 0) & (x[:, 1] >= 0)  # [B]
        return ok & ~np.isinf(x[:, 2:]).any(1)  # type: ignore[no-any-return]

    # -- device work -----------------------------------------------------------------------
    def to_inputs(
        self, aux: Tensor, x: Tensor, dt: Tensor | None, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Any]:
        feats, quoted, ctx = self.featurise(aux, x, dt, rows)  # [b, 6], [b]
        x_norm, err = self.scorer.pre(aux, feats, rows=rows)  # [b, 6], [b]
        inp = torch.cat((x_norm, quoted.float().unsqueeze(1)), 1)  # [b, 7]
        target = x_norm[:, :N_TICK_TARGETS]  # [b, 2]
        return inp, err, target, ctx

    # a sequence step: the rules' inputs are the ticks themselves, never the forecasts, so a symbol's ticks
    # of one batch run the rules and the normaliser in one call, the model per tick, then the scoring
    def step_pre(self, aux: Tensor, x: Tensor, dt: Tensor | None, rows: Tensor) -> tuple[Tensor, Any]:
        feats, quoted, ctx = self.featurise(aux, x, dt, rows)  # [N, 6], [N]: the rules, every tick in order
        x_norm, mv = self.scorer.pre_seq(aux, feats, rows)  # [N, 6], [N, 4]
        inp = torch.cat((x_norm, quoted.float().unsqueeze(1)), 1)  # [N, 7]
        return inp, (x_norm, mv, ctx)

    def step_post(self, aux: Tensor, x: Tensor, forecast: Tensor, ctx: Any, rows: Tensor) -> Tensor:
        x_norm, mv, rules = ctx
        sc = self.scorer.post_seq(aux, x_norm, mv, forecast, rows)  # [N, 7]
        assert self._kernel is not None
        return self._kernel.pack(x, sc, rules)  # [N, 11 + 33]

    def featurise(
        self, aux: Tensor, x: Tensor, dt: Tensor | None, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Any]:
        """Raw features ``[b, 6]`` (columns 0-5 of the module docstring), ``quoted[b]`` and the rules'
        context; runs the rules and updates the symbols' own ``aux`` columns in place (``rows[b]``: the
        wave's rows of the slab's whole ``aux``, where :attr:`in_place`).

        Example:
            >>> cfg = NetConfig(input_size=7, output_size=2, inputs="ticks", residual=False)
            >>> f = TickFeatures(cfg, ScoringConfig())
            >>> aux = f.init_row().unsqueeze(0).clone()  # [1, A]
            >>> _ = f.featurise(aux, torch.tensor([[100.0, 9.0, 99.9, 100.1]]), None)
            >>> feats, quoted, _ = f.featurise(aux, torch.tensor([[101.0, 99.0, float("nan"), float("nan")]]),
            ...                                torch.tensor([2.0]))
            >>> [round(v, 4) for v in feats[0].tolist()], quoted.tolist()
            ([0.01, 0.01, 0.0, 4.6052, 0.6931, -4.6102], [False])
        """
        if self._on_kernel(aux, x):
            assert self._kernel is not None
            return self._kernel.featurise(aux, x, dt, rows=rows)
        torch_path_rows(rows, "the ticks rules in torch")
        s = aux[:, self._o : self._o + _OWN]  # [b, S] view: the rules update it in place
        # the executor's optimising pass specialises on shapes, and every wave has another size
        with torch.jit.optimized_execution(False):
            feats, quoted, lp_old, first, evidence, trans, kscore, open_new = _RULES(
                s, x, dt, self._close_on(x.device), *self._rule_args
            )  # [b, 6], [b], [b], [b], [b, 21], [b, 5], [b, 5], [b, 5]
        ctx = (lp_old, first, evidence, trans, kscore, open_new)
        return feats, quoted, ctx

    def _on_kernel(self, aux: Tensor, x: Tensor) -> bool:
        """Whether this wave runs the compiled CPU loops (models/_tick_kernel.py)."""
        return self._kernel is not None and _KERNEL and x.device.type == "cpu" and aux.is_contiguous()

    def pack_outputs(
        self, aux: Tensor, err: Tensor, forecast: Tensor, x: Tensor, ctx: Any, rows: Tensor | None = None
    ) -> Tensor:
        lp_old, first, evidence, trans, kscore, open_new = ctx
        sc = self.scorer.post(aux, err, forecast, rows)  # [b, 7]: pred[2], expected[2], score, anomaly, transition
        if self._on_kernel(aux, x):
            assert self._kernel is not None
            return self._kernel.pack(x, sc, ctx)  # [b, 11 + 33]
        torch_path_rows(rows, "the ticks rules in torch")
        s = aux[:, self._o : self._o + _OWN]  # [b, S] view
        price = x[:, 0]  # [b]
        spm = s[:, _SPM]  # [b]
        r_hat, a_hat = sc[:, 0], sc[:, 1]  # [b] each
        p_next = price * r_hat.exp()  # [b]
        pred = torch.stack(
            (p_next, torch.expm1(s[:, _LSM]), p_next * (1 - 0.5 * spm), p_next * (1 + 0.5 * spm)), 1
        )  # [b, 4]
        p_exp = torch.where(first, torch.full_like(price, float("nan")), (lp_old + sc[:, 2]).exp())  # [b]
        expected = torch.stack(
            (p_exp, torch.expm1(s[:, _LSM]), p_exp * (1 - 0.5 * spm), p_exp * (1 + 0.5 * spm)), 1
        )  # [b, 4]
        score = torch.maximum(sc[:, 4], kscore.amax(1))  # [b]
        anomaly = open_new.any(1)  # [b]
        opened = (trans > 0).any(1)  # [b]
        resolved = (trans < 0).any(1)  # [b]
        transition = opened.float() - (resolved & ~opened).float()  # [b]
        s_hat = _SQRT_HALF_PI * a_hat.clamp_min(0.0)  # [b]
        head = torch.stack((score, anomaly.float(), transition, r_hat, s_hat), 1)  # [b, 5]
        # the column order models.tick_alerts names (FORECAST_COLS, the evidence, per-kind transitions and scores)
        return torch.cat((pred, expected, head, evidence, trans, kscore), 1)  # [b, 11 + 33]

    def forecast(self, packed: np.ndarray) -> np.ndarray | None:
        return packed[:, FORECAST_COLS]  # [B, 2] next return, volatility

    # -- alerts ----------------------------------------------------------------------------
    def alerts(
        self, stream_ids: Sequence[str], ts: np.ndarray, x: np.ndarray, packed: np.ndarray, rows: np.ndarray
    ) -> list[Alert]:
        return tick_alerts(stream_ids, ts, x, packed, rows, self.rules)
