"""The folded normal ``|N(m, s^2)|`` fitted by its first two moments: the calibrated profile channel's
null (``ScoringConfig.profile_folded``), one table and one sequence of float32 steps for the torch code
(:mod:`models.calibrated`) and the compiled loops (:mod:`models._calibrated_kernel`).

Why: the profile channel's statistic ``|x - profile mean| / sd`` is an absolute value. Where the value
scatters around its hour-of-week mean it is half-normal (``m = 0``), whose tail a location-scale
Gaussian puts far too thin: a 4-sd draw of a Gaussian noise reads as 5.3 sd of the statistic. Where the
profile is off by more than the noise (a daily shape the profile has not learnt yet) it sits away from
0 and is about Gaussian (``m >> s``). The folded normal spans both. Its ``m`` and ``s`` follow from the
mean ``mu`` and variance ``v`` the calibration keeps anyway: ``m^2 + s^2 = v + mu^2``, and
``mu / sqrt(v + mu^2)`` is ``g(m / s)``, a known increasing function (from ``sqrt(2 / pi)`` at 0 to 1),
inverted from :data:`FOLD_G` by linear interpolation. Below ``g(0)`` the fit is the half-normal, past
``g(12)`` the Gaussian with that mean and variance.

Example:
    >>> import numpy as np
    >>> m, s = folded_fit(np.float32(np.sqrt(2 / np.pi)), np.float32(1 - 2 / np.pi), FOLD_D, FOLD_G)
    >>> round(float(m), 3), round(float(s), 3)
    (0.0, 1.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._jit import jit

__all__ = ["FOLD_D", "FOLD_G", "folded_fit", "folded_null", "folded_tail"]


def _table() -> tuple[np.ndarray, np.ndarray]:
    d = np.linspace(0.0, 12.0, 2401)  # m / s; g(12) = 0.9965: the Gaussian for any practical purpose
    erf = np.array([math.erf(x / math.sqrt(2.0)) for x in d])
    g = ((math.sqrt(2.0 / math.pi) * np.exp(-0.5 * d * d) + d * erf) / np.sqrt(1.0 + d * d)).astype(np.float32)
    _, first = np.unique(g, return_index=True)  # g is flat at 0 (1 + O(d^4)): strictly increasing in float32
    return d[first].astype(np.float32), g[first]


FOLD_D, FOLD_G = _table()
"""``m / s`` on a grid, and ``g(m / s) = E|N(m, s^2)| / sqrt(m^2 + s^2)`` there (float32, increasing)."""

_F = np.float32
_ZERO, _ONE, _HALF, _INV_SQRT2 = _F(0.0), _F(1.0), _F(0.5), _F(1.0 / math.sqrt(2.0))


@jit(inline="always")
def folded_fit(mu: Any, v: Any, dd: Any, gg: Any) -> Any:
    """``(m, s)`` of the folded normal with mean ``mu`` and variance ``v`` (float32 scalars; ``dd``, ``gg``:
    :data:`FOLD_D`, :data:`FOLD_G`)."""
    mu = max(mu, _ZERO)
    m2 = v + mu * mu
    ratio = mu / math.sqrt(m2)
    n = gg.shape[0]
    if ratio >= gg[n - 1]:  # m / s >= 12: the Gaussian (to e^-72), the table's end
        return mu, math.sqrt(v)
    i = min(max(np.searchsorted(gg, ratio), 1), n - 1)
    t = min(max((ratio - gg[i - 1]) / (gg[i] - gg[i - 1]), _ZERO), _ONE)
    d = dd[i - 1] + t * (dd[i] - dd[i - 1])
    s = math.sqrt(m2 / (_ONE + d * d))
    return d * s, s


@jit(inline="always")
def folded_tail(r: Any, m: Any, s: Any) -> Any:
    """``P(|N(m, s^2)| > r)``."""
    return math.erfc((r - m) / s * _INV_SQRT2) * _HALF + math.erfc((r + m) / s * _INV_SQRT2) * _HALF


@jit(inline="always")
def folded_null(r: Any, mu: Any, v: Any, z0: Any, table: Any, n: Any) -> Any:
    """``(P(|N(m, s^2)| > r), 1 / P(|N(m, s^2)| > mu + z0 sqrt(v)))`` for the folded normal fitted to ``mu`` and
    ``v``: the tail probability of ``r`` and the inverse of the null's rate at ``z = z0`` (the tail check's).
    ``table``: :data:`FOLD_D` then :data:`FOLD_G` (``n`` each), an argument: a global array would be frozen
    into numba's cached machine code, which only a change of the calling module's own source invalidates."""
    m, s = folded_fit(mu, v, table[:n], table[n:])
    return folded_tail(r, m, s), _ONE / folded_tail(mu + z0 * math.sqrt(v), m, s)
