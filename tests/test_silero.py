"""Silero VAD in the batched engine vs Silero's own packaged model, on espeak-ng speech, and the
VadRunner's two entry points (``process(Batch)`` of every runner, ``process_frames`` on arrays).

Needs Debian ``espeak-ng`` (speech synthesis; the ``silero-vad`` package with the reference model
and weights is a dependency). Outside CI the speech tests skip with the reason if espeak-ng is
missing; with ``CI`` set they fail instead.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import silero_vad
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import Alert, Batch, Results, _vad_waves
from models.silero import FRAME, FRAME_SECONDS, SAMPLE_RATE, SileroVAD, VadEvent, VadResults, VadRunner
from stream.sources.audio import resample

from .conftest import need


@pytest.fixture(scope="module")
def reference():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference loop and the benchmark both on one thread
    yield silero_vad.load_silero_vad()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ours(reference) -> SileroVAD:
    return SileroVAD.pretrained()


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
        return pcm, w.getframerate()


SENTENCES = [
    ("en", "The pump on line seven is running hot, please check the pressure valve."),
    ("en-us", "Call the support team and tell them the order has shipped."),
    ("de", "Guten Morgen, das Wetter ist heute sehr schoen."),
    ("fr", "Bonjour, je voudrais reserver une table pour deux personnes."),
]


@pytest.fixture(scope="module")
def utterances(tmp_path_factory) -> list[np.ndarray]:
    exe = shutil.which("espeak-ng")
    need(exe is not None, "espeak-ng is not installed (apt-get install -y espeak-ng)")
    out = tmp_path_factory.mktemp("espeak")
    clips = []
    for i, (voice, text) in enumerate(SENTENCES):
        path = out / f"u{i}.wav"
        subprocess.run([exe, "-v", voice, "-s", str(150 + 10 * i), "-w", str(path), text], check=True, timeout=60)
        pcm, sr = _read_wav(path)
        clips.append(resample(pcm, sr))  # the audio source's own resampler (16 kHz)
    return clips


def _streams(utterances: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """Streams of speech, silences and noise, as ``[S, T*FRAME]`` float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    streams = []
    for s in range(6):
        parts = []
        if s == 5:  # no speech at all: low background noise and a pause
            parts = [np.zeros(SAMPLE_RATE, np.float32), rng.normal(0, 0.003, 4 * SAMPLE_RATE).astype(np.float32)]
        else:
            for k in range(2):
                parts.append(np.zeros(int(rng.uniform(0.3, 1.2) * SAMPLE_RATE), np.float32))
                clip = utterances[(s + k) % len(utterances)] * rng.uniform(0.3, 1.0)
                parts.append(clip.astype(np.float32))
            parts.append(np.zeros(int(0.8 * SAMPLE_RATE), np.float32))
        x = np.concatenate(parts)
        x = x + rng.normal(0, [0.0, 0.002, 0.01, 0.03, 0.005, 0.0][s], len(x)).astype(np.float32)
        streams.append(x)
    t = min(len(x) for x in streams) // FRAME
    return np.stack([x[: t * FRAME] for x in streams]).clip(-1, 1).astype(np.float32)  # [S, T*FRAME]


class _Recorder:
    """Wraps the reference model so VADIterator's probabilities are recorded too."""

    def __init__(self, model) -> None:
        self.model, self.probs = model, []

    def __call__(self, x, sr):
        p = self.model(x, sr)
        self.probs.append(p.item())
        return p

    def reset_states(self) -> None:
        self.model.reset_states()


