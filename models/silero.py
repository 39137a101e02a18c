"""Silero VAD (16 kHz path) as plain PyTorch, batched over many streams.

The network is a re-implementation of the packaged Silero VAD v5/v6 model (MIT, PyPI
``silero-vad``): a fixed STFT as a strided conv (reflect-padded by 64 samples), magnitude,
four conv+ReLU layers, ``LSTMCell(128, 128)``, ReLU, a 1x1 output conv, sigmoid and a mean
over time. Weights come from the state dict of the package's TorchScript file
``silero_vad/data/silero_vad.jit`` (the bundled ``.safetensors`` holds different weights).

Each call takes 512 new samples per stream plus the last 64 samples of the previous call
(the "context"), exactly like Silero's own ``forward``. The stateless front end runs once for a
batch's frames of every wave (``encode``), only the LSTM wave by wave. :class:`VadRunner` (a
:class:`~models.types.StreamRunner`, like the Runner) keeps, per stream, the LSTM ``(h, c)`` in a
:class:`~models.state.StateSlab` (``hidden[C, 1, 2, 128]``) and the 64-sample context plus the
speech hysteresis in the slab's ``aux`` row, so thousands of streams are one batched step and a
slab snapshot restores a stream mid-utterance.

Speech start/end follow Silero's ``VADIterator`` (with ``speech_pad_ms=0``): a frame with
probability ``>= threshold`` starts speech; once speaking, the first frame below
``neg_threshold`` marks a tentative end that is confirmed when ``min_silence_ms`` have passed
without a frame ``>= threshold``. The start boundary is the start of the first speech frame,
the end boundary the start of the first silent frame.

:meth:`VadRunner.process` gives the speech source's outputs as every runner's
:class:`~models.types.Results` (per frame: ``prediction = [speech probability]``, ``score`` = the
probability, ``anomaly`` = speaking; speech starts and ends as ``open``/``resolved`` alerts);
:meth:`VadRunner.process_frames` is the same step on plain arrays (:class:`VadResults`).
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as fn

from . import _jit, _vad_waves
from .errors import CheckpointError, ConfigError, InputError
from .fingerprint import fingerprint
from .runner import _Staging
from .state import EvictionPolicy, StateSlab, wave_ranks
from .types import REJECT_OUT_OF_ORDER, Alert, Batch, Results

__all__ = [
    "FRAME",
    "FRAME_SECONDS",
    "SAMPLE_RATE",
    "SileroVAD",
    "VadEvent",
    "VadResults",
    "VadRunner",
    "packaged_jit_path",
]

SAMPLE_RATE = 16000
FRAME = 512  # new samples per call
CONTEXT = 64  # samples carried over from the previous call
FRAME_SECONDS = FRAME / SAMPLE_RATE  # 0.032 s
HIDDEN = 128

_N_FFT, _HOP, _BINS = 256, 128, 129  # the STFT's window and hop (samples), its frequency bins


def _is_hann_dft(basis: Tensor) -> bool:
    """Whether ``basis[258, 1, 256]`` is the periodic-Hann-windowed DFT (real rows, then imaginary)."""
    ang = 2 * torch.pi * torch.arange(_BINS, dtype=torch.float64)[:, None] * torch.arange(_N_FFT) / _N_FFT  # [129, 256]
    win = torch.hann_window(_N_FFT, periodic=True, dtype=torch.float64)  # [256]
    dft = torch.cat([torch.cos(ang) * win, -torch.sin(ang) * win])  # [258, 256]
    b = basis[:, 0].detach().to("cpu", torch.float64)  # [258, 256]
    return b.shape == dft.shape and bool((b - dft).abs().max() < 1e-6)


# aux row layout (models/_vad_waves.py): [0:64] context samples, [64] speaking flag, [65] frames since
# tentative end (-1 = none)
_A_SINCE = CONTEXT + 1
AUX_SIZE = CONTEXT + 2


def packaged_model_id() -> str:
    """``silero-vad-<version>`` of the installed ``silero-vad`` package (``silero-vad`` without it)."""
    try:
        return f"silero-vad-{metadata.version('silero-vad')}"
    except metadata.PackageNotFoundError:
        return "silero-vad"


def packaged_jit_path() -> Path:
    """Path of ``silero_vad/data/silero_vad.jit`` in the installed ``silero-vad`` package."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("the silero-vad package is not installed; `pip install silero-vad` (MIT)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.jit"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; reinstall the silero-vad package")
    return path


