"""The VAD runner's waves after the front end: the LSTM step, VADIterator's hysteresis, the state rows.

Two implementations of the same rules with the same float32 values (``tests/test_silero.py`` checks
them bit for bit): :func:`waves_torch` (any device: torch ops on a wave's gathered rows) and, on the
CPU, :func:`waves_compiled`, where each wave's bookkeeping is one compiled loop (:func:`vad_rows`)
over the slab's own state rows. The torch ops are about twenty small calls per wave (the hysteresis,
the state row rebuilt with ``cat``, the outputs stacked): most of Silero's fixed cost per micro-batch
on the CPU besides the network itself (issue 17).

A state row (``aux[slot]``, ``A = C + 2`` columns): the previous frame's last ``C`` samples (the
next frame's context), whether speech is on, frames since a tentative end (-1: none).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._jit import jit

__all__ = ["hysteresis", "vad_rows", "warm_up", "waves_compiled", "waves_torch"]

# ``r``: the models.silero.VadRunner that calls (its model, slab, staging buffer and VAD settings);
# typed loosely, as naming the class here would make an import circle
VadRunner = Any

_ZERO, _ONE, _MINUS_ONE, _HALF = np.float32(0.0), np.float32(1.0), np.float32(-1.0), np.float32(0.5)


def hysteresis(
    prob: Tensor, trig: Tensor, since: Tensor, thr: float, neg: float, min_silence: float, frame: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """VADIterator's rules, vectorised; ``since`` = frames since the tentative end (-1 none)."""
    since = torch.where(since >= 0, since + 1, since)
    speech = prob >= thr
    since = torch.where(speech, torch.full_like(since, -1.0), since)
    started = speech & ~trig
    trig = trig | started
    low = (prob < neg) & trig
    since = torch.where(low & (since < 0), torch.zeros_like(since), since)
    ended = low & (since * frame >= min_silence)
    ago = torch.where(ended, since, torch.zeros_like(since))
    trig = trig & ~ended
    since = torch.where(ended, torch.full_like(since, -1.0), since)
    return trig, since, started, ended, ago


