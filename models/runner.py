"""The Runner: the model step over a micro-batch of events of many streams, and the featuriser
a checkpoint names (:func:`make_features`).

A micro-batch in (:class:`~models.types.Batch`), per-event forecasts, scores and alerts out
(:class:`~models.types.Results`). The Kafka side (stream/pipeline.py), offline replay, benchmarks
and tests all call :meth:`Runner.process`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .errors import ConfigError, InputError
from .features import Features, MaskedFeatures, RawFeatures
from .fingerprint import fingerprint
from .graphs import WaveGraphs
from .nets import NetConfig, RecurrentForecaster
from .scoring_config import ScoringConfig
from .state import EvictionPolicy, StateSlab, wave_ranks
from .ticks import TickFeatures
from .types import REJECT_NON_FINITE, REJECT_OUT_OF_ORDER, Batch, Results

__all__ = ["Runner", "make_features", "resolve_device"]

CPU_CHUNK = 1024  # rows per model step on CPU (0: whole waves); see Runner.cpu_chunk


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a configuration error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA device; use 'auto' or 'cpu'")
    return dev


def make_features(config: NetConfig, scoring: ScoringConfig) -> Features:
    """The featuriser a checkpoint's ``NetConfig.inputs`` names (the Runner's and training's).

    Example:
        >>> f = make_features(NetConfig(input_size=2), ScoringConfig())
        >>> f.kind, f.raw_size, f.out_width
        ('raw', 2, 7)
    """
    if config.inputs == "raw":
        if config.out_size != config.input_size:
            raise ConfigError("a raw-input model forecasts its whole input: output_size must be 0 or input_size")
        return RawFeatures(config, scoring)
    if config.inputs == "masked":
        return MaskedFeatures(config, scoring)
    return TickFeatures(config, scoring)


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class _LowPrecision:
    """A model's step with weights and activations in a lower precision; fp32 in and out."""

    def __init__(self, model: RecurrentForecaster, dtype: torch.dtype) -> None:
        import copy

        self.model = copy.deepcopy(model).to(dtype)
        self.dtype = dtype

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, new = self.model.step(x.to(self.dtype), state.to(self.dtype))  # [B, O], [B, L, K, H] in dtype
        return y.float(), new.float()  # [B, O], [B, L, K, H]


