"""The ``audio`` source without a broker: codec reasons, simulator frames, pipeline outputs."""

from __future__ import annotations

import base64
from types import SimpleNamespace as R

import numpy as np
import orjson
import silero_vad  # noqa: F401  # a hard dependency: the audio pipeline loads the Silero weights from it

from stream.codec import REASONS, decode_batch
from stream.sources import SOURCES
from stream.sources.audio import pcm_b64
from stream.sources.simulator import Simulator


def _rec(value: bytes, key: bytes = b"mic-1", offset: int = 0) -> R:
    return R(topic="speech-audio", partition=0, offset=offset, key=key, value=value, timestamp=0)


def test_codec_decodes_pcm_and_dead_letters_bad_frames() -> None:
    x = np.linspace(-0.5, 0.5, 512).astype(np.float32)
    good = orjson.dumps({"stream": "mic-1", "ts": 1.0, "pcm": pcm_b64(x)})
    bad = [
        (orjson.dumps({"stream": "mic-1", "ts": 1.0, "pcm": "%%%not base64"}), "bad_base64"),
        (orjson.dumps({"stream": "mic-1", "ts": 1.0, "pcm": base64.b64encode(b"\0" * 1000).decode()}), "wrong_length"),
        (orjson.dumps({"stream": "mic-1", "ts": 1.0, "pcm": [1, 2]}), "bad_shape"),
        (orjson.dumps({"stream": "mic-1", "ts": 1.0}), "missing_field"),
    ]
    d = decode_batch(SOURCES["audio"].wire, [_rec(good)] + [_rec(v) for v, _ in bad], n_features=512, now=10.0)
    assert d.index.tolist() == [0] and d.x.shape == (1, 512)
    assert np.abs(d.x[0] - x).max() < 1e-4
    assert [e[1] for e in d.errors] == [r for _, r in bad]
    assert all(r in REASONS for _, r in bad)


def test_simulator_audio_frames_are_valid_pcm() -> None:
    sim = Simulator("audio", n_streams=3, seed=0)
    ev = sim.round(100.0)
    assert [e.stream for e in ev] == ["mic-0000", "mic-0001", "mic-0002"]
    assert len(base64.b64decode(ev[0].payload["pcm"])) == 1024


def test_pipeline_speech_start_and_end_on_injected_utterances() -> None:
    from stream.pipeline import SourcePipeline, build_runner
    from stream.settings import Settings

    st = Settings(sources="audio")
    sim = Simulator("audio", n_streams=6, seed=1)
    planned = sim.inject(3, 10, 40)
    pipe = SourcePipeline("audio", build_runner(st, "audio"), st)  # no special pipeline: the VAD is a StreamRunner
    alerts, preds = [], []
    for r in range(220):
        evs = sim.round(1000.0 + r * 0.032)
        res = pipe.process([_rec(e.value(), e.key(), r * 6 + i) for i, e in enumerate(evs)], now=2000.0)
        for o in res.outputs:
            assert o.topic in ("predictions", "anomaly-alerts")
            (alerts if o.topic == "anomaly-alerts" else preds).append(orjson.loads(o.value))
    assert len(preds) == 220 * 6
    assert all(p["source"] == "audio" and 0.0 <= p["prediction"][0] <= 1.0 for p in preds)
    talkers = {a.stream for a in planned}
    assert {a["stream"] for a in alerts} == talkers  # quiet streams: no alerts
    for s in talkers:
        mine = [a for a in alerts if a["stream"] == s]
        assert mine[0]["event"] == "speech_start" and mine[0]["state"] == "open"
        assert mine[-1]["event"] == "speech_end" and mine[-1]["state"] == "resolved"
        assert mine[-1]["boundary_ts"] <= mine[-1]["ts"]
