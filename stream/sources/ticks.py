"""The ``ticks`` source: market trades and quotes, one tick per event, at bursty rates per symbol.

Wire format (topic ``market-ticks``; key = symbol): ``{"stream": "AAPL", "ts": ..., "price": float,
"size": float, "bid": float|null, "ask": float|null}`` -> ``[price, size, bid, ask]`` (missing bid/ask
NaN) for a ticks model (4 inputs, see :mod:`models.ticks`), or ``[log(price), log1p(size)]`` for a
plain 2-input forecaster; ``price <= 0`` or ``size < 0`` is ``out_of_range``.

Simulated: many symbols at different activity levels (base rates 0.1-2.5 ticks per round):
self-exciting (Hawkes-like) arrivals with calm/active regimes, a mid price with stochastic
volatility (log-AR(1)), trades at the bid or ask on a 0.01 price grid, lognormal sizes. Injected
events (labelled, each with its kind, see :data:`TICK_KINDS`): ``jump`` (one tick moves the mid
10-20 effective volatilities), ``flash_crash`` (3-6 ticks down 5-10 volatilities each, then 5-20
ticks recovering 60-100 % of it), ``stale_quote`` (price, bid and ask frozen for 30-80 ticks),
``crossed_quote`` (bid above ask for 1-3 ticks), ``volume_burst`` (sizes 15-60x for 5-15 ticks,
arrivals 3x). An event's ``length`` is in ticks of its symbol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from models.errors import ConfigError
from models.ticks import N_TICK_FEATURES, N_TICK_TARGETS, RAW_TICK

from ..codec.decode import BadInput, number
from .base import Event, Round, Simulation, Source, Wire

__all__ = ["SOURCE", "TICK_KINDS", "TickMsg"]

TICK_KINDS = ("jump", "flash_crash", "stale_quote", "crossed_quote", "volume_burst")


class TickMsg(msgspec.Struct, gc=False):
    stream: str
    ts: float | str
    price: float
    size: float
    bid: float | None = None
    ask: float | None = None


def careful(obj: dict[str, Any], n: int) -> list[float]:
    price = number(obj, "price")
    size = number(obj, "size")
    bid = number(obj, "bid", nullable=True)
    ask = number(obj, "ask", nullable=True)
    assert price is not None and size is not None
    if price <= 0.0:
        raise BadInput("out_of_range", f"price must be > 0, got {price}")
    if size < 0.0:
        raise BadInput("out_of_range", f"size must be >= 0, got {size}")
    if n == 4:  # a ticks model featurises per symbol (models.ticks)
        return [price, size, math.nan if bid is None else bid, math.nan if ask is None else ask]
    if n != 2:
        raise BadInput(
            "wrong_length", f"ticks give [price, size, bid, ask] or [log(price), log1p(size)]; the model takes {n}"
        )
    return [math.log(price), math.log1p(size)]


def fast(msgs: list[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    m = len(msgs)
    if n not in (2, 4):  # wrong_length: the careful path says so
        return np.zeros((m, n)), np.zeros(m, bool)
    price = np.array([t.price for t in msgs], np.float64)  # [m]
    size = np.array([t.size for t in msgs], np.float64)
    bid = np.array([t.bid for t in msgs], np.float64)  # None -> NaN
    ask = np.array([t.ask for t in msgs], np.float64)
    good = np.isfinite(price) & np.isfinite(size) & ~np.isinf(bid) & ~np.isinf(ask) & (price > 0.0) & (size >= 0.0)
    if n == 4:
        return np.stack([price, size, bid, ask], 1), good  # [m, 4]
    # math.log per row, as on the careful path (np.log may differ in the last bit)
    lp = [math.log(p) if g else 0.0 for p, g in zip(price.tolist(), good.tolist())]
    ls = [math.log1p(s) if g else 0.0 for s, g in zip(size.tolist(), good.tolist())]
    return np.array([lp, ls], np.float64).T, good  # [m, 2]


@dataclass
class _TickEvent:
    """A planned tick event of one symbol (all parameters drawn when planned)."""

    kind: str
    start_round: int
    ticks: int  # length in ticks
    sign: float = 1.0
    size: float = 0.0  # jump / per-tick drop in effective volatilities; burst size multiplier
    down: int = 0  # flash crash: ticks down (the rest recover)
    recover: float = 1.0  # flash crash: share of the drop recovered
    cross: int = 1  # crossed quote: bid above ask by this many price steps
    done: int = 0  # ticks emitted so far
    drop: float = 0.0  # flash crash: log drop so far


class TickSim(Simulation):
    """Microstructure of ``n`` symbols; see the module docstring."""

    prefix = "SYM"
    anomaly = ""
    kinds = TICK_KINDS

    STEP = 0.01  # price grid

    def __init__(self, n: int, rng: np.random.Generator, seed: int) -> None:
        self.n = n
        self.mid = np.exp(rng.uniform(math.log(5.0), math.log(500.0), n))  # [n]
        self.hbar = np.log(rng.uniform(2e-4, 1.5e-3, n))  # [n] mean log volatility per tick
        self.h = self.hbar + rng.normal(0.0, 0.3, n)  # [n] log volatility per tick (stochastic)
        self.base = np.exp(rng.uniform(math.log(0.1), math.log(2.5), n))  # [n] ticks per round, calm
        self.excite = np.zeros(n)  # [n] self-excitation of arrivals
        self.active = rng.random(n) < 0.3  # [n] active regime (3x arrivals)
        self.half = rng.uniform(1e-4, 8e-4, n)  # [n] relative half-spread
        self.size_mu = rng.uniform(2.0, 6.0, n)  # [n] log size
        self.size_sd = rng.uniform(0.6, 1.2, n)  # [n]
        self.last_ts = np.full(n, -np.inf)  # [n]
        self.last_quote: list[tuple[float, float, float] | None] = [None] * n
        self.planned: dict[int, list[_TickEvent]] = {}
        self.running: dict[int, _TickEvent] = {}
        self.prev_t: float | None = None
        self.spacing = 0.0

    def plan(
        self, i: int, kind: str, start_round: int, length: int, rng: np.random.Generator
    ) -> tuple[int, str | None]:
        """Plan one event on symbol ``i``; its length is in ticks (``length`` is not used)."""
        if kind not in TICK_KINDS:
            raise ConfigError(f"unknown tick event kind {kind!r}; expected one of {TICK_KINDS}")
        if kind == "jump":
            ev = _TickEvent(kind, start_round, 1, sign=float(rng.choice([-1.0, 1.0])), size=rng.uniform(10, 20))
        elif kind == "flash_crash":
            down, up = int(rng.integers(3, 7)), int(rng.integers(5, 21))
            ev = _TickEvent(
                kind, start_round, down + up, size=rng.uniform(4, 8), down=down, recover=rng.uniform(0.6, 1)
            )
        elif kind == "stale_quote":
            ev = _TickEvent(kind, start_round, int(rng.integers(30, 81)))
        elif kind == "crossed_quote":
            ev = _TickEvent(kind, start_round, int(rng.integers(1, 4)), cross=int(rng.integers(1, 4)))
        else:
            ev = _TickEvent(kind, start_round, int(rng.integers(5, 16)), size=rng.uniform(15, 60))
        self.planned.setdefault(i, []).append(ev)
        return ev.ticks, None

    def mean_rate(self) -> float:
        """Expected ticks per round over all symbols (stationary; arrivals excite 0.5x on top)."""
        return float(np.sum(self.base * (1 + 2 * 0.3)) * 2.0)

    def round(self, r: Round) -> list[Event]:
        streams, t, k, rng, _active, _anomalies = r
        n = self.n
        if self.prev_t is not None and t > self.prev_t:
            self.spacing = t - self.prev_t
        self.prev_t = t
        self.h = self.hbar + 0.98 * (self.h - self.hbar) + 0.1 * rng.standard_normal(n)  # [n]
        flip = rng.random(n) < np.where(self.active, 0.05, 0.02)  # [n]
        self.active ^= flip
        lam = self.base * np.where(self.active, 3.0, 1.0) + self.excite  # [n]
        for i, evs in self.planned.items():  # events starting now
            for ev in [e for e in evs if e.start_round == k]:
                self.running[i] = ev
        for i, ev in self.running.items():  # faster trading during crashes and bursts
            lam[i] *= 4.0 if ev.kind == "flash_crash" else 3.0 if ev.kind == "volume_burst" else 1.0
        counts = rng.poisson(lam)  # [n]
        for i in self.running:
            counts[i] = max(1, counts[i])
        self.excite = 0.6 * self.excite + 0.2 * counts  # [n]
        events: list[Event] = []
        for i in np.flatnonzero(counts).tolist():
            c = int(counts[i])
            offs = np.sort(rng.random(c)) * 0.9 * self.spacing if self.spacing else np.arange(c) * 1e-4  # [c]
            for j in range(c):
                events.append(self._tick(i, streams[i], max(t + float(offs[j]), float(self.last_ts[i])), rng))
        return events

    def _tick(self, i: int, stream: str, ts: float, rng: np.random.Generator) -> Event:
        self.last_ts[i] = ts
        sig = math.exp(self.h[i])
        q = self.last_quote[i]
        half = float(self.half[i]) if q is None else max(float(self.half[i]), (q[2] - q[1]) / (q[2] + q[1]))
        sig_eff = math.sqrt(sig * sig + 2.0 * half * half)  # with the bid/ask bounce on the price grid
        ev = self.running.get(i)
        size = max(1.0, round(float(rng.lognormal(self.size_mu[i], self.size_sd[i]))))
        kind = ev.kind if ev is not None else None
        freeze = kind == "stale_quote" and self.last_quote[i] is not None
        if not freeze:
            r = sig * float(rng.standard_normal())
            if ev is not None and kind == "jump":
                r += ev.sign * ev.size * sig_eff
            elif ev is not None and kind == "flash_crash":
                if ev.done < ev.down:
                    step = -ev.size * sig_eff
                    ev.drop += step
                    r += step
                else:
                    r += -ev.drop * ev.recover / (ev.ticks - ev.down)
            self.mid[i] *= math.exp(r)
        m, hs, step = float(self.mid[i]), float(self.half[i]), self.STEP
        bid = math.floor(m * (1 - hs) / step) * step
        ask = max(math.ceil(m * (1 + hs) / step) * step, bid + step)
        price = ask if rng.random() < 0.5 else bid
        if freeze:
            price, bid, ask = self.last_quote[i]  # type: ignore[misc]
        elif kind == "crossed_quote" and ev is not None:
            bid = ask + ev.cross * step
        if kind == "volume_burst" and ev is not None:
            size = round(size * ev.size)
        quote = (round(price, 2), round(bid, 2), round(ask, 2))
        if not freeze:
            self.last_quote[i] = quote
        if ev is not None:
            ev.done += 1
            if ev.done >= ev.ticks:
                del self.running[i]
        payload = {"stream": stream, "ts": ts, "price": quote[0], "size": size, "bid": quote[1], "ask": quote[2]}
        return Event(stream, ts, payload, kind is not None, kind)


# per-symbol tick features and targets are made by the model's featuriser (models/ticks.py)
_NET = {"input_size": N_TICK_FEATURES, "output_size": N_TICK_TARGETS, "inputs": "ticks", "residual": False}
SOURCE = Source("market-ticks", Wire(TickMsg, careful, fast), TickSim, RAW_TICK, "ticks_gru.pt", _NET)