class _Staging:
    """A batch's slots, values and time gaps in one host buffer, moved to the device with one copy.

    Layout for ``n`` rows of ``w`` value columns: int64 slots ``[n]`` | float32 values ``[n, w]`` |
    float32 gaps ``[n]``. On CUDA the host buffer is pinned, so the copy is a real DMA that does not
    wait for the host; both buffers grow by doubling and are reused. Reuse is safe because every
    batch ends with a blocking device->host copy of its outputs, after which its input copy is done.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._pin = device.type == "cuda"
        self._host = torch.empty(0, dtype=torch.uint8)
        self._dev = torch.empty(0, dtype=torch.uint8, device=device)

    def put(
        self, x: np.ndarray, slots: np.ndarray, dt: np.ndarray | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        n, w = x.shape
        nb_s, nb_x = 8 * n, 4 * n * w  # int64 slots first: every later offset stays 4-byte aligned
        total = nb_s + nb_x + (4 * n if dt is not None else 0)
        if total > self._host.numel():
            cap = max(total, 2 * self._host.numel(), 1 << 16)
            self._host = torch.empty(cap, dtype=torch.uint8, pin_memory=self._pin)  # [cap] bytes
            self._dev = torch.empty(cap, dtype=torch.uint8, device=self.device)  # [cap] bytes
        hb = self._host.numpy()
        hb[:nb_s].view(np.int64)[:] = slots  # [n]
        hb[nb_s : nb_s + nb_x].view(np.float32).reshape(n, w)[:] = x  # [n, w]
        if dt is not None:
            hb[nb_s + nb_x : total].view(np.float32)[:] = dt  # [n]
        dev = self._dev[:total]
        dev.copy_(self._host[:total], non_blocking=True)  # the batch's one host->device copy
        idx = dev[:nb_s].view(torch.int64)  # [n]
        xd = dev[nb_s : nb_s + nb_x].view(torch.float32).view(n, w)  # [n, w]
        dtd = dev[nb_s + nb_x : total].view(torch.float32) if dt is not None else None  # [n]
        return xd, idx, dtd


class Runner:
    """Model + scorer + state slab; decides device, dtype and code path once.

    Example:
        >>> r = Runner(RecurrentForecaster(NetConfig(hidden_size=8)), ScoringConfig(warmup=0))
        >>> res = r.process(Batch.from_rows([("a", 0.0, [1.0]), ("a", 1.0, [1.5]), ("b", 0.0, [2.0])]))
        >>> res.accepted.tolist(), len(r.slab)
        ([True, True, True], 2)
    """

    def __init__(
        self,
        model: RecurrentForecaster,
        scoring: ScoringConfig | None = None,
        *,
        device: str | torch.device = "auto",
        capacity: int = 1024,
        max_capacity: int | None = 1 << 20,
        eviction: EvictionPolicy = "lru",
        ttl_seconds: float | None = None,
        model_id: str = "unnamed",
        cuda_graphs: bool = True,
        compute_dtype: str = "float32",
    ) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.config: NetConfig = model.config
        self.scoring = scoring or ScoringConfig()
        self.features = make_features(self.config, self.scoring)
        self.scorer = self.features.scorer
        self.model_id = model_id
        # the cell step may run in bf16/fp16 (state, scorer and outputs stay fp32); accuracy cost
        # measured in docs/benchmarks.md ("Reduced precision")
        if compute_dtype not in _DTYPES:
            raise ConfigError(f"compute_dtype must be one of {sorted(_DTYPES)}, got {compute_dtype!r}")
        self.compute_dtype = compute_dtype
        self._step_model: Any = self.model
        if compute_dtype != "float32":
            self._step_model = _LowPrecision(self.model, _DTYPES[compute_dtype])
        c = self.config
        self.slab = StateSlab(
            layers=c.num_layers,
            parts=c.state_parts,
            hidden=c.hidden_size,
            aux_init=self.features.init_row(),
            capacity=capacity,
            max_capacity=max_capacity,
            eviction=eviction,
            ttl_seconds=ttl_seconds,
            device=self.device,
        )
        # CPU: step very large waves in chunks of this many rows; the gate temporaries of a chunk
        # stay in the core's L2 (B x 3H floats), which holds the best per-row rate at every batch size
        self.cpu_chunk = CPU_CHUNK
        self.events = 0
        self.rejected = 0
        self._last_sweep = -np.inf
        # inputs of a batch reach the device in one copy through a staging buffer (pinned on CUDA)
        self._staging: _Staging | None = _Staging(self.device) if self.device.type != "cpu" else None
        # CUDA: replay one captured graph per batch-size bucket instead of launching each wave's
        # ~40 kernels (models/graphs.py); eager everywhere else
        self.graphs: WaveGraphs | None = None
        if cuda_graphs and self.device.type == "cuda":
            self.graphs = WaveGraphs(
                Runner._wave.__get__(self),
                storage=lambda: (self.slab.hidden.data_ptr(), self.slab.aux.data_ptr()),
                device=self.device,
            )
            self._wave = self.graphs  # type: ignore[method-assign]
        # CPU: where the featuriser's scorer runs as compiled loops (Features.in_place), a wave's aux rows
        # are updated where they are in the slab instead of gathered and scattered: the shipped sensor
        # detector keeps 861 floats per stream, of which a step touches a few dozen (docs/benchmarks.md).
        # Never under wave graphs: their padding repeats a wave's last slot, harmless only on gathered rows
        self.aux_in_place = self.device.type == "cpu" and self.graphs is None
        # A micro-batch with several events of a stream runs them as one sequence step where the compiled
        # loops update the aux rows in place (aux_in_place and Features.in_place: the CPU): one
        # featurise/normalise call over every row, the model once per wave, one scoring call. Waves
        # otherwise, each paying the per-call costs again (a busy ticks symbol has ~10 ticks in a batch:
        # docs/benchmarks.md). The same outputs and state either way; False: always waves (the tests' reference)
        self.sequence = True

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, **kwargs: object) -> Runner:
        """Build a runner from a checkpoint (default: the bundled sensor checkpoint)."""
        ckpt = load_checkpoint(path)
        kwargs.setdefault("model_id", ckpt.model_id)
        return cls(ckpt.model, ckpt.scoring, **kwargs)  # type: ignore[arg-type]

    @functools.cached_property
    def fingerprint(self) -> str:
        """What builds this runner's state (:mod:`models.fingerprint`): the weights, the architecture and the
        scoring configuration (thresholds included: the scorer state holds whether an alert is open)."""
        cfg = {"runner": "forecaster", "net": self.config.to_dict(), "scoring": self.scoring.fingerprint_dict()}
        return fingerprint(self.model, cfg)

    @property
    def n_features(self) -> int:
        """Width of an event's decoded vector (``Batch.x``); the model input may differ (ticks)."""
        return self.features.raw_size

    @property
    def threshold(self) -> float:
        """The score at which an alert opens (the scoring config's ``open_threshold``)."""
        return float(self.scoring.open_threshold)

    def process(self, batch: Batch) -> Results:
        """Advance each event's stream by one step, in batch order per stream."""
        n, f = len(batch), self.n_features
        x = np.ascontiguousarray(batch.x, dtype=np.float32)
        if x.ndim != 2 or x.shape != (n, f) or batch.ts.shape != (n,):
            raise InputError(
                f"batch of {n} events needs x[{n}, {f}] and ts[{n}], got x{list(x.shape)} ts{list(batch.ts.shape)}; "
                f"this model takes {f} feature(s) per event"
            )
        reason: list[str | None] = [None] * n
        if n == 0:
            empty = np.zeros((0, f), np.float32)
            return Results(
                np.zeros(0, bool),
                reason,
                empty,
                empty.copy(),
                np.zeros(0, np.float32),
                np.zeros(0, bool),
                np.zeros(0, np.int8),
            )

        finite = self.features.valid(x) & np.isfinite(batch.ts)
        for i in np.flatnonzero(~finite):
            reason[i] = REJECT_NON_FINITE
        cand = np.flatnonzero(finite)
        ids = batch.stream_ids if len(cand) == n else [batch.stream_ids[i] for i in cand.tolist()]
        slots = self.slab.assign(ids, batch.ts[cand])
        ordered = np.sort(slots)
        repeats = bool((ordered[1:] == ordered[:-1]).any())
        rank = wave_ranks(slots) if repeats else np.zeros(len(slots), np.int64)

        # order accepted rows wave by wave; reject events older than their stream's last one
        rows_parts, slot_parts, dt_parts, bounds = [], [], [], [0]
        ts = batch.ts
        want_dt = self.features.needs_dt
        for w in range(int(rank.max()) + 1 if len(rank) else 0):
            if repeats:
                sel = rank == w
                r, s = cand[sel], slots[sel]
            else:  # one wave: every candidate row
                r, s = cand, slots
            ok = ts[r] >= self.slab.last_ts[s]
            for i in r[~ok]:
                reason[i] = REJECT_OUT_OF_ORDER
            r, s = r[ok], s[ok]
            if want_dt:  # time since the stream's previous event (inf for its first)
                dt_parts.append((ts[r] - self.slab.last_ts[s]).astype(np.float32))
            self.slab.last_ts[s] = ts[r]
            self.slab.steps[s] += 1
            rows_parts.append(r)
            slot_parts.append(s)
            bounds.append(bounds[-1] + len(r))
        rows = np.concatenate(rows_parts) if rows_parts else np.zeros(0, np.int64)
        dt = np.concatenate(dt_parts) if want_dt and dt_parts else None
        width = self.features.out_width
        xs = x
        if self.scorer.n_phases:  # event-time buckets travel with the values: still one copy in
            xs = np.concatenate((x, self.scorer.phases(ts)), 1)  # [n, F + P]
        in_order = len(rows_parts) == 1 and len(rows) == n
        if in_order:  # the common case: rows == arange(n), no scatter needed
            packed = self._step(xs, slot_parts[0], bounds, dt)
            accepted = np.ones(n, bool)
        else:
            accepted = np.zeros(n, bool)
            accepted[rows] = True
            packed = np.full((n, width), np.nan, np.float32)
            if len(rows):
                packed[rows] = self._step(xs[rows], np.concatenate(slot_parts), bounds, dt)
            packed[~accepted, 2 * f : 2 * f + 3] = 0.0  # score, anomaly, transition of rejected rows
        out_p = packed[:, :f].copy()
        out_e = packed[:, f : 2 * f].copy()
        score = packed[:, 2 * f].copy()
        anomaly = packed[:, 2 * f + 1] > 0
        transition = packed[:, 2 * f + 2].astype(np.int8)
        self.events += len(rows)
        self.rejected += n - len(rows)
        if self.slab.eviction == "ttl" and len(rows):
            self._sweep_idle(float(ts[rows].max()))
        alerts = self.features.alerts(batch.stream_ids, ts, x, packed, np.flatnonzero(transition))
        fc = self.features.forecast(packed)
        return Results(accepted, reason, out_p, out_e, score, anomaly, transition, alerts, fc)

    def _sweep_idle(self, now: float) -> None:
        """TTL eviction at most four times per TTL of event time (a sweep walks every stream)."""
        ttl = self.slab.ttl_seconds or 0.0
        if now - self._last_sweep >= ttl / 4:
            self._last_sweep = now
            self.slab.evict_idle(now)

    @torch.inference_mode()
    def _step(self, x: np.ndarray, slots: np.ndarray, bounds: list[int], dt: np.ndarray | None = None) -> np.ndarray:
        """One host->device copy in, one step per wave on the device, one copy out."""
        dev = self.device
        if self._staging is not None:  # one (pinned) host buffer, one copy
            xd, idx, dtd = self._staging.put(x, slots, dt)  # [N, F], [N], [N]
        else:  # CPU: the arrays themselves, no copy
            xd = torch.from_numpy(x)  # [N, F]
            idx = torch.from_numpy(slots)  # [N]
            dtd = torch.from_numpy(dt) if dt is not None else None  # [N]
        chunk = self.cpu_chunk if dev.type == "cpu" else 0
        if len(bounds) == 2 and not (chunk and len(x) > chunk):  # the common case: every stream once
            return self._wave(idx, xd, dtd).cpu().numpy()
        spans: Iterable[tuple[int, int]] = itertools.pairwise(bounds)
        if chunk:  # rows of one wave are distinct streams, so any split of it gives the same results
            spans = ((c, min(b, c + chunk)) for a, b in spans for c in range(a, b, chunk))
        seq = self.sequence and self.aux_in_place and self.features.in_place
        if seq and len(bounds) > 2:
            return self._sequence(idx, xd, dtd, [(a, b) for a, b in spans if a < b]).numpy()  # [N, W]
        parts = [self._wave(idx[a:b], xd[a:b], dtd[a:b] if dtd is not None else None) for a, b in spans if a < b]
        return torch.cat(parts).cpu().numpy()  # [N, W]

    def _sequence(
        self, idx: torch.Tensor, x: torch.Tensor, dt: torch.Tensor | None, spans: list[tuple[int, int]]
    ) -> torch.Tensor:
        """Every wave of a micro-batch as one sequence step (CPU, aux in place): the features' pre-forecast
        part over all rows (a stream's rows in wave order, so in its event order), the model per span of
        distinct streams, the post-forecast part over all rows."""
        slab, feats = self.slab, self.features
        inp, ctx = feats.step_pre(slab.aux, x, dt, idx)  # [N, I]
        forecasts = []
        for a, b in spans:
            h = slab.hidden.index_select(0, idx[a:b])  # [b, L, K, H]
            fc, h = self._step_model.step(inp[a:b], h)  # [b, O], [b, L, K, H]
            slab.hidden.index_copy_(0, idx[a:b], h.to(slab.dtype))  # [C, L, K, H]
            forecasts.append(fc)
        return feats.step_post(slab.aux, x, torch.cat(forecasts), ctx, idx)  # [N, W]

    def _wave(self, idx: torch.Tensor, x: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
        """Rows of distinct streams: gather, featurise + normalise, step, score, scatter."""
        if self.aux_in_place and self.features.in_place:
            slab = self.slab
            h = slab.hidden.index_select(0, idx)  # [b, L, K, H]
            out, h = self.features.step(self._step_model, slab.aux, x, h, dt, rows=idx)  # [b, W], [b, L, K, H]
            slab.hidden.index_copy_(0, idx, h.to(slab.dtype))  # [C, L, K, H]
            return out
        h, aux = self.slab.gather(idx)  # [b, L, K, H], [b, A]
        out, h = self.features.step(self._step_model, aux, x, h, dt)  # [b, W], [b, L, K, H]
        self.slab.scatter(idx, h, aux)
        return out
