"""Simulated input streams for every source, with optional labelled anomalies.

- ``sensors``: per stream a daily-like seasonal wave + slow drift + noise; anomaly = a level
  sensor gone erratic (jumps of 4-7 amplitudes of random sign) for a few dozen readings.
- ``speech``: 8 log-mel-like features per frame from a per-speaker spectral profile, smoothed
  (AR(1)) with voiced/silent switching; anomaly = a burst of loud, erratic broadband noise.
- ``ticks``: many symbols at different activity levels (base rates 0.1-2.5 ticks per round):
  self-exciting (Hawkes-like) arrivals with calm/active regimes, a mid price with stochastic
  volatility (log-AR(1)), trades at the bid or ask on a 0.01 price grid, lognormal sizes.
  Injected events (labelled, each with its kind, see :data:`TICK_KINDS`): ``jump`` (one tick
  moves the mid 10-20 effective volatilities), ``flash_crash`` (3-6 ticks down 5-10 volatilities
   each, then 5-20 ticks recovering 60-100 % of it), ``stale_quote`` (price, bid and ask frozen
  for 30-80 ticks), ``crossed_quote`` (bid above ask for 1-3 ticks), ``volume_burst`` (sizes
  15-60x for 5-15 ticks, arrivals 3x). An event's ``length`` is in ticks of its symbol.
- ``machines``: multivariate machines, :data:`MACHINE_CHANNELS` per reading, all driven by one
  latent load (daily-like cycle + AR(1)) so channels are correlated; slow temperature drift;
  missing values (``null``: 2 % at random, and sensor dropouts of 5-30 readings on one channel);
  anomaly (``channel_fault``, labelled with its channel) = one channel goes erratic (jumps of
  3-6 amplitudes of random sign) while the others stay normal.
- ``audio``: 16 kHz PCM frames of 512 samples (32 ms) per stream: low background noise, and speech
  utterances synthesised once with Debian ``espeak-ng`` (several voices and speeds; without
  espeak-ng a formant-burst stand-in that the VAD may not call speech). Injected events are
  utterances on a stream (kind ``speech``, the label's length is the utterance in frames); with
  nothing injected, each stream talks now and then on its own.

Everything is a function of ``seed``: the same arguments give the same events.

Example:
    >>> sim = Simulator("sensors", n_streams=3, seed=1)
    >>> events = sim.round(t=1_700_000_000.0)
    >>> [e.stream for e in events]
    ['sensor-0000', 'sensor-0001', 'sensor-0002']
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import math
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from models.errors import ConfigError

__all__ = [
    "MACHINE_CHANNELS",
    "TICK_KINDS",
    "Anomaly",
    "Event",
    "Simulator",
    "espeak",
    "pcm_b64",
    "produce",
    "resample",
    "speech_bank",
]

log = logging.getLogger(__name__)

_PREFIX = {"sensors": "sensor", "speech": "call", "ticks": "SYM", "audio": "mic", "machines": "machine"}
TICK_KINDS = ("jump", "flash_crash", "stale_quote", "crossed_quote", "volume_burst")
MACHINE_CHANNELS = ("temperature", "vibration", "pressure", "current")
N_SPEECH_FEATURES = 8
AUDIO_RATE, AUDIO_FRAME = 16000, 512
_UTTERANCES = [
    ("en", "The pump on line seven is running hot, please check the pressure valve."),
    ("en-us", "Call the support team and tell them the order has shipped today."),
    ("de", "Guten Morgen, das Wetter ist heute sehr schoen."),
    ("fr", "Bonjour, je voudrais reserver une table pour deux personnes."),
    ("en-gb", "Seven, four, nine, two. Please repeat the number after the tone."),
    ("es", "Buenas tardes, la reunion empieza a las tres."),
]


def resample(x: np.ndarray, sr: int, to: int = AUDIO_RATE) -> np.ndarray:
    """Windowed-sinc low-pass (when downsampling) + linear interpolation; good enough for test audio."""
    if sr == to:
        return x.astype(np.float32)
    if to < sr:
        n = np.arange(-32, 33)
        fc = 0.45 * to / sr
        h = 2 * fc * np.sinc(2 * fc * n) * np.hamming(len(n))
        x = np.convolve(x, h / h.sum(), mode="same")
    t = np.arange(int(len(x) * to / sr)) * (sr / to)
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def espeak(text: str, voice: str = "en", speed: int = 160) -> np.ndarray:
    """``text`` spoken by ``espeak-ng`` as 16 kHz float32 in [-1, 1]; raises ``FileNotFoundError`` without it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install -y espeak-ng)")
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/u.wav"
        subprocess.run(
            [exe, "-v", voice, "-s", str(speed), "-w", path, text], check=True, timeout=60, capture_output=True
        )
        with wave.open(path) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
            return resample(pcm, w.getframerate())


