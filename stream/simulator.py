"""Simulated input streams for all three sources, with optional labelled anomalies.

- ``sensors``: per stream a daily-like seasonal wave + slow drift + noise; anomaly = a level
  sensor gone erratic (jumps of 4-7 amplitudes of random sign) for a few dozen readings.
- ``speech``: 8 log-mel-like features per frame from a per-speaker spectral profile, smoothed
  (AR(1)) with voiced/silent switching; anomaly = a burst of loud, erratic broadband noise.
- ``ticks``: per symbol a log-price random walk with its own volatility, bursty Poisson arrivals,
  lognormal sizes and a bid/ask spread; anomaly = erratic trading (price swings of 3-8 % of random
  sign on every tick, 50x sizes).
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

__all__ = ["Anomaly", "Event", "Simulator", "espeak", "pcm_b64", "produce", "resample", "speech_bank"]

log = logging.getLogger(__name__)

_PREFIX = {"sensors": "sensor", "speech": "call", "ticks": "SYM", "audio": "mic"}
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
    """An injected anomaly: ``stream`` misbehaves from its ``start_round`` for ``length`` rounds."""

    source: str
    stream: str
    kind: str
    start_round: int
    length: int
    start_ts: float | None = None  # event time of the first anomalous event, once emitted


@dataclass(frozen=True, slots=True)
class Event:
    stream: str
    ts: float
    payload: dict[str, Any]
    anomalous: bool = False

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
            raise ConfigError(f"unknown source {self.source!r}; expected sensors, speech, ticks or audio")
        if self.n_streams < 1:
            raise ConfigError("the simulator needs at least one stream")
        n = self.n_streams
        rng = self.rng = np.random.default_rng(self.seed)
        self.streams = [f"{self.prefix or _PREFIX[self.source]}-{i:04d}" for i in range(n)]
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
        else:
            self.logp = np.log(rng.uniform(5, 500, n))  # [n]
            self.vol = rng.uniform(2e-4, 1.5e-3, n)  # [n] per tick
            self.lam = np.ones(n)  # [n] arrival intensity (bursty regime)
            self.spread = rng.uniform(1e-4, 1e-3, n)  # [n] relative half-spread

    def inject(self, n: int, first_round: int, last_round: int, length: int = 30) -> list[Anomaly]:
        """Plan ``n`` anomalies on distinct streams, starting between the given rounds."""
        n = min(n, self.n_streams)
        rng = np.random.default_rng(self.seed + 7919)
        streams = rng.choice(self.n_streams, n, replace=False)
        starts = rng.integers(first_round, max(first_round + 1, last_round), n)
        kind = {"sensors": "erratic", "speech": "noise_burst", "ticks": "erratic_trading", "audio": "speech"}[
            self.source
        ]
        if self.source == "audio":  # an utterance; its length in frames
            lengths = [-(-len(self.bank[int(s) % len(self.bank)]) // AUDIO_FRAME) for s in streams]
        else:
            lengths = [length] * n
        planned = [
            Anomaly(self.source, self.streams[int(s)], kind, int(r), ln) for s, r, ln in zip(streams, starts, lengths)
        ]
        self.anomalies.extend(planned)
        return planned

    def _active(self) -> np.ndarray:
        act = np.zeros(self.n_streams, bool)  # [n]
        for a in self.anomalies:
            if a.start_round <= self.rounds < a.start_round + a.length:
                act[self.streams.index(a.stream)] = True
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
        else:
            # regime-switching intensity gives bursty arrivals; at least one tick per round keeps time moving
            self.lam = np.clip(self.lam * np.exp(rng.normal(0, 0.3, self.n_streams)), 0.2, 5.0)  # [n]
            counts = np.maximum(1, rng.poisson(self.lam))  # [n]
            for i, s in enumerate(self.streams):
                for j in range(int(counts[i])):
                    self.logp[i] += self.vol[i] * rng.standard_normal()
                    price = float(math.exp(self.logp[i]))
                    size = float(np.round(rng.lognormal(4, 1)))
                    if act[i]:  # erratic trading: prices swing several percent, huge sizes
                        price *= math.exp(float(rng.choice([-1.0, 1.0]) * rng.uniform(0.03, 0.08)))
                        size *= 50.0
                    half = price * float(self.spread[i])
                    ts = t + j * 1e-4
                    payload = {
                        "stream": s,
                        "ts": ts,
                        "price": round(price, 6),
                        "size": size,
                        "bid": round(price - half, 6),
                        "ask": round(price + half, 6),
                    }
                    events.append(Event(s, ts, payload, bool(act[i])))
        for a in self.anomalies:
            if a.start_round == k:
                self.labels.append(Anomaly(a.source, a.stream, a.kind, a.start_round, a.length, t))
        self.rounds += 1
        return events

    def mean_events_per_round(self) -> float:
        # ticks: E[max(1, Poisson(lam))] with lam around 1-2
        return self.n_streams * (1.8 if self.source == "ticks" else 1.0)


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