def waves_torch(r: VadRunner, xin: np.ndarray, wslots: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """``xin[n, C + 512]`` (context + frame) and ``wslots[n]`` in wave order -> ``[n, 5]``: prob, started,
    ended, frames since the tentative end, speaking. Updates the slab."""
    slab, ctx, first = r.slab, xin.shape[1] - r.n_features, spans[0][1]
    if r._staging is not None:
        xd, idx, _ = r._staging.put(xin, wslots, None)  # [n, C + F], [n] on the device
    else:  # CPU: the arrays themselves
        xd, idx = torch.from_numpy(xin), torch.from_numpy(wslots)  # [n, C + F], [n]
    xd[:first, :ctx] = slab.aux.index_select(0, idx[:first])[:, :ctx]  # [u, C] wave 0: the slab's context
    z_all = r.model.encode(xd)  # [n, 128]: the front end of every wave at once
    parts = []
    for a, b in spans:  # a stream's frames in order: one wave per occurrence
        i = idx[a:b]  # [b] distinct slots
        hidden, aux = slab.gather(i)  # [b, 1, 2, H], [b, A]
        prob, h, c = r.model.decode(z_all[a:b], hidden[:, 0, 0], hidden[:, 0, 1])  # [b], [b, H], [b, H]
        trig, since, started, ended, ago = hysteresis(
            prob, aux[:, ctx] > 0.5, aux[:, ctx + 1], r.threshold, r.neg_threshold, r.min_silence_samples, r.n_features
        )  # [b] each
        aux = torch.cat([xd[a:b, -ctx:], trig.float().unsqueeze(1), since.unsqueeze(1)], dim=1)  # [b, A]
        slab.scatter(i, torch.stack([h, c], dim=1).unsqueeze(1), aux)  # [b, 1, 2, H], [b, A]
        parts.append(torch.stack([prob, started.float(), ended.float(), ago, trig.float()], dim=1))  # [b, 5]
    return (parts[0] if len(parts) == 1 else torch.cat(parts)).cpu().numpy()  # type: ignore[no-any-return]


def waves_compiled(r: VadRunner, xin: np.ndarray, wslots: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """:func:`waves_torch` on the CPU: the network in torch, each wave's bookkeeping one :func:`vad_rows` call
    in the slab's own rows; no per-wave gather of the state rows, ``cat`` or ``stack``."""
    slab, ctx, first = r.slab, xin.shape[1] - r.n_features, spans[0][1]
    aux = slab.aux.numpy()  # [S, A] the slab's own rows
    xin[:first, :ctx] = aux[wslots[:first], :ctx]  # [u, C] wave 0: the slab's context
    idx = torch.from_numpy(wslots)  # [n]
    z_all = r.model.encode(torch.from_numpy(xin))  # [n, 128]: the front end of every wave at once
    hid = slab.hidden  # [S, 1, 2, H]
    par = np.array([r.threshold, r.neg_threshold, r.min_silence_samples, r.n_features], np.float32)  # [4]
    out = np.empty((len(wslots), 5), np.float32)  # [n, 5]
    for a, b in spans:  # a stream's frames in order: one wave per occurrence
        i = idx[a:b]  # [b] distinct slots
        hidden = hid.index_select(0, i)  # [b, 1, 2, H]
        prob, h, c = r.model.decode(z_all[a:b], hidden[:, 0, 0], hidden[:, 0, 1])  # [b], [b, H], [b, H]
        vad_rows(aux, wslots[a:b], prob.contiguous().numpy(), xin[a:b, -ctx:], par, out[a:b])
        hid.index_copy_(0, i, torch.stack([h, c], dim=1).unsqueeze(1).to(hid.dtype))  # [b, 1, 2, H]
    return out


def _vad_rows(
    aux: np.ndarray,  # [S, A] float32: the slab's aux (updated in place): context[C], trig, since
    rows: np.ndarray,  # [b] int64: the wave's slots (distinct)
    prob: np.ndarray,  # [b] float32: the wave's speech probabilities
    tail: np.ndarray,  # [b, C] float32: each row's last C input samples (the next frame's context)
    par: np.ndarray,  # [4] float32: threshold, neg_threshold, min_silence_samples, samples per frame
    out: np.ndarray,  # [b, 5] float32 out: prob, started, ended, frames ago, speaking
) -> None:
    # float32 throughout, as torch compares a float32 tensor with a Python float (the scalar is cast)
    ctx = tail.shape[1]
    thr, neg, min_sil, frame = par[0], par[1], par[2], par[3]
    for i in range(rows.shape[0]):
        row = aux[rows[i]]  # [A] view
        p = prob[i]
        trig = row[ctx] > _HALF
        since = row[ctx + 1]
        if since >= _ZERO:
            since = since + _ONE
        speech = p >= thr
        if speech:
            since = _MINUS_ONE
        started = speech and not trig
        trig = trig or started
        low = p < neg and trig
        if low and since < _ZERO:
            since = _ZERO
        ended = low and since * frame >= min_sil
        ago = since if ended else _ZERO
        trig = trig and not ended
        if ended:
            since = _MINUS_ONE
        for k in range(ctx):
            row[k] = tail[i, k]
        row[ctx] = _ONE if trig else _ZERO
        row[ctx + 1] = since
        out[i, 0] = p
        out[i, 1] = _ONE if started else _ZERO
        out[i, 2] = _ONE if ended else _ZERO
        out[i, 3] = ago
        out[i, 4] = _ONE if trig else _ZERO


vad_rows = jit(_vad_rows)


def warm_up() -> None:
    """Compile the loop (or load it from numba's cache) now, not in the first batch."""
    f32 = np.float32
    aux, tail = np.zeros((1, 4), f32), np.zeros((4, 4), f32)[:0, 2:]  # a wave's tail is a column slice
    vad_rows(aux, np.zeros(0, np.int64), np.zeros(0, f32), tail, np.zeros(4, f32), np.zeros((0, 5), f32))