@functools.lru_cache(maxsize=2)
def speech_bank(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Utterances for the ``audio`` source (espeak-ng; formant bursts without it)."""
    try:
        return tuple(espeak(text, voice, 140 + 15 * (i % 4)) for i, (voice, text) in enumerate(_UTTERANCES))
    except (FileNotFoundError, subprocess.SubprocessError) as exc:
        log.warning("audio simulator: %s; using formant bursts, which the VAD may not call speech", exc)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(4):
        n = int(rng.uniform(1.0, 2.0) * AUDIO_RATE)
        t = np.arange(n) / AUDIO_RATE
        f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.8 * t))
        ph = 2 * np.pi * np.cumsum(f0) / AUDIO_RATE
        x = sum(np.sin(k * ph) / k for k in range(1, 30)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
        out.append((0.3 * x / np.abs(x).max()).astype(np.float32))
    return tuple(out)


def pcm_b64(x: np.ndarray) -> str:
    """Float samples in [-1, 1] -> base64 of int16 little-endian (the ``speech-audio`` ``pcm`` field)."""
    return base64.b64encode(np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2").tobytes()).decode()


@dataclass(frozen=True)
class Anomaly:
    """An injected anomaly: ``stream`` misbehaves from its ``start_round`` for ``length`` rounds
    (ticks: ``length`` ticks of the symbol; machines: ``channel`` is the faulty channel)."""

    source: str
    stream: str
    kind: str
    start_round: int
    length: int
    start_ts: float | None = None  # event time of the first anomalous event, once emitted
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    stream: str
    ts: float
    payload: dict[str, Any]
    anomalous: bool = False
    kind: str | None = None  # the injected anomaly's kind on anomalous events

    def key(self) -> bytes:
        return self.stream.encode()

    def value(self) -> bytes:
        return orjson.dumps(self.payload)


@dataclass
class Simulator:
    """Round-based generator: each :meth:`round` advances every stream by one tick.

    ``anomalies`` lists injected anomalies (see :meth:`inject`); ``labels`` records each one with
    the event time at which it started.
    """

    source: str
    n_streams: int
    seed: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)
    labels: list[Anomaly] = field(default_factory=list)
    rounds: int = 0
    prefix: str | None = None

    def __post_init__(self) -> None:
        if self.source not in _PREFIX:
            raise ConfigError(f"unknown source {self.source!r}; expected one of {sorted(_PREFIX)}")
        if self.n_streams < 1:
            raise ConfigError("the simulator needs at least one stream")
        n = self.n_streams
        rng = self.rng = np.random.default_rng(self.seed)
        self.streams = [f"{self.prefix or _PREFIX[self.source]}-{i:04d}" for i in range(n)]
        self._index = {s: i for i, s in enumerate(self.streams)}
        if self.source == "sensors":
            self.base = rng.uniform(10, 100, n)  # [n]
            self.amp = self.base * rng.uniform(0.05, 0.3, n)  # [n]
            self.period = rng.integers(50, 400, n).astype(np.float64)  # [n] rounds per cycle
            self.phase = rng.uniform(0, 2 * math.pi, n)  # [n]
            self.noise = self.amp * rng.uniform(0.02, 0.1, n)  # [n]
            self.drift = self.base * rng.normal(0, 1e-5, n)  # [n] per round
        elif self.source == "speech":
            self.profile = rng.normal(-4.0, 1.0, (n, N_SPEECH_FEATURES))  # [n, 8]
            self.state = self.profile.copy()  # [n, 8]
            self.voiced = rng.random(n) < 0.5  # [n]
        elif self.source == "audio":
            self.bank = speech_bank(self.seed)
            self.noise_level = rng.uniform(0.0005, 0.004, n)  # [n] background noise std
            self.gain = rng.uniform(0.4, 0.9, n)  # [n]
            self.clip = np.full(n, -1, np.int64)  # [n] utterance being spoken (-1: none)
            self.pos = np.zeros(n, np.int64)  # [n] next sample of it
        elif self.source == "ticks":
            self.market = _TickMarket(n, rng)
        else:
            self.machines = _Machines(n, rng)

    def inject(
        self, n: int, first_round: int, last_round: int, length: int = 30, kind: str | None = None
    ) -> list[Anomaly]:
        """Plan ``n`` anomalies on distinct streams, starting between the given rounds.

        ``kind``: ticks take one of :data:`TICK_KINDS` (default: the kinds in turn) and size each
        event themselves (``length`` is ignored); machines pick a random faulty channel.
        """
        n = min(n, self.n_streams)
        rng = np.random.default_rng(self.seed + 7919 + len(self.anomalies))
        streams = rng.choice(self.n_streams, n, replace=False)
        starts = rng.integers(first_round, max(first_round + 1, last_round), n)
        default = {
            "sensors": "erratic",
            "speech": "noise_burst",
            "ticks": "",
            "audio": "speech",
            "machines": "channel_fault",
        }[self.source]
        planned = []
        for st, r in zip(streams.tolist(), starts.tolist()):
            k = kind or default or TICK_KINDS[len(self.anomalies) % len(TICK_KINDS)]
            planned.append(self.plan(st, int(r), k, length, rng))
        return planned

    def plan(
        self, stream: int, start_round: int, kind: str, length: int = 30, rng: np.random.Generator | None = None
    ) -> Anomaly:
        """Plan one anomaly of ``kind`` on stream number ``stream`` from ``start_round``."""
        if self.source == "ticks" and kind not in TICK_KINDS:
            raise ConfigError(f"unknown tick event kind {kind!r}; expected one of {TICK_KINDS}")
        rng = rng or np.random.default_rng(self.seed + 104729 + len(self.anomalies))
        ln, chan = length, None
        if self.source == "audio":  # an utterance; its length in frames
            ln = -(-len(self.bank[stream % len(self.bank)]) // AUDIO_FRAME)
        elif self.source == "ticks":
            ln = self.market.plan(stream, kind, start_round, rng)
        elif self.source == "machines":
            chan = MACHINE_CHANNELS[int(rng.integers(0, len(MACHINE_CHANNELS)))]
        a = Anomaly(self.source, self.streams[stream], kind, start_round, ln, channel=chan)
        self.anomalies.append(a)
        return a

    def _active(self) -> np.ndarray:
        act = np.zeros(self.n_streams, bool)  # [n]
        if self.source == "ticks":  # tick events last a number of ticks, run by the market
            return act
        for a in self.anomalies:
            if a.start_round <= self.rounds < a.start_round + a.length:
                act[self._index[a.stream]] = True
        return act

    def round(self, t: float) -> list[Event]:
        """Events of one round at event time ``t`` (ticks: a bursty number per symbol)."""
        act = self._active()
        k = self.rounds
        rng = self.rng
        events: list[Event] = []
        if self.source == "sensors":
            v = (
                self.base
                + self.amp * np.sin(2 * math.pi * k / self.period + self.phase)
                + self.drift * k
                + self.noise * rng.standard_normal(self.n_streams)
            )  # [n]
            # anomaly: the sensor goes erratic (large jumps of random sign every reading)
            jump = rng.choice([-1.0, 1.0], self.n_streams) * rng.uniform(4.0, 7.0, self.n_streams) * self.amp  # [n]
            v = np.where(act, v + jump, v)  # [n]
            for i, s in enumerate(self.streams):
                events.append(Event(s, t, {"stream": s, "ts": t, "values": [round(float(v[i]), 6)]}, bool(act[i])))
        elif self.source == "speech":
            switch = rng.random(self.n_streams) < 0.03  # [n]
            self.voiced ^= switch
            target = np.where(self.voiced[:, None], self.profile + 3.0, self.profile - 2.0)  # [n, 8]
            self.state = 0.8 * self.state + 0.2 * target + 0.1 * rng.standard_normal(self.state.shape)  # [n, 8]
            burst = 15.0 * rng.standard_normal(self.state.shape)  # [n, 8] loud broadband noise
            f = np.where(act[:, None], self.state + burst, self.state)  # [n, 8]
            for i, s in enumerate(self.streams):
                events.append(Event(s, t, {"stream": s, "ts": t, "features": np.round(f[i], 5).tolist()}, bool(act[i])))
        elif self.source == "audio":
            n = self.n_streams
            for a in self.anomalies:
                if a.start_round == k:
                    i = self.streams.index(a.stream)
                    self.clip[i], self.pos[i] = i % len(self.bank), 0
            if not self.anomalies:  # free talk: an utterance now and then
                talk = (self.clip < 0) & (rng.random(n) < 0.01)
                self.clip[talk] = rng.integers(0, len(self.bank), int(talk.sum()))
                self.pos[talk] = 0
            x = rng.standard_normal((n, AUDIO_FRAME)) * self.noise_level[:, None]  # [n, 512]
            for i in map(int, np.flatnonzero(self.clip >= 0)):
                u = self.bank[int(self.clip[i])]
                seg = u[self.pos[i] : self.pos[i] + AUDIO_FRAME]
                x[i, : len(seg)] += self.gain[i] * seg
                self.pos[i] += AUDIO_FRAME
                if self.pos[i] >= len(u):
                    self.clip[i] = -1
            for i, s in enumerate(self.streams):
                events.append(Event(s, t, {"stream": s, "ts": t, "pcm": pcm_b64(x[i])}, bool(act[i])))
        elif self.source == "ticks":
            events = self.market.round(self.streams, t, k, rng)
        else:
            faults = {
                self._index[a.stream]: a.channel
                for a in self.anomalies
                if a.start_round <= k < a.start_round + a.length
            }
            events = self.machines.round(self.streams, t, k, rng, faults)
        for a in self.anomalies:
            if a.start_round == k:
                start = t
                if self.source == "ticks":  # the symbol's first tick of the event
                    start = next((e.ts for e in events if e.stream == a.stream and e.kind == a.kind), t)
                self.labels.append(
                    Anomaly(a.source, a.stream, a.kind, a.start_round, a.length, start, channel=a.channel)
                )
        self.rounds += 1
        return events

    def mean_events_per_round(self) -> float:
        if self.source == "ticks":
            return self.market.mean_rate()
        return float(self.n_streams)


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


class _TickMarket:
    """Microstructure of ``n`` symbols; see the module docstring (``ticks``)."""

    STEP = 0.01  # price grid

    def __init__(self, n: int, rng: np.random.Generator) -> None:
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

    def plan(self, i: int, kind: str, start_round: int, rng: np.random.Generator) -> int:
        """Plan one event on symbol ``i``; returns its length in ticks."""
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
        return ev.ticks

    def mean_rate(self) -> float:
        """Expected ticks per round over all symbols (stationary; arrivals excite 0.5x on top)."""
        return float(np.sum(self.base * (1 + 2 * 0.3)) * 2.0)

    def round(self, streams: list[str], t: float, k: int, rng: np.random.Generator) -> list[Event]:
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


class _Machines:
    """Multivariate machines; see the module docstring (``machines``)."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        f = len(MACHINE_CHANNELS)
        self.n = n
        self.period = rng.integers(100, 400, n).astype(np.float64)  # [n] rounds per load cycle
        self.phase = rng.uniform(0, 2 * math.pi, n)  # [n]
        self.ar = np.zeros(n)  # [n] load AR(1) part
        # channel = offset + gain * load + noise; temperature also drifts slowly
        self.offset = np.array([40.0, 2.0, 5.0, 10.0]) * rng.uniform(0.8, 1.2, (n, f))  # [n, F]
        self.gain = np.array([30.0, 3.0, 2.0, 20.0]) * rng.uniform(0.7, 1.3, (n, f))  # [n, F]
        self.noise = np.array([0.3, 0.15, 0.05, 0.4]) * rng.uniform(0.7, 1.5, (n, f))  # [n, F]
        self.drift = rng.normal(0.0, 2e-3, n)  # [n] temperature units per round
        self.dropout = np.zeros((n, f), np.int64)  # [n, F] rounds left of a sensor dropout

    def round(
        self, streams: list[str], t: float, k: int, rng: np.random.Generator, faults: dict[int, str | None]
    ) -> list[Event]:
        n, f = self.n, len(MACHINE_CHANNELS)
        self.ar = 0.95 * self.ar + 0.03 * rng.standard_normal(n)  # [n]
        load = 0.6 + 0.25 * np.sin(2 * math.pi * k / self.period + self.phase) + self.ar  # [n]
        v = self.offset + self.gain * load[:, None] + self.noise * rng.standard_normal((n, f))  # [n, F]
        v[:, 0] += self.drift * k
        amp = 0.25 * self.gain  # [n, F] the load cycle's amplitude per channel
        erratic = rng.choice([-1.0, 1.0], (n, f)) * rng.uniform(3.0, 6.0, (n, f)) * amp  # [n, F]
        start = (rng.random((n, f)) < 0.002) & (self.dropout == 0)  # [n, F]
        self.dropout = np.where(start, rng.integers(5, 31, (n, f)), np.maximum(self.dropout - 1, 0))  # [n, F]
        missing = (rng.random((n, f)) < 0.02) | (self.dropout > 0)  # [n, F]
        events = []
        for i, s in enumerate(streams):
            row = v[i]
            chan = faults.get(i)
            if chan is not None:
                c = MACHINE_CHANNELS.index(chan)
                row = row.copy()
                row[c] += erratic[i, c]
            vals: list[float | None] = [None if missing[i, c] else round(float(row[c]), 5) for c in range(f)]
            if chan is not None:
                vals[MACHINE_CHANNELS.index(chan)] = round(float(row[MACHINE_CHANNELS.index(chan)]), 5)
            if all(x is None for x in vals):
                vals[0] = round(float(row[0]), 5)
            fault = chan is not None
            events.append(
                Event(s, t, {"stream": s, "ts": t, "values": vals}, fault, "channel_fault" if fault else None)
            )
        return events


async def produce(
    bootstrap: Any,
    topic: str,
    sim: Simulator,
    *,
    rate: float,
    seconds: float,
    kafka_kwargs: dict[str, Any] | None = None,
    on_round: Callable[[int, list[Event]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Produce ``sim`` rounds in real time at about ``rate`` events/s; returns the events sent.

    Each round is sent with one ``send_batch`` per partition (see :class:`stream.engine.BulkProducer`).
    """
    from aiokafka import AIOKafkaProducer

    from .engine import BulkProducer
    from .pipeline import Output

    if rate <= 0:
        raise ConfigError("--rate must be > 0")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, **(kafka_kwargs or {})
    )
    await producer.start()
    bulk = BulkProducer(producer)
    interval = sim.mean_events_per_round() / rate
    sent = 0
    t_start = time.monotonic()
    pending: list[asyncio.Future[Any]] = []
    try:
        while time.monotonic() - t_start < seconds and not (stop is not None and stop.is_set()):
            events = sim.round(time.time())
            if on_round is not None:
                on_round(sim.rounds - 1, events)
            pending.extend(await bulk.send_all([Output(topic, e.key(), e.value()) for e in events]))
            sent += len(events)
            if len(pending) > 256:
                await asyncio.gather(*pending)
                pending.clear()
            delay = t_start + sim.rounds * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
        if pending:
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
