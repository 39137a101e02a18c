"""What the compiled CPU loops share (models/_score_kernel.py, _calibrated_kernel.py, _tick_kernel.py):
how they are compiled, and the fused multiply-add and ``lerp`` that torch's CPU kernels use.

Why one place: numba caches machine code on disk when it finds a writable place (next to the module,
``NUMBA_CACHE_DIR``, ``~/.cache/numba``); a container with a read-only root filesystem and no writable
home has none, and numba then refuses ``cache=True`` at import. :func:`jit` compiles in memory instead.
Without numba (``AVAILABLE`` False: a host whose own Python stack lacks it, such as a lent GPU
machine) nothing is compiled and every caller keeps the torch code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import ConfigError

try:
    from numba import njit, types
    from numba.extending import intrinsic

    AVAILABLE = True
except ImportError:  # e.g. a GPU host's own Python stack without numba: the torch code runs everywhere
    AVAILABLE = False

__all__ = ["AVAILABLE", "fma", "jit", "lerp", "loop_rows", "torch_path_rows"]

_HALF, _ONE = np.float32(0.5), np.float32(1.0)


def jit(fn: Callable[..., Any] | None = None, **kw: Any) -> Any:
    """``numba.njit(cache=True, nogil=True, **kw)``, without the cache where numba has nowhere to write it."""

    def wrap(f: Callable[..., Any]) -> Any:
        if not AVAILABLE:  # never called then (every caller checks AVAILABLE); plain Python
            return f
        try:
            return njit(cache=True, nogil=True, **kw)(f)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(cache=False, nogil=True, **kw)(f)

    return wrap(fn) if fn is not None else wrap


def _fma_typing(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` rounded once (LLVM's fma), as torch's CPU ``addcmul`` and ``lerp`` compute it."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fma(*args)

    return sig, codegen


# called as fma(a, b, c) in compiled code
fma: Any = intrinsic(_fma_typing) if AVAILABLE else (lambda a, b, c: a * b + c)


@jit(inline="always")
def lerp(start: Any, end: Any, weight: Any) -> Any:
    """torch's CPU ``lerp`` (ATen/native/cpu/LerpKernel.cpp): the form by the weight's size, fused."""
    diff = end - start
    if abs(weight) < _HALF:
        return fma(weight, diff, start)
    return fma(weight - _ONE, diff, end)


def loop_rows(rows: Any, b: int) -> np.ndarray:
    """The row indices a loop takes: the caller's ``rows`` (a CPU int64 tensor of slots: the Runner's waves
    updated in place in the slab's ``aux``), or a wave's own ``0..b-1`` (its gathered rows)."""
    return rows.numpy() if rows is not None else np.arange(b)  # type: ignore[no-any-return]


def torch_path_rows(rows: Any, what: str) -> None:
    """Refuse ``rows=`` on a torch path: it works on a wave's gathered rows, and given the slab's whole
    ``aux`` it would update every stream (the Runner checks ``Features.in_place`` before it passes rows)."""
    if rows is not None:
        raise ConfigError(f"{what} works on a wave's gathered aux rows; rows= of the slab needs the compiled loops")