class SileroVAD(nn.Module):
    """The 16 kHz Silero VAD network; ``forward`` is batched and stateless (state in, state out).

    Example:
        >>> vad = SileroVAD()  # random weights; use SileroVAD.pretrained() for the real ones
        >>> prob, state = vad.step(torch.zeros(3, FRAME), vad.initial_state(3))
        >>> prob.shape, state[0].shape, state[1].shape
        (torch.Size([3]), torch.Size([3, 64]), torch.Size([3, 2, 128]))
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("stft_basis", torch.zeros(258, 1, 256))  # [2*129, 1, 256]
        self.encoder = nn.ModuleList(
            [
                nn.Conv1d(129, 128, 3, stride=1, padding=1),
                nn.Conv1d(128, 64, 3, stride=2, padding=1),
                nn.Conv1d(64, 64, 3, stride=2, padding=1),
                nn.Conv1d(64, 128, 3, stride=1, padding=1),
            ]
        )
        self.rnn = nn.LSTMCell(HIDDEN, HIDDEN)
        self.out = nn.Conv1d(HIDDEN, 1, 1)
        # the packaged basis is a periodic-Hann-windowed DFT, so an FFT gives the same spectrum at ~1/3 of
        # the matmul's cost; any other basis is applied as it is (decided whenever weights are loaded)
        self.register_buffer("window", torch.hann_window(_N_FFT, periodic=True), persistent=False)  # [256]
        self._fft = False
        self.register_load_state_dict_post_hook(lambda m, _: setattr(m, "_fft", _is_hann_dft(m.stft_basis)))

    # -- weights ------------------------------------------------------------------------
    @classmethod
    def from_silero_state_dict(cls, sd: Mapping[str, Tensor], prefix: str = "_model.") -> SileroVAD:
        """Build from the TorchScript model's state dict (keys ``_model.stft.forward_basis_buffer``...)."""
        names = {
            "stft_basis": "stft.forward_basis_buffer",
            "rnn.weight_ih": "decoder.rnn.weight_ih",
            "rnn.weight_hh": "decoder.rnn.weight_hh",
            "rnn.bias_ih": "decoder.rnn.bias_ih",
            "rnn.bias_hh": "decoder.rnn.bias_hh",
            "out.weight": "decoder.decoder.2.weight",
            "out.bias": "decoder.decoder.2.bias",
        }
        for i in range(4):
            names[f"encoder.{i}.weight"] = f"encoder.{i}.reparam_conv.weight"
            names[f"encoder.{i}.bias"] = f"encoder.{i}.reparam_conv.bias"
        model = cls()
        try:
            mine = {k: sd[prefix + v].detach().clone().float() for k, v in names.items()}
        except KeyError as e:
            raise CheckpointError(f"not a Silero VAD state dict: key {e} is missing") from None
        model.load_state_dict(mine)
        return model.eval()

    @classmethod
    def pretrained(cls, path: str | Path | None = None) -> SileroVAD:
        """The packaged Silero VAD weights (from ``silero_vad.jit`` of the installed package)."""
        with warnings.catch_warnings():  # torch.jit.load is deprecated, but it is how the package ships
            warnings.simplefilter("ignore", DeprecationWarning)
            jit = torch.jit.load(str(path or packaged_jit_path()), map_location="cpu")
        return cls.from_silero_state_dict(jit.state_dict())

    # -- compute ------------------------------------------------------------------------
    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x[B, 576]`` (context + frame), ``h[B, 128]``, ``c[B, 128]`` -> ``prob[B]``, ``h'``, ``c'``."""
        return self.decode(self.encode(x), h, c)

    def encode(self, x: Tensor) -> Tensor:
        """The stateless front end: ``x[B, 576]`` (context + frame) -> ``z[B, 128]``.

        It needs no recurrent state, so a batch's frames of every wave go through it in one call.
        The STFT runs as an FFT when the basis is the Hann-windowed DFT (the packaged one is). The
        strided convs are one matmul each over the windows, channels last: the sequences are 4, 4,
        2, 1 and 1 steps long, far too short for a conv kernel to pay.
        """
        n = x.shape[0]
        x = fn.pad(x.unsqueeze(1), (0, CONTEXT), mode="reflect").squeeze(1)  # [B, 640]
        frames = x.unfold(1, _N_FFT, _HOP)  # [B, 4, 256]
        basis: Tensor = self.stft_basis  # type: ignore[assignment]  # [258, 1, 256]
        if self._fft:
            window: Tensor = self.window  # type: ignore[assignment]  # [256]
            z = torch.fft.rfft(frames * window).abs()  # [B, 4, 129]
        else:
            spec = fn.linear(frames, basis[:, 0])  # [B, 4, 258]
            z = torch.sqrt(spec[..., :_BINS] ** 2 + spec[..., _BINS:] ** 2)  # [B, 4, 129]
        for conv in cast("Iterable[nn.Conv1d]", self.encoder):  # kernel 3, padding 1
            win = fn.pad(z, (0, 0, 1, 1)).unfold(1, 3, conv.stride[0])  # [B, L', C, 3]
            w = conv.weight.reshape(conv.out_channels, -1)  # [C', C * 3], the windows' order
            z = torch.relu(fn.linear(win.reshape(n, win.shape[1], -1), w, conv.bias))  # [B, L', C']
        return z[:, 0]  # [B, 128]: the last conv leaves one step

    def decode(self, z: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The recurrent part: ``z[B, 128]``, ``h[B, 128]``, ``c[B, 128]`` -> ``prob[B]``, ``h'``, ``c'``."""
        h, c = self.rnn(z, (h, c))  # [B, 128] each
        y = torch.sigmoid(fn.linear(torch.relu(h), self.out.weight[:, :, 0], self.out.bias))  # [B, 1]
        return y[:, 0], h, c

    @staticmethod
    def initial_state(batch: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Fresh state: ``context[B, 64]`` zeros and LSTM ``hc[B, 2, 128]`` zeros."""
        return torch.zeros(batch, CONTEXT, device=device), torch.zeros(batch, 2, HIDDEN, device=device)

    @torch.inference_mode()
    def step(self, pcm: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``pcm[B, 512]`` float in [-1, 1], ``state=(context[B, 64], hc[B, 2, 128])`` -> ``prob[B]``, state'."""
        if pcm.dim() != 2 or pcm.shape[1] != FRAME:
            raise InputError(f"Silero VAD takes frames of {FRAME} samples at 16 kHz, got shape {tuple(pcm.shape)}")
        context, hc = state
        x = torch.cat([context, pcm], dim=1)  # [B, 576]
        prob, h, c = self(x, hc[:, 0], hc[:, 1])
        return prob, (x[:, -CONTEXT:], torch.stack([h, c], dim=1))


@dataclass(frozen=True)
class VadEvent:
    """A speech transition of one stream: ``kind`` is ``start`` or ``end``.

    ``index`` is the batch row that produced it; ``boundary_ts`` is the event time of the
    boundary (start of the first speech frame, or start of the first silent frame), which for
    an end lies ``frames_ago`` frames before the row's own ``ts``.
    """

    index: int
    stream_id: str
    kind: str
    ts: float
    boundary_ts: float
    frames_ago: int
    prob: float


@dataclass
class VadResults:
    """Per-row speech probability and speaking flag (after the row), plus transitions."""

    prob: np.ndarray  # [B] float32
    speaking: np.ndarray  # [B] bool
    events: list[VadEvent] = field(default_factory=list)


def _checked(stream_ids: Sequence[str], ts: np.ndarray, pcm: np.ndarray | Tensor) -> Tensor:
    """``pcm`` as ``[B, FRAME]`` float32, or an ``InputError`` (before any stream gets a slot)."""
    n = len(stream_ids)
    x = torch.as_tensor(pcm, dtype=torch.float32)  # [B, FRAME]
    if x.shape != (n, FRAME) or ts.shape != (n,):
        raise InputError(f"VadRunner.process_frames wants ids[B], ts[B], pcm[B, {FRAME}]; got pcm {tuple(x.shape)}")
    return x


class VadRunner:
    """Batched Silero VAD over many streams with per-stream state in a :class:`StateSlab`.

    Rows of one stream within a batch are processed in order (split into waves).

    Example:
        >>> r = VadRunner(SileroVAD())
        >>> res = r.process(Batch(["a", "b", "a"], np.array([0.0, 0.0, 0.032]), np.zeros((3, FRAME), np.float32)))
        >>> res.prediction.shape, res.accepted.tolist(), len(r.slab)
        ((3, 1), [True, True, True], 2)
        >>> r.process_frames(["a"], np.array([0.064]), np.zeros((1, FRAME), np.float32)).prob.shape
        (1,)
    """

    def __init__(
        self,
        model: SileroVAD | None = None,
        *,
        threshold: float = 0.5,
        neg_threshold: float | None = None,
        min_silence_ms: float = 100.0,
        capacity: int = 1024,
        max_capacity: int | None = None,
        eviction: EvictionPolicy = "lru",
        ttl_seconds: float | None = None,
        device: torch.device | str = "cpu",
        model_id: str | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"VAD threshold must be in (0, 1), got {threshold}")
        neg = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
        if not 0.0 < neg <= threshold:
            raise ConfigError(f"VAD neg_threshold must be in (0, threshold], got {neg}")
        self.device = torch.device(device)
        self.model = (model or SileroVAD.pretrained()).to(self.device).eval()
        self.model_id = packaged_model_id() if model_id is None else model_id
        self.threshold = float(threshold)
        self.neg_threshold = float(neg)
        self.min_silence_samples = SAMPLE_RATE * min_silence_ms / 1000.0
        aux_init = torch.zeros(AUX_SIZE)
        aux_init[_A_SINCE] = -1.0
        self.slab = StateSlab(
            layers=1,
            parts=2,
            hidden=HIDDEN,
            aux_init=aux_init,
            capacity=capacity,
            max_capacity=max_capacity,
            eviction=eviction,
            ttl_seconds=ttl_seconds,
            device=self.device,
        )
        self._staging = _Staging(self.device) if self.device.type != "cpu" else None
        # on the CPU a wave's hysteresis and state rows are one compiled loop (models/_vad_waves.py)
        self.kernel = _jit.AVAILABLE and self.device.type == "cpu"
        if self.kernel:
            _vad_waves.warm_up()

    @functools.cached_property
    def fingerprint(self) -> str:
        """What builds this runner's state (:mod:`models.fingerprint`): the Silero weights and the VAD settings
        that shape its hysteresis state (thresholds, minimum silence)."""
        cfg = {
            "runner": "silero-vad",
            "threshold": self.threshold,
            "neg_threshold": self.neg_threshold,
            "min_silence_samples": self.min_silence_samples,
        }
        return fingerprint(self.model, cfg)

    @property
    def n_features(self) -> int:
        """Width of an event's decoded vector: the 512 new samples of one frame."""
        return FRAME

    def process(self, batch: Batch) -> Results:
        """The :class:`~models.types.StreamRunner` step: frames ``batch.x[B, 512]`` -> per-row results.

        ``prediction[:, 0]`` and ``score`` are the speech probability, ``anomaly`` whether the stream
        is in speech after the frame, ``transition`` +1 where speech started and -1 where it ended;
        ``expected`` is NaN (the VAD expects no value). Each speech start or end is an
        :class:`~models.types.Alert` with what the ``audio`` source writes for it: ``state`` ``open``
        (start, at ``threshold``) or ``resolved`` (end, at ``neg_threshold``), the probability as
        score and actual value, the boundary in the explanation and in ``extra``.

        A frame older than its stream's last frame (the slab's, then the ones before it in this batch)
        is rejected as ``out_of_order`` and leaves the stream alone, as the Runner rejects events.
        """
        n = len(batch)
        ts = np.asarray(batch.ts, np.float64)
        ids = batch.stream_ids
        x = _checked(ids, ts, batch.x)  # [n, FRAME]
        slots = self.slab.assign(ids, ts)  # [n]; a stale frame's stream is resident already
        rank = wave_ranks(slots)  # [n]
        keep = self._in_order(slots, rank, ts)  # [n]
        reason: list[str | None] = [None] * n
        if keep.all():
            rows = np.arange(n)
            res = self._frames(ids, ts, x, slots, rank)
        else:
            rows = np.flatnonzero(keep)
            for j in np.flatnonzero(~keep).tolist():
                reason[j] = REJECT_OUT_OF_ORDER
            kept = [ids[j] for j in rows.tolist()]
            res = self._frames(kept, ts[rows], x[torch.from_numpy(rows)], slots[rows], wave_ranks(slots[rows]))
        prediction = np.full((n, 1), np.nan, np.float32)  # rejected rows: NaN, as the Runner's
        prediction[rows, 0] = res.prob
        score = np.zeros(n, np.float32)
        score[rows] = res.prob
        anomaly = np.zeros(n, bool)
        anomaly[rows] = res.speaking
        transition = np.zeros(n, np.int8)
        alerts = []
        for e in res.events:
            i = int(rows[e.index])  # the event's row in this batch
            start = e.kind == "start"
            transition[i] = 1 if start else -1
            what = "speech started" if start else f"speech ended {e.frames_ago} frame(s) before this frame"
            alerts.append(
                Alert(
                    index=i,
                    stream_id=e.stream_id,
                    ts=e.ts,
                    state="open" if start else "resolved",
                    score=e.prob,
                    expected=[],
                    actual=[e.prob],
                    kind=None,  # the speech records name their event in extra, no alert kind
                    explanation=f"{what} at {e.boundary_ts:.3f} (speech probability {e.prob:.3f}; "
                    f"start >= {self.threshold:.2f}, end < {self.neg_threshold:.2f})",
                    extra={
                        "event": "speech_start" if start else "speech_end",
                        "boundary_ts": e.boundary_ts,
                        "frames_ago": e.frames_ago,
                    },
                    threshold=self.threshold if start else self.neg_threshold,
                )
            )
        expected = np.full((n, 1), np.nan, np.float32)
        return Results(keep, reason, prediction, expected, score, anomaly, transition, alerts)

    @torch.inference_mode()
    def process_frames(self, stream_ids: Sequence[str], ts: np.ndarray, pcm: np.ndarray | Tensor) -> VadResults:
        """``pcm[B, 512]`` float in [-1, 1] (int16 / 32768) -> probabilities and speech transitions.

        Every row is run (no out-of-order check: :meth:`process` does that).

        One host->device copy in (the frames and slots of every wave, through the staging buffer,
        pinned on CUDA) and one device->host copy out, however many waves the batch needs.
        """
        ts = np.asarray(ts, np.float64)
        x = _checked(stream_ids, ts, pcm)  # [B, FRAME]
        slots = self.slab.assign(stream_ids, ts)  # [B]
        return self._frames(stream_ids, ts, x, slots, wave_ranks(slots))

    def _in_order(self, slots: np.ndarray, rank: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """``[n]`` False for a frame older than its stream's newest one so far (the slab's, then the
        kept frames before it in this batch), wave by wave; NaN compares as in order, as ``t < prev``."""
        last = self.slab.last_ts
        if not len(rank) or rank.max() == 0:  # the usual batch: every stream once
            return ~(ts < last[slots])  # type: ignore[no-any-return]
        uniq, inv = np.unique(slots, return_inverse=True)  # [u], [n]
        newest = last[uniq]  # [u] a stale frame never raises it, so it runs over every frame
        keep = np.ones(len(ts), bool)
        for w in range(int(rank.max()) + 1):
            r = np.flatnonzero(rank == w)  # rows of distinct streams
            k, t = inv[r], ts[r]
            ok = ~(t < newest[k])
            keep[r] = ok
            newest[k[ok]] = t[ok]
        return keep

    @torch.inference_mode()
    def _frames(
        self, stream_ids: Sequence[str], ts: np.ndarray, x_all: Tensor, slots: np.ndarray, rank: np.ndarray
    ) -> VadResults:
        """:meth:`process_frames` of rows checked by :func:`_checked` (``x_all[n, FRAME]``) whose ``slots``
        are assigned and ``rank`` (:func:`~models.state.wave_ranks`) known."""
        n = len(stream_ids)
        if not n:
            return self._results(stream_ids, ts, np.zeros((0, 5), np.float32))
        one_wave = int(rank.max()) == 0
        x_host = x_all.cpu().numpy()  # [n, FRAME]
        # a row's input: the context (its stream's previous frame's tail in this batch, else the slab's), the frame
        xin = np.empty((n, CONTEXT + FRAME), np.float32)  # [n, 576]
        xin[:, CONTEXT:] = x_host
        if one_wave:  # rows in batch order, no reordering copy
            order, spans, wslots = None, [(0, n)], slots  # [n] slots
        else:  # rows wave by wave: each wave a contiguous span; wave 0 holds every stream once
            by_stream = np.argsort(slots, kind="stable")  # [n] a stream's rows together, in batch order
            later = slots[by_stream[1:]] == slots[by_stream[:-1]]  # [n - 1]
            xin[by_stream[1:][later], :CONTEXT] = x_host[by_stream[:-1][later], -CONTEXT:]
            order = np.argsort(rank, kind="stable")  # [n]
            ends = np.cumsum(np.bincount(rank)).tolist()
            spans = list(zip([0, *ends[:-1]], ends))
            xin, wslots = xin[order], slots[order]  # [n, 576], [n] in wave order
        waves = _vad_waves.waves_compiled if self.kernel and self._staging is None else _vad_waves.waves_torch
        packed = waves(self, xin, wslots, spans)  # [n, 5] in wave order; the slab updated
        if order is None:
            out = packed  # prob, started, ended, frames since tentative end, speaking
            steps, last = self.slab.steps, self.slab.last_ts
            steps[slots] += 1  # distinct slots
            last[slots] = np.maximum(last[slots], ts)
        else:
            out = np.empty((n, 5), np.float32)
            out[order] = packed
            np.add.at(self.slab.steps, slots, 1)
            np.maximum.at(self.slab.last_ts, slots, ts)
        return self._results(stream_ids, ts, out)

    def _results(self, stream_ids: Sequence[str], ts: np.ndarray, out: np.ndarray) -> VadResults:
        events: list[VadEvent] = []
        started, ended = out[:, 1] > 0, out[:, 2] > 0
        for i in map(int, np.flatnonzero(started | ended)):
            if started[i]:
                events.append(VadEvent(i, stream_ids[i], "start", float(ts[i]), float(ts[i]), 0, float(out[i, 0])))
            else:
                ago = int(out[i, 3])
                boundary = float(ts[i]) - ago * FRAME_SECONDS
                events.append(VadEvent(i, stream_ids[i], "end", float(ts[i]), boundary, ago, float(out[i, 0])))
        return VadResults(prob=out[:, 0].copy(), speaking=out[:, 4] > 0, events=events)
