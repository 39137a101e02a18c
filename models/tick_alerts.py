"""Tick alerts: the rule kinds, their thresholds (:class:`TickConfig`), the packed output columns
their evidence travels in, and how one row's transitions read as :class:`~models.types.Alert` records.

The rules themselves run on the device with the features (:meth:`models.ticks.TickFeatures.featurise`,
described in :mod:`models.ticks`); this is the host side that turns their packed per-row evidence
into alerts with a one-line explanation each (expected vs actual values and why the rule fired).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import ConfigError
from .types import Alert

__all__ = ["KINDS", "RAW_TICK", "TickConfig", "tick_alerts"]

RAW_TICK = 4  # price, size, bid, ask
KINDS = ("jump", "flash_crash", "stale_quote", "crossed_quote", "volume_burst")

# packed output columns after [prediction[4], expected[4], score, anomaly, transition]: what
# TickFeatures.pack_outputs (models/ticks.py) writes, in this order, and what the alerts read
_EXTRA0 = 2 * RAW_TICK + 3  # first extra column
(
    _X_RHAT,
    _X_SHAT,
    _X_Z,
    _X_SIG,
    _X_PZ,
    _X_PR,
    _X_PS,
    _X_PLP,
    _X_CSTAT,
    _X_RUN,
    _X_CUM,
    _X_CRS,
    _X_CRO,
    _X_CRL,
    _X_SAME,
    _X_SLIM,
    _X_DT,
    _X_DTU,
    _X_GAPZ,
    _X_BURST,
    _X_LEVEL,
    _X_BZ,
    _X_SPREAD,
) = range(_EXTRA0, _EXTRA0 + 23)
_X_TRANS = _EXTRA0 + 23  # [5] per-kind transition
_X_KSCORE = _EXTRA0 + 28  # [5] per-kind rule score
N_PACKED_EXTRA = 33  # columns after the common 2 * RAW_TICK + 3
FORECAST_COLS = slice(_X_RHAT, _X_SHAT + 1)  # the model's own forecast: next return, volatility


@dataclass(frozen=True)
class TickConfig:
    """Thresholds and horizons (in ticks of one symbol) of the tick features and rules."""

    warmup: int = 60
    vol_window: int = 50
    level_window: int = 200
    close_after: tuple[int, ...] = (5, 20, 20, 5, 20)  # per kind (KINDS order), ticks without it
    jump_z: float = 7.0
    run_z: float = 2.5
    crash_z: float = 6.5
    stale_min: int = 8
    stale_p: float = 1e-4
    same_max_p: float = 0.95
    gap_z: float = 5.0
    gap_factor: float = 30.0
    burst_alpha: float = 0.5
    burst_z: float = 4.5
    winsor: float = 3.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "close_after", tuple(int(c) for c in self.close_after))  # JSON gives lists
        if len(self.close_after) != len(KINDS) or min(self.close_after) < 1:
            raise ConfigError(f"close_after needs one value >= 1 per kind {KINDS}")
        if min(self.vol_window, self.level_window) < 1 or self.warmup < 0:
            raise ConfigError("tick windows must be >= 1 and warmup >= 0")
        if not 0.0 < self.burst_alpha <= 1.0 or not 0.0 < self.stale_p < 1.0:
            raise ConfigError("burst_alpha must be in (0, 1] and stale_p in (0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tick_alerts(
    stream_ids: Sequence[str], ts: np.ndarray, x: np.ndarray, packed: np.ndarray, rows: np.ndarray, rules: TickConfig
) -> list[Alert]:
    """The alerts of ``rows`` (positions in the batch, ``packed[rows]`` their outputs): one per kind
    that opened or resolved at that row, in :data:`KINDS` order."""
    out = []
    for i in rows.tolist():
        p = packed[i]
        for k, kind in enumerate(KINDS):
            t = p[_X_TRANS + k]
            if t == 0:
                continue
            state = "open" if t > 0 else "resolved"
            expected, actual, why = _explain(kind, state, p, x[i], rules)
            score = float(p[_X_KSCORE + k]) if state == "open" else 0.0
            out.append(
                Alert(
                    index=i,
                    stream_id=stream_ids[i],
                    ts=float(ts[i]),
                    state=state,
                    score=score,
                    expected=expected,
                    actual=actual,
                    kind=kind,
                    explanation=f"{kind.replace('_', ' ')} {state}: {why}",
                )
            )
    return out


def _pct(v: float) -> str:
    return f"{100.0 * v:+.2f}%"


def _explain(
    kind: str, state: str, p: np.ndarray, x: np.ndarray, rc: TickConfig
) -> tuple[list[float], list[float], str]:
    """Expected vs actual values and a one-line explanation of one kind's transition."""
    price, size, bid, ask = (float(v) for v in x)
    quiet = rc.close_after[KINDS.index(kind)]
    if kind == "jump":
        pz, pr, ps, plp = (float(p[c]) for c in (_X_PZ, _X_PR, _X_PS, _X_PLP))
        if state == "resolved":
            return [0.0], [float(p[_X_Z])], f"no jump for {quiet} ticks"
        return (
            [ps],
            [pr],
            f"the previous tick moved {_pct(pr)} ({math.exp(plp):.6g} -> {math.exp(plp + pr):.6g}), "
            f"{abs(pz):.1f}x the realised volatility {100 * ps:.3f}% per tick (alert above {rc.jump_z:g}x), "
            f"and the move was not continued",
        )
    if kind == "flash_crash":
        cro, crl = float(p[_X_CRO]), float(p[_X_CRL])
        if state == "resolved":
            drop = cro - crl
            back = (math.log(price) - crl) / drop if drop > 0 else 1.0
            return (
                [math.exp(cro)],
                [price],
                f"price {price:.6g} is back to {_pct(math.log(price) - cro)} of its level before the drop "
                f"({math.exp(cro):.6g}; low {math.exp(crl):.6g}, {100 * min(max(back, 0.0), 9.99):.0f}% recovered)",
            )
        run, cum, sig, cstat = int(p[_X_RUN]), float(p[_X_CUM]), float(p[_X_SIG]), float(p[_X_CSTAT])
        return (
            [math.exp(cro)],
            [price],
            f"price fell {_pct(cum)} in {run} ticks ({math.exp(cro):.6g} -> {price:.6g}), {cstat:.1f}x the "
            f"volatility expected over {run} ticks ({100 * sig * math.sqrt(run):.3f}%; alert above {rc.crash_z:g}x)",
        )
    if kind == "stale_quote":
        same, limit, dt, udt, gz = (float(p[c]) for c in (_X_SAME, _X_SLIM, _X_DT, _X_DTU, _X_GAPZ))
        if state == "resolved":
            return [0.0], [same], f"quotes updating again for {quiet} ticks"
        if same >= limit:
            return (
                [limit],
                [same],
                f"price, bid and ask unchanged for {same:.0f} ticks (price {price:.6g}); this symbol's usual "
                f"unchanged-tick rate makes {limit:.0f} or more unlikely (p < {rc.stale_p:g})",
            )
        return [udt], [dt], f"no tick for {dt:.3g} s; the usual inter-arrival is {udt:.3g} s ({gz:.1f} sd on log scale)"
    if kind == "crossed_quote":
        if state == "resolved":
            return [0.0], [ask - bid], f"bid below ask again for {quiet} ticks"
        return [bid], [ask], f"bid {bid:.6g} is above ask {ask:.6g} (by {_pct((bid - ask) / ask)[1:]})"
    burst, level, bz = float(p[_X_BURST]), float(p[_X_LEVEL]), float(p[_X_BZ])
    if state == "resolved":
        return [level], [size], f"sizes back near the usual {level:.4g} for {quiet} ticks"
    return (
        [level],
        [burst],
        f"recent trade size {burst:.4g} (last {size:.4g}) is {burst / max(level, 1e-9):.0f}x the usual {level:.4g} "
        f"({bz:.1f} sd on log scale; alert above {rc.burst_z:g})",
    )
