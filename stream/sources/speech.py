"""The ``speech`` source: speech feature frames (e.g. log-mel bands) of calls, one frame per event.

Wire format (topic ``speech-features``; key = stream id):
``{"stream": "call-42", "ts": "2024-06-10T06:13:20Z", "features": [float, ...]}``.

Simulated: 8 log-mel-like features per frame from a per-speaker spectral profile, smoothed (AR(1))
with voiced/silent switching; anomaly (``noise_burst``) = a burst of loud, erratic broadband noise.
"""

from __future__ import annotations

import msgspec
import numpy as np

from .base import Event, Round, Simulation, Source, vector_wire

__all__ = ["N_SPEECH_FEATURES", "SOURCE", "SpeechMsg"]

N_SPEECH_FEATURES = 8


class SpeechMsg(msgspec.Struct, gc=False):
    stream: str
    ts: float | str
    features: list[float]


class SpeechSim(Simulation):
    """Speakers' feature frames; see the module docstring."""

    prefix = "call"
    anomaly = "noise_burst"

    def __init__(self, n: int, rng: np.random.Generator, seed: int) -> None:
        self.n = n
        self.profile = rng.normal(-4.0, 1.0, (n, N_SPEECH_FEATURES))  # [n, 8]
        self.state = self.profile.copy()  # [n, 8]
        self.voiced = rng.random(n) < 0.5  # [n]

    def round(self, r: Round) -> list[Event]:
        streams, t, _k, rng, active, _anomalies = r
        switch = rng.random(self.n) < 0.03  # [n]
        self.voiced ^= switch
        target = np.where(self.voiced[:, None], self.profile + 3.0, self.profile - 2.0)  # [n, 8]
        self.state = 0.8 * self.state + 0.2 * target + 0.1 * rng.standard_normal(self.state.shape)  # [n, 8]
        burst = 15.0 * rng.standard_normal(self.state.shape)  # [n, 8] loud broadband noise
        f = np.where(active[:, None], self.state + burst, self.state)  # [n, 8]
        return [
            Event(s, t, {"stream": s, "ts": t, "features": np.round(f[i], 5).tolist()}, bool(active[i]))
            for i, s in enumerate(streams)
        ]


SOURCE = Source(
    "speech-features", vector_wire(SpeechMsg, "features", missing=False), SpeechSim, N_SPEECH_FEATURES, "speech_gru.pt"
)
