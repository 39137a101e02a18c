"""The ``audio`` source: 16 kHz mono PCM frames of 512 samples (32 ms) per event, for Silero VAD.

Wire format (topic ``speech-audio``; key = stream id): ``{"stream": "mic-3", "ts": ..., "pcm":
"<base64>"}`` where ``pcm`` is 512 little-endian int16 samples (1024 bytes) -> ``x[512]`` float32
samples / 32768 in [-1, 1); undecodable base64 is ``bad_base64``, another byte count ``wrong_length``.

Model: the pretrained Silero VAD (:class:`models.silero.VadRunner`), not a forecaster checkpoint;
predictions carry the speech probability, alerts the speech start/end transitions. Its events are
not held by the reorder buffer (a frame older than its stream's last one is ``out_of_order``).

Simulated: low background noise, and speech utterances synthesised once with Debian ``espeak-ng``
(several voices and speeds; without espeak-ng a formant-burst stand-in that the VAD may not call
speech). Injected events are utterances on a stream (kind ``speech``, the label's length is the
utterance in frames); with nothing injected, each stream talks now and then on its own.
"""

from __future__ import annotations

import base64
import functools
import logging
import shutil
import subprocess
import tempfile
import wave
from importlib import metadata
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from ..codec.decode import BadInput
from .base import Event, Round, RunnerSettings, Simulation, Source, Wire

__all__ = ["AUDIO_FRAME", "AUDIO_RATE", "SOURCE", "AudioMsg", "espeak", "pcm_b64", "resample", "speech_bank"]

log = logging.getLogger(__name__)

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


class AudioMsg(msgspec.Struct, gc=False):
    stream: str
    ts: float | str
    # msgspec decodes base64 about 3x faster than base64.b64decode; it accepts a subset of what
    # b64decode(validate=True) accepts (not e.g. a surplus "=" after full groups), with the same bytes
    pcm: bytes


def careful(obj: dict[str, Any], n: int) -> np.ndarray:
    if "pcm" not in obj:
        raise BadInput("missing_field", "field 'pcm' is missing")
    v = obj["pcm"]
    if not isinstance(v, str):
        raise BadInput("bad_shape", f"field 'pcm' must be a base64 string, got {type(v).__name__}")
    try:
        raw = base64.b64decode(v, validate=True)
    except ValueError:
        raise BadInput("bad_base64", "field 'pcm' is not valid base64") from None
    if len(raw) != 2 * n:
        raise BadInput(
            "wrong_length",
            f"field 'pcm' holds {len(raw)} bytes; the model takes {n} int16 little-endian samples ({2 * n} bytes)",
        )
    return np.frombuffer(raw, "<i2").astype(np.float32) / np.float32(32768.0)  # [n]


def fast(msgs: list[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    m = len(msgs)
    raws = [msg.pcm for msg in msgs]  # decoded from base64 by msgspec
    ok = [len(raw) == 2 * n for raw in raws]
    if not all(ok):
        blank = bytes(2 * n)
        raws = [raw if g else blank for raw, g in zip(raws, ok)]
    pcm = np.frombuffer(b"".join(raws), "<i2").reshape(m, n)  # [m, n]
    return pcm.astype(np.float32) / np.float32(32768.0), np.array(ok, dtype=bool)


class AudioSim(Simulation):
    """Microphones with background noise and utterances; see the module docstring."""

    prefix = "mic"
    anomaly = "speech"

    def __init__(self, n: int, rng: np.random.Generator, seed: int) -> None:
        self.n = n
        self.bank = speech_bank(seed)
        self.noise_level = rng.uniform(0.0005, 0.004, n)  # [n] background noise std
        self.gain = rng.uniform(0.4, 0.9, n)  # [n]
        self.clip = np.full(n, -1, np.int64)  # [n] utterance being spoken (-1: none)
        self.pos = np.zeros(n, np.int64)  # [n] next sample of it

    def plan(
        self, stream: int, kind: str, start_round: int, length: int, rng: np.random.Generator
    ) -> tuple[int, str | None]:
        return -(-len(self.bank[stream % len(self.bank)]) // AUDIO_FRAME), None  # the utterance, in frames

    def round(self, r: Round) -> list[Event]:
        streams, t, k, rng, active, anomalies = r
        n = self.n
        for a in anomalies:
            if a.start_round == k:
                i = streams.index(a.stream)
                self.clip[i], self.pos[i] = i % len(self.bank), 0
        if not anomalies:  # free talk: an utterance now and then
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
        return [
            Event(s, t, {"stream": s, "ts": t, "pcm": pcm_b64(x[i])}, bool(active[i])) for i, s in enumerate(streams)
        ]


def _packaged_weights() -> Path:
    from models.silero import packaged_jit_path

    return packaged_jit_path()  # CheckpointError when silero-vad is not installed


def model_id() -> str:
    """``silero-vad-<version>`` of the installed package."""
    try:
        return f"silero-vad-{metadata.version('silero-vad')}"
    except metadata.PackageNotFoundError:
        return "silero-vad"


def load_vad_runner(settings: RunnerSettings) -> Any:
    """The Silero weights (``SEQSTREAM_CHECKPOINT_AUDIO`` or the installed package) on the configured device."""
    from models.runner import resolve_device
    from models.silero import SileroVAD, VadRunner

    vad = SileroVAD.pretrained(settings.checkpoint("audio"))
    return VadRunner(
        vad,
        threshold=settings.vad_threshold,
        min_silence_ms=settings.vad_min_silence_ms,
        device=resolve_device(settings.device),
        capacity=settings.slab_capacity,
        max_capacity=settings.slab_max_capacity,
    )


# the pretrained Silero VAD, not a forecaster checkpoint; frames are never held for reordering
SOURCE = Source(
    "speech-audio",
    Wire(AudioMsg, careful, fast),
    AudioSim,
    n_features=AUDIO_FRAME,
    find_checkpoint=_packaged_weights,
    load_runner=load_vad_runner,
    reorder=False,
)