def _reference(reference, audio: np.ndarray) -> tuple[np.ndarray, list[list[tuple[str, int]]]]:
    """Silero's own one-stream loop: probabilities ``[S, T]`` and VADIterator events (frame index)."""
    probs, events = [], []
    for x in audio:
        rec = _Recorder(reference)
        it = silero_vad.VADIterator(
            rec, threshold=0.5, sampling_rate=SAMPLE_RATE, min_silence_duration_ms=100, speech_pad_ms=0
        )
        it.reset_states()
        ev = []
        for i in range(len(x) // FRAME):
            out = it(torch.from_numpy(x[i * FRAME : (i + 1) * FRAME]))
            if out:
                kind, sample = next(iter(out.items()))
                ev.append((kind, int(sample) // FRAME))
        probs.append(rec.probs)
        events.append(ev)
    return np.asarray(probs), events


def _ours(runner: VadRunner, audio: np.ndarray, frames_per_call: int = 1, stream_major: bool = False):
    """All streams batched; ``frames_per_call`` > 1 puts consecutive frames of a stream in one batch
    (frame by frame, or with ``stream_major`` a stream's frames next to each other)."""
    s, t = audio.shape[0], audio.shape[1] // FRAME
    frames = audio.reshape(s, t, FRAME)
    probs = np.zeros((s, t), np.float32)
    events: list[list[tuple[str, int]]] = [[] for _ in range(s)]
    ids = [f"call-{k}" for k in range(s)]
    for i0 in range(0, t, frames_per_call):
        i1 = min(t, i0 + frames_per_call)
        rows = [(k, i) for i in range(i0, i1) for k in range(s)]
        if stream_major:
            rows = sorted(rows)
        res = runner.process_frames(
            [ids[k] for k, _ in rows],
            np.array([100.0 + i * FRAME_SECONDS for _, i in rows]),
            np.stack([frames[k, i] for k, i in rows]),
        )
        for j, (k, i) in enumerate(rows):
            probs[k, i] = res.prob[j]
        for e in res.events:
            k, i = rows[e.index]
            boundary = round((e.boundary_ts - 100.0) / FRAME_SECONDS)
            assert boundary == i - e.frames_ago
            events[k].append((e.kind, boundary))
    return probs, events


def _match(a: list[tuple[str, int]], b: list[tuple[str, int]]) -> bool:
    return len(a) == len(b) and all(ka == kb and abs(ia - ib) <= 1 for (ka, ia), (kb, ib) in zip(a, b))


def test_probabilities_and_segments_match_silero(reference, ours, utterances) -> None:
    audio = _streams(utterances)
    ref_p, ref_ev = _reference(reference, audio)
    for per_call in (1, 3):
        runner = VadRunner(ours, capacity=4, max_capacity=64)  # grows; per_call=3 splits each batch into waves
        p, ev = _ours(runner, audio, per_call)
        diff = float(np.abs(p - ref_p).max())
        print(f"\nsilero equality: {audio.shape[0]} streams x {p.shape[1]} frames, max |diff| = {diff:.2e}")
        assert diff < 1e-4
        for k in range(audio.shape[0]):
            assert _match(ev[k], ref_ev[k]), (k, ev[k], ref_ev[k])
    # the test audio means something: speech streams have segments, the noise-only stream none
    assert all(any(kind == "start" for kind, _ in ref_ev[k]) for k in range(5))
    assert ref_ev[5] == [] and ev[5] == []


def test_staging_buffer_equals_direct_inputs(ours, utterances) -> None:
    """CUDA's input path (one staging buffer, one host->device copy per batch), run on the CPU, gives
    the direct path's probabilities, events and state bit for bit, also when a batch holds several
    frames of a stream (several waves)."""
    from models.runner import _Staging

    audio = _streams(utterances, seed=2)[:3]
    direct, staged = VadRunner(ours), VadRunner(ours)
    assert direct._staging is None  # CPU runners use the arrays as they are
    staged._staging = _Staging(torch.device("cpu"))
    puts: list[int] = []
    real_put = staged._staging.put
    staged._staging.put = lambda x, slots, dt: puts.append(len(slots)) or real_put(x, slots, dt)  # type: ignore[method-assign]
    for per_call, major in ((1, False), (4, False), (4, True)):
        p1, ev1 = _ours(direct, audio, per_call, major)
        n_puts = len(puts)
        p2, ev2 = _ours(staged, audio, per_call, major)
        assert p1.tobytes() == p2.tobytes() and ev1 == ev2
        calls = -(-(audio.shape[1] // FRAME) // per_call)
        assert len(puts) - n_puts == calls  # one copy in per batch, however many waves
    for a, b in ((direct.slab.hidden, staged.slab.hidden), (direct.slab.aux, staged.slab.aux)):
        assert a.numpy().tobytes() == b.numpy().tobytes()
    assert direct.slab.steps.tolist() == staged.slab.steps.tolist()
    assert direct.slab.last_ts.tolist() == staged.slab.last_ts.tolist()


def test_compiled_waves_equal_the_torch_ops(ours, utterances, monkeypatch) -> None:
    """The CPU's compiled per-wave loop (models/_vad_kernel.py) gives the torch ops' probabilities,
    speech events and slab state bit for bit: one frame per stream and call, several frames of a
    stream per call (waves), in stream order, with the slab growing meanwhile."""
    audio = _streams(utterances, seed=5)
    compiled, ops = VadRunner(ours, capacity=2, max_capacity=64), VadRunner(ours, capacity=2, max_capacity=64)
    assert compiled.kernel  # numba is part of the project's dependencies
    ops.kernel = False
    calls: list[int] = []
    real = _vad_waves.waves_torch
    monkeypatch.setattr(_vad_waves, "waves_torch", lambda *a: calls.append(1) or real(*a))
    events = 0
    for per_call, major in ((1, False), (4, False), (3, True)):
        p1, ev1 = _ours(compiled, audio, per_call, major)
        p2, ev2 = _ours(ops, audio, per_call, major)
        assert p1.tobytes() == p2.tobytes() and ev1 == ev2
        events += sum(map(len, ev1))
    assert calls and events > 0  # the reference ran, and speech started and ended
    for a, b in ((compiled.slab.hidden, ops.slab.hidden), (compiled.slab.aux, ops.slab.aux)):
        assert a.numpy().tobytes() == b.numpy().tobytes()
    assert compiled.slab.steps.tolist() == ops.slab.steps.tolist()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_runner_equals_cpu(ours, utterances) -> None:
    """On a GPU (slab on the device, inputs through the pinned staging buffer): the CPU's probabilities
    within 1e-4 and the same speech events, also with several frames of a stream per batch."""
    audio = _streams(utterances, seed=3)
    for per_call in (1, 3):
        p_cpu, ev_cpu = _ours(VadRunner(ours, capacity=4, max_capacity=64), audio, per_call)
        on_gpu = VadRunner(copy.deepcopy(ours), capacity=4, max_capacity=64, device="cuda")  # moves its model
        p_gpu, ev_gpu = _ours(on_gpu, audio, per_call)
        assert float(np.abs(p_cpu - p_gpu).max()) < 1e-4
        assert ev_cpu == ev_gpu


def test_a_streams_frames_side_by_side_in_a_batch(ours, utterances) -> None:
    """Rows in stream order (a stream's frames next to each other: the waves reorder the batch)
    give the probabilities and events of one frame per call, also when the slab grows meanwhile."""
    audio = _streams(utterances, seed=4)
    p1, ev1 = _ours(VadRunner(ours), audio, 1)
    p2, ev2 = _ours(VadRunner(ours, capacity=2, max_capacity=64), audio, 5, stream_major=True)
    assert float(np.abs(p1 - p2).max()) < 1e-5
    assert ev1 == ev2


def test_fft_front_end_equals_the_stft_basis_and_any_other_basis_is_applied_as_given(ours) -> None:
    """The packaged STFT basis is a Hann-windowed DFT, so the front end runs it as an FFT; the
    basis applied as a matmul gives the same features, and a basis of other weights is never
    replaced by the FFT (checked whenever weights are loaded)."""
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 0.2, (16, 576)).astype(np.float32))
    with torch.inference_mode():
        fft = ours.encode(x)
        assert ours._fft is True
        plain = copy.deepcopy(ours)
        plain._fft = False
        assert float((fft - plain.encode(x)).abs().max()) < 1e-4 * float(fft.abs().max())
        other = SileroVAD()  # random weights, a zero basis
        other.encode(x)
        assert other._fft is False
        other.load_state_dict(ours.state_dict())  # decided again whenever weights are loaded
        assert other._fft is True
        other.load_state_dict(plain.state_dict() | {"stft_basis": torch.randn(258, 1, 256)})
        assert other._fft is False


def test_state_survives_slab_snapshot(ours, utterances) -> None:
    audio = _streams(utterances, seed=1)[:2]
    whole, _ = _ours(VadRunner(ours), audio)
    half = audio.shape[1] // FRAME // 2 * FRAME
    r1 = VadRunner(ours)
    p1, _ = _ours(r1, audio[:, :half])
    r2 = VadRunner(ours)
    r2.slab.restore(r1.slab.snapshot())
    p2, _ = _ours(r2, audio[:, half:])
    assert np.abs(np.concatenate([p1, p2], 1) - whole).max() < 1e-6


def _speech_alert(r: VadRunner, index: int, e: VadEvent) -> Alert:
    """The alert of one speech event with what the ``audio`` source writes into its alert record."""
    start = e.kind == "start"
    what = "speech started" if start else f"speech ended {e.frames_ago} frame(s) before this frame"
    return Alert(
        index,
        e.stream_id,
        e.ts,
        "open" if start else "resolved",
        e.prob,
        [],
        [e.prob],
        kind=None,
        explanation=f"{what} at {e.boundary_ts:.3f} (speech probability {e.prob:.3f}; "
        f"start >= {r.threshold:.2f}, end < {r.neg_threshold:.2f})",
        extra={
            "event": "speech_start" if start else "speech_end",
            "boundary_ts": e.boundary_ts,
            "frames_ago": e.frames_ago,
        },
        threshold=r.threshold if start else r.neg_threshold,
    )


def _same_as_frames(res: Results, ref: VadResults, keep: list[int], stale: list[int], r: VadRunner) -> None:
    """``res`` (``process`` of a batch) holds ``ref`` (``process_frames`` of its ``keep`` rows) bit for bit,
    and rejects the ``stale`` rows as out of order."""
    n = len(keep) + len(stale)
    assert res.accepted.tolist() == [j not in stale for j in range(n)]
    assert res.reason == [("out_of_order" if j in stale else None) for j in range(n)]
    assert res.prediction.shape == (n, 1) and res.expected.shape == (n, 1) and np.isnan(res.expected).all()
    assert res.prediction[keep, 0].tobytes() == ref.prob.tobytes() and res.score[keep].tobytes() == ref.prob.tobytes()
    assert res.anomaly[keep].tolist() == ref.speaking.tolist()
    assert np.isnan(res.prediction[stale]).all() and not res.score[stale].any() and not res.anomaly[stale].any()
    trans = np.zeros(len(keep), np.int8)
    for e in ref.events:
        trans[e.index] = 1 if e.kind == "start" else -1
    assert res.transition[keep].tolist() == trans.tolist() and not res.transition[stale].any()
    assert res.alerts == [_speech_alert(r, keep[e.index], e) for e in ref.events]


def test_process_batch_equals_the_frame_api_and_rejects_out_of_order_frames(ours, utterances) -> None:
    """``process(Batch)`` (every runner's step) gives ``process_frames``' probabilities, speaking flags and
    speech events on the accepted rows, bit for bit, with several frames of a stream per batch; a frame
    older than its stream's last one (in the slab, or earlier in the batch) is rejected as ``out_of_order``
    and leaves the stream alone (a frame as old as the last one is accepted)."""
    audio = _streams(utterances, seed=5)
    s, t = audio.shape[0], audio.shape[1] // FRAME
    frames = audio.reshape(s, t, FRAME)
    ids = [f"call-{k}" for k in range(s)]
    by_batch, by_frames = (VadRunner(ours, capacity=4, max_capacity=64) for _ in range(2))
    n_alerts = n_stale = 0
    for c, i0 in enumerate(range(0, t, 3)):
        rows = [(k, i) for i in range(i0, min(t, i0 + 3)) for k in range(s)]
        sid = [ids[k] for k, _ in rows]
        ts = [100.0 + i * FRAME_SECONDS for _, i in rows]
        pcm = [frames[k, i] for k, i in rows]
        stale: list[int] = []
        if c % 3 == 1:  # a late copy of an older frame of stream 0: behind its last frame in the slab
            sid.insert(1, ids[0])
            ts.insert(1, 100.0 + (i0 - 2) * FRAME_SECONDS)
            pcm.insert(1, frames[0, i0 - 2])
            stale.append(1)
        if c % 3 == 2:  # stream 1 again, just before its first frame of this batch: behind its newest one
            sid.append(ids[1])
            ts.append(100.0 + i0 * FRAME_SECONDS - 1e-3)
            pcm.append(frames[1, i0])
            stale.append(len(sid) - 1)
            sid.append(ids[2])  # stream 2 again, as old as its newest frame: accepted
            ts.append(max(when for who, when in zip(sid, ts) if who == ids[2]))
            pcm.append(frames[2, i0])
        batch = Batch(sid, np.array(ts), np.stack(pcm))
        keep = [j for j in range(len(sid)) if j not in stale]
        res = by_batch.process(batch)
        ref = by_frames.process_frames([sid[j] for j in keep], batch.ts[keep], batch.x[keep])
        _same_as_frames(res, ref, keep, stale, by_batch)
        n_alerts += len(res.alerts)
        n_stale += len(stale)
    assert n_alerts >= 10 and n_stale >= 10  # the audio has speech, the batches stale frames
    empty = by_batch.process(Batch([], np.zeros(0), np.zeros((0, FRAME), np.float32)))
    assert empty.accepted.shape == (0,) and empty.prediction.shape == (0, 1) and empty.alerts == []
    a, b = by_batch.slab, by_frames.slab  # the rejected frames left no trace
    assert (
        a.hidden.numpy().tobytes() == b.hidden.numpy().tobytes() and a.aux.numpy().tobytes() == b.aux.numpy().tobytes()
    )
    assert a.steps.tolist() == b.steps.tolist() and a.last_ts.tolist() == b.last_ts.tolist()


def test_vad_runner_is_a_stream_runner() -> None:
    """What the Kafka side reads of any runner (models.types.StreamRunner), without the Silero weights."""
    r = VadRunner(SileroVAD(), threshold=0.6, model_id="vad-test")
    assert (r.n_features, r.model_id, r.threshold, r.device.type) == (FRAME, "vad-test", 0.6, "cpu")
    assert VadRunner(SileroVAD()).model_id.startswith("silero-vad")  # the installed package's version
    zeros = np.zeros((4, FRAME), np.float32)
    res = r.process(Batch(["a", "b", "a", "a"], np.array([5.0, 5.0, 4.0, 5.0]), zeros))  # row 2: behind row 0
    assert res.accepted.tolist() == [True, True, False, True] and res.n_rejected == 1
    assert res.reason == [None, None, "out_of_order", None]
    assert r.slab.steps[r.slab.slot("a")] == 2 and r.slab.last_ts[r.slab.slot("a")] == 5.0
    res = r.process(Batch(["a", "c"], np.array([4.5, 0.0]), zeros[:2]))  # behind the slab's last frame
    assert res.reason == ["out_of_order", None] and r.slab.steps[r.slab.slot("a")] == 2


def _stale_by_loop(r: VadRunner, ids: list[str], ts: list[float]) -> list[bool]:
    """The reference rule, one frame at a time: out of order when older than the stream's newest kept
    frame so far (the slab's, then this batch's); a NaN time compares as in order."""
    newest: dict[str, float] = {}
    out = []
    for sid, t in zip(ids, ts):
        prev = newest.get(sid)
        if prev is None:
            k = r.slab.slot(sid)
            prev = float(r.slab.last_ts[k]) if k is not None else -np.inf
        out.append(t < prev)
        if not t < prev:
            newest[sid] = t
    return out


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(st.sampled_from("abcde"), st.sampled_from([1.0, 2.0, 2.0, 3.0, 5.0, float("nan")])),
            max_size=12,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_out_of_order_check_on_whole_arrays_equals_the_frame_by_frame_rule(batches) -> None:
    """``process`` finds stale frames wave by wave on arrays; it rejects exactly what the frame-by-frame
    rule rejects, with repeats, ties, NaN times and streams new to the slab, batch after batch."""
    r = VadRunner(SileroVAD(), capacity=2, max_capacity=64)
    for rows in batches:
        ids, ts = [k for k, _ in rows], [t for _, t in rows]
        want = _stale_by_loop(r, ids, ts)
        res = r.process(Batch(ids, np.array(ts, np.float64), np.zeros((len(ids), FRAME), np.float32)))
        assert (~res.accepted).tolist() == want
        assert res.reason == ["out_of_order" if w else None for w in want]


def test_batched_throughput_vs_silero_loop(reference, ours) -> None:
    rng = np.random.default_rng(0)
    n_ref = 200
    x = (rng.normal(0, 0.05, n_ref * FRAME)).astype(np.float32)
    reference.reset_states()
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(n_ref):
            reference(torch.from_numpy(x[i * FRAME : (i + 1) * FRAME]), SAMPLE_RATE)
    ref_rate = n_ref / (time.perf_counter() - t0)
    streams, steps = 512, 6
    runner = VadRunner(ours, capacity=streams)
    ids = [f"s{k}" for k in range(streams)]
    pcm = rng.normal(0, 0.05, (streams, FRAME)).astype(np.float32)
    runner.process_frames(ids, np.zeros(streams), pcm)  # warm-up, allocates slots
    t0 = time.perf_counter()
    for i in range(steps):
        runner.process_frames(ids, np.full(streams, float(i + 1)), pcm)
    ours_rate = streams * steps / (time.perf_counter() - t0)
    print(
        f"\nsilero speed ({torch.get_num_threads()} thread(s), cpu): reference one-stream loop {ref_rate:.0f} "
        f"frames/s; seqstream batched {streams} streams {ours_rate:.0f} stream-frames/s "
        f"({ours_rate / ref_rate:.1f}x)"
    )
    assert ours_rate > ref_rate
