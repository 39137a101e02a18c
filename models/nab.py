"""Numenta Anomaly Benchmark (NAB) scoring, written from NAB's published rules (numpy only).

Rules (per application profile with weights ``A_TP, A_FP, A_FN``):

* each file's first ``min(floor(0.15 n), 750)`` rows are probationary and not scored;
* labels are anomaly windows ``[a, b]`` (timestamps, inclusive) of width ``W = b - a + 1`` rows;
* a detection is a row whose anomaly score is ``>= threshold``;
* inside a window only the earliest detection counts: row ``i`` is worth
  ``A_TP * sigma(-(b - i + 1) / W) / sigma(-1)`` with the scaled sigmoid
  ``sigma(y) = 2 / (1 + e^{5y}) - 1``; a window without a detection costs ``-A_FN``;
* a detection outside every window is worth ``A_FP * sigma((i - b') / (W' - 1))`` relative to the
  closest preceding window ``[a', b']`` (``-A_FP`` when ``y > 3`` or when no window precedes it);
* the threshold is one for the whole corpus, chosen to maximise the summed raw score (swept over
  every distinct score and "detect nothing"), or fixed in advance;
* normalised score ``100 (raw - null) / (perfect - null)`` with ``null = -A_FN * windows``
  (a detector that never fires; windows wholly inside probation excluded) and
  ``perfect = A_TP * windows``.

Example:
    >>> import numpy as np
    >>> c = NabCorpus({"f.csv": np.arange(100.0)}, {"f.csv": [(60.0, 69.0)]})
    >>> s = np.zeros(100); s[60] = 1.0
    >>> round(c.score({"f.csv": s})["standard"].normalized, 2)
    100.0
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .replay import parse_timestamp

__all__ = ["PROFILES", "NabCorpus", "NabResult", "read_scores", "sigma"]

PROFILES: dict[str, tuple[float, float, float]] = {  # (A_TP, A_FP, A_FN)
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}
SHORT_NAMES = {"standard": "standard", "reward_low_FP_rate": "low_FP", "reward_low_FN_rate": "low_FN"}
PROBATION_FRACTION = 0.15
PROBATION_MAX = 750


def sigma(y: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 y)) - 1``; -1 beyond ``y > 3``."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(over="ignore"):
        v = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, v)


SIGMA_EDGE = float(sigma(-1.0))


@dataclass(frozen=True)
class NabResult:
    profile: str
    threshold: float
    raw: float
    normalized: float
    windows_detected: int
    windows: int
    fp_rows: int

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


class NabCorpus:
    """Per-row window membership and detection values of a labelled corpus.

    ``timestamps`` maps a file's relative path to its row times (epoch seconds) and ``windows``
    to its labelled ``(start, end)`` times; both ends must match a row exactly.
    """

    def __init__(self, timestamps: Mapping[str, np.ndarray], windows: Mapping[str, list[tuple[float, float]]]) -> None:
        self.files = sorted(windows)
        self.rows: dict[str, int] = {}
        self._mask: dict[str, np.ndarray] = {}
        self._win: dict[str, np.ndarray] = {}  # global window id per row, -1 outside
        self._val: dict[str, np.ndarray] = {}  # sigma value of a detection per row (unweighted)
        self.n_windows = 0
        self.n_scorable_windows = 0
        for rel in self.files:
            if rel not in timestamps:
                raise InputError(f"labelled file {rel} is not in the data")
            ts = np.asarray(timestamps[rel], dtype=np.float64)
            n = len(ts)
            spans = []
            for start, end in windows[rel]:
                ia, ib = np.flatnonzero(ts == start), np.flatnonzero(ts == end)
                if len(ia) != 1 or len(ib) != 1 or ib[0] < ia[0]:
                    raise InputError(f"{rel}: window {start}..{end} does not match one row at each end")
                spans.append((int(ia[0]), int(ib[0])))
            spans.sort()
            idx = np.arange(n)
            win = np.full(n, -1, np.int64)
            val = np.full(n, -1.0)
            prev_end, prev_width = -1, 0
            cursor = 0
            for k, (a, b) in enumerate(spans):
                width = b - a + 1
                # false positives between the previous window and this one
                seg = idx[cursor:a]
                if prev_end >= 0:
                    val[cursor:a] = sigma((seg - prev_end) / max(prev_width - 1, 1))
                win[a : b + 1] = self.n_windows + k
                val[a : b + 1] = sigma(-(b - idx[a : b + 1] + 1) / width)
                prev_end, prev_width, cursor = b, width, b + 1
            if prev_end >= 0:
                val[cursor:] = sigma((idx[cursor:] - prev_end) / max(prev_width - 1, 1))
            probation = min(math.floor(PROBATION_FRACTION * n), PROBATION_MAX)
            mask = idx >= probation
            self.rows[rel] = n
            self._mask[rel] = mask
            self._win[rel] = win
            self._val[rel] = val
            self.n_windows += len(spans)
            self.n_scorable_windows += len(np.unique(win[mask & (win >= 0)]))

    def subset(self, files: list[str]) -> NabCorpus:
        """The same corpus restricted to ``files`` (scored and normalised on their windows only)."""
        out = object.__new__(NabCorpus)
        out.files = sorted(files)
        out.rows = {f: self.rows[f] for f in out.files}
        out._mask = {f: self._mask[f] for f in out.files}
        out._win = {f: self._win[f] for f in out.files}
        out._val = {f: self._val[f] for f in out.files}
        ids = np.concatenate([self._win[f][self._win[f] >= 0] for f in out.files] or [np.zeros(0, np.int64)])
        scorable = np.concatenate(
            [self._win[f][self._mask[f] & (self._win[f] >= 0)] for f in out.files] or [np.zeros(0, np.int64)]
        )
        out.n_windows = len(np.unique(ids))
        out.n_scorable_windows = len(np.unique(scorable))
        return out

    @classmethod
    def load(cls, data_dir: str | Path, labels: str | Path) -> NabCorpus:
        """Read the timestamps of every labelled file under ``data_dir`` and the windows JSON."""
        data_dir = Path(data_dir)
        with open(labels, encoding="utf-8") as fh:
            raw = json.load(fh)
        ts: dict[str, np.ndarray] = {}
        wins: dict[str, list[tuple[float, float]]] = {}
        for rel, spans in raw.items():
            ts[rel] = _read_column(data_dir / rel, "timestamp", parse_timestamp)
            wins[rel] = [(parse_timestamp(a), parse_timestamp(b)) for a, b in spans]
        return cls(ts, wins)

    def _pool(self, scores: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s, w, v = [], [], []
        for rel in self.files:
            if rel not in scores:
                raise InputError(f"no detector scores for {rel}")
            x = np.asarray(scores[rel], dtype=np.float64)
            if len(x) != self.rows[rel]:
                raise InputError(f"{rel}: {len(x)} scores for {self.rows[rel]} data rows")
            if not np.isfinite(x).all():
                raise InputError(f"{rel}: non-finite anomaly scores")
            m = self._mask[rel]
            s.append(x[m])
            w.append(self._win[rel][m])
            v.append(self._val[rel][m])
        return np.concatenate(s), np.concatenate(w), np.concatenate(v)

    def score(
        self,
        scores: Mapping[str, np.ndarray],
        threshold: float | None = None,
        profiles: Mapping[str, tuple[float, float, float]] = PROFILES,
    ) -> dict[str, NabResult]:
        """Score every profile, sweeping the threshold unless one is given."""
        s, w, v = self._pool(scores)
        out = {}
        for name, weights in profiles.items():
            thr = _sweep(s, w, v, weights, self.n_scorable_windows) if threshold is None else float(threshold)
            raw, hit, fp = _raw(thr, s, w, v, weights, self.n_scorable_windows)
            a_tp, _, a_fn = weights
            null = -a_fn * self.n_scorable_windows
            perfect = a_tp * self.n_windows
            out[name] = NabResult(name, thr, raw, 100.0 * (raw - null) / (perfect - null), hit, self.n_windows, fp)
        return out


def _raw(
    thr: float, s: np.ndarray, w: np.ndarray, v: np.ndarray, weights: tuple[float, float, float], n_win: int
) -> tuple[float, int, int]:
    a_tp, a_fp, a_fn = weights
    det = s >= thr
    fp = det & (w < 0)
    hit = det & (w >= 0)
    total = math.fsum(a_fp * v[fp])
    best: dict[int, float] = {}
    for k, val in zip(w[hit].tolist(), v[hit].tolist()):
        best[k] = max(best.get(k, -math.inf), val)
    total += math.fsum(max(a_tp * b / SIGMA_EDGE, -a_fn) for b in best.values())
    total -= a_fn * (n_win - len(best))
    return total, len(best), int(fp.sum())


def _sweep(s: np.ndarray, w: np.ndarray, v: np.ndarray, weights: tuple[float, float, float], n_win: int) -> float:
    """Highest threshold among those maximising the raw score (``inf`` = detect nothing)."""
    a_tp, a_fp, a_fn = weights
    order = np.argsort(-s, kind="stable")
    ss, ws, vs = s[order], w[order], v[order]
    gain = np.where(ws < 0, a_fp * vs, 0.0)  # [N] raw-score change when this row becomes a detection
    for k in np.unique(ws[ws >= 0]):
        pos = np.flatnonzero(ws == k)  # in descending-score order
        run = np.maximum.accumulate(np.maximum(a_tp * vs[pos] / SIGMA_EDGE, -a_fn))
        gain[pos] = np.diff(run, prepend=-a_fn)
    cum = -a_fn * n_win + np.cumsum(gain)
    last = np.r_[ss[:-1] != ss[1:], True]  # a threshold admits every row with an equal score
    thr = np.r_[np.inf, ss[last]]
    val = np.r_[-a_fn * n_win, cum[last]]
    return float(thr[int(np.argmax(val))])


def _read_column(path: Path, column: str, conv: object) -> np.ndarray:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if column not in header:
            raise InputError(f"{path}: no {column!r} column (header: {','.join(header)})")
        k = header.index(column)
        return np.array([conv(r[k]) for r in reader], dtype=np.float64)  # type: ignore[operator]


def read_scores(results_dir: str | Path, files: list[str]) -> dict[str, np.ndarray]:
    """The ``anomaly_score`` column of every ``results_dir/<rel>`` result file."""
    root = Path(results_dir)
    out = {}
    for rel in files:
        p = root / rel
        if not p.is_file():
            raise InputError(f"no detector output for {rel} under {root}")
        out[rel] = _read_column(p, "anomaly_score", float)
    return out


def format_table(rows: Mapping[str, Mapping[str, NabResult]]) -> str:
    """One line per labelled run (e.g. swept / fixed), one column per profile."""
    profiles = list(next(iter(rows.values())))
    head = f"{'threshold':24s}" + "".join(f"{SHORT_NAMES.get(p, p):>10s}" for p in profiles)
    lines = [head]
    for label, res in rows.items():
        lines.append(f"{label:24s}" + "".join(f"{res[p].normalized:10.2f}" for p in profiles))
    for label, res in rows.items():
        for p, r in res.items():
            lines.append(
                f"  {label} {SHORT_NAMES.get(p, p)}: threshold={r.threshold:.6g} raw={r.raw:.3f} "
                f"windows={r.windows_detected}/{r.windows} fp_rows={r.fp_rows}"
            )
    return "\n".join(lines)
