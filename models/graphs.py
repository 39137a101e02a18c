"""CUDA graphs of a Runner wave for fixed batch-size buckets.

A wave (gather -> scorer.pre -> model.step -> scorer.post -> scatter) is ~40 small kernels; on a
GPU a batch of up to ~100k streams costs the same launch-bound ~1.5 ms as a batch of 1. Capturing
the wave once per bucket size (powers of two) and replaying it turns those launches into one.

A batch of ``n`` rows runs in the smallest bucket ``b >= n``; the ``b - n`` padding rows repeat
row ``n - 1`` (same slot, same input), so they compute exactly what that row computes and their
scatter writes identical values into the same slot: no spare slot is needed and state is exact.
Graphs hold the slab's storage addresses, so a slab that grew (new tensors) gets new graphs.

Only for CUDA; :class:`WaveGraphs` is a no-op wrapper elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["WaveGraphs"]

log = logging.getLogger(__name__)

WaveFn = Callable[..., Tensor]  # wave(idx[B], x[B, F], dt[B] | None) -> out[B, O]
_Key = tuple[int, bool, tuple[int, ...]]  # bucket, with dt, storage addresses
_Entry = tuple["torch.cuda.CUDAGraph", Tensor, Tensor, Tensor | None, Tensor]


class WaveGraphs:
    """Replay captured CUDA graphs of ``wave(idx[B], x[B, F], dt[B] | None) -> out[B, O]`` per bucket size.

    ``storage`` returns the data pointers the wave reads and writes besides its arguments (the
    slab's tensors); a change re-captures. The first call of a bucket runs eagerly on a side
    stream (the warm-up the capture needs), the second captures, then every call replays.

    Example:
        >>> g = WaveGraphs(lambda i, x: x * 2, storage=lambda: (), device=torch.device("cpu"))
        >>> g(torch.tensor([0, 1]), torch.ones(2, 1)).tolist()  # eager off CUDA
        [[2.0], [2.0]]
    """

    def __init__(
        self,
        wave: WaveFn,
        *,
        storage: Callable[[], tuple[int, ...]],
        device: torch.device,
        min_bucket: int = 256,
        max_bucket: int = 1 << 20,
    ) -> None:
        self.wave = wave
        self.storage = storage
        self.device = device
        self.enabled = device.type == "cuda"
        self.min_bucket, self.max_bucket = min_bucket, max_bucket
        self._graphs: dict[_Key, _Entry] = {}
        self._warm: set[_Key] = set()
        self._layout: tuple[int, ...] | None = None
        self._pool = torch.cuda.graph_pool_handle() if self.enabled else None
        self._stream = torch.cuda.Stream(device) if self.enabled else None
        self.replays = 0
        self.captures = 0

    def bucket(self, n: int) -> int:
        return max(self.min_bucket, 1 << max(0, n - 1).bit_length())

    def __call__(self, idx: Tensor, x: Tensor, dt: Tensor | None = None) -> Tensor:
        n = idx.shape[0]
        if not self.enabled or n == 0 or n > self.max_bucket:
            return self.wave(idx, x, dt)
        b = self.bucket(n)
        layout = self.storage()
        if layout != self._layout:  # the slab was reallocated: every graph points at freed memory
            self._graphs.clear()
            self._warm.clear()
            self._layout = layout
        key = (b, dt is not None, layout)
        got = self._graphs.get(key)
        if got is None:
            if key not in self._warm:  # warm-up: a real, eager run on the side stream
                self._warm.add(key)
                assert self._stream is not None
                self._stream.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(self._stream):
                    out = self.wave(idx, x, dt)
                torch.cuda.current_stream(self.device).wait_stream(self._stream)
                return out
            try:
                got = self._capture(b, key, x, dt)
            except RuntimeError as exc:  # an op that cannot be captured: stay correct, go eager
                log.warning("CUDA graph capture failed (%s); this runner steps eagerly from now on", exc)
                self.enabled = False
                self._graphs.clear()
                torch.cuda.synchronize(self.device)
                return self.wave(idx, x, dt)
        graph, s_idx, s_x, s_dt, s_out = got
        s_idx[:n].copy_(idx)  # [b]
        s_x[:n].copy_(x)  # [b, F]
        if s_dt is not None and dt is not None:
            s_dt[:n].copy_(dt)  # [b]
        if n < b:
            s_idx[n:].copy_(idx[n - 1 :].expand(b - n))  # [b - n] padding repeats the last row
            s_x[n:].copy_(x[n - 1 :].expand(b - n, -1))  # [b - n, F]
            if s_dt is not None and dt is not None:
                s_dt[n:].copy_(dt[n - 1 :].expand(b - n))  # [b - n]
        graph.replay()
        self.replays += 1
        return s_out[:n].clone()  # [n, O] the next replay overwrites s_out

    def _capture(self, b: int, key: _Key, x: Tensor, dt: Tensor | None) -> _Entry:
        # static inputs that point at a real slot (slot 0 of the first row) only during capture:
        # capturing records kernels without running them, so no state changes here
        s_idx = torch.zeros(b, dtype=torch.int64, device=self.device)  # [b]
        s_x = torch.zeros((b, x.shape[1]), dtype=x.dtype, device=self.device)  # [b, F]
        s_dt = torch.zeros(b, dtype=dt.dtype, device=self.device) if dt is not None else None  # [b]
        graph = torch.cuda.CUDAGraph()
        assert self._stream is not None
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.graph(graph, pool=self._pool, stream=self._stream):
            s_out = self.wave(s_idx, s_x, s_dt)  # [b, O]
        torch.cuda.current_stream(self.device).wait_stream(self._stream)
        self._graphs[key] = (graph, s_idx, s_x, s_dt, s_out)
        self.captures += 1
        return self._graphs[key]
