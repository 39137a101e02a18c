"""Offline replay of CSV files through the Runner, writing NAB-format results.

Input: ``timestamp,value[,value...]`` with an optional ``stream`` column. Rows are fed in event
order, micro-batched; a directory's files are fed as concurrent streams interleaved by
timestamp (each file keeps its own row order). Output keeps every input row, in input order:
the original fields, then ``anomaly_score``, the forecast(s) of the next value, and ``status``
(``ok`` or ``rejected:<reason>``) so no row is dropped or shifted silently.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .errors import InputError
from .runner import Runner
from .types import Batch

__all__ = ["CsvTable", "ReplayReport", "iter_csv_files", "parse_timestamp", "read_csv", "replay_path"]

REJECT_PARSE = "parse_error"
REJECT_BAD_ROW = "bad_row"
REJECT_BAD_TS = "bad_timestamp"


def parse_timestamp(s: str) -> float:
    """Epoch seconds from a number or ISO-8601 text (naive times are UTC); NaN if unparseable."""
    s = s.strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return math.nan
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass
class CsvTable:
    """A parsed CSV: raw rows for output plus arrays for the Runner."""

    path: Path
    header: list[str]
    value_cols: list[str]
    rows: list[list[str]]
    ts: np.ndarray  # [N] float64, NaN where unparseable
    x: np.ndarray  # [N, F] float32
    stream_ids: list[str]
    ok: np.ndarray  # [N] bool: parsed fine
    reason: list[str | None]

    def __len__(self) -> int:
        return len(self.rows)


def read_csv(path: Path, values: Sequence[str] | None = None, stream_prefix: str | None = None) -> CsvTable:
    """Parse one CSV; header problems raise :class:`InputError`, row problems become rejections."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        rows = list(reader)
    if header is None:
        header = ["timestamp", *(values or ["value"])]
    header = [h.strip() for h in header]
    if "timestamp" not in header:
        raise InputError(
            f"{path}: no 'timestamp' column (header: {','.join(header)}); the format is timestamp,value[,...]"
        )
    has_stream = "stream" in header
    candidates = [h for h in header if h not in ("timestamp", "stream")]
    if values:
        unknown = [v for v in values if v not in header]
        if unknown:
            raise InputError(f"{path}: value column(s) {unknown} not in header {header}")
        value_cols = list(values)
    else:
        value_cols = candidates
    if not value_cols:
        raise InputError(f"{path}: no value columns besides timestamp/stream (header: {','.join(header)})")
    ti, si = header.index("timestamp"), header.index("stream") if has_stream else -1
    vi = [header.index(v) for v in value_cols]
    n, f = len(rows), len(value_cols)
    ts = np.full(n, np.nan)
    x = np.zeros((n, f), np.float32)
    ok = np.ones(n, bool)
    reason: list[str | None] = [None] * n
    base = stream_prefix if stream_prefix is not None else path.stem
    stream_ids = [base] * n
    width = len(header)
    for i, r in enumerate(rows):
        if len(r) != width:
            ok[i], reason[i] = False, REJECT_BAD_ROW
            rows[i] = (r + [""] * width)[:width]
            continue
        if has_stream:
            stream_ids[i] = f"{base}:{r[si]}" if stream_prefix else r[si]
        t = parse_timestamp(r[ti])
        ts[i] = t
        if not math.isfinite(t):
            ok[i], reason[i] = False, REJECT_BAD_TS
            continue
        try:
            x[i] = [float(r[k]) for k in vi]
        except ValueError:
            ok[i], reason[i] = False, REJECT_PARSE
    return CsvTable(path, header, value_cols, rows, ts, x, stream_ids, ok, reason)


def iter_csv_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    yield from sorted(p for p in root.rglob("*.csv") if p.is_file())


@dataclass
class ReplayReport:
    files: int = 0
    rows: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    empty_files: list[str] = field(default_factory=list)
    alerts_opened: int = 0
    streams: int = 0

    def summary(self) -> str:
        rej = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items())) or "none"
        s = (
            f"replayed {self.files} file(s), {self.rows} rows over {self.streams} streams: "
            f"{self.accepted} scored, {sum(self.rejected.values())} rejected ({rej}); "
            f"{self.alerts_opened} alerts opened"
        )
        if self.empty_files:
            s += f"; empty files: {', '.join(self.empty_files)}"
        return s


def _order_key(ts: np.ndarray) -> np.ndarray:
    """Non-decreasing merge key that keeps a file's own row order (running max of its times)."""
    filled = np.where(np.isfinite(ts), ts, -np.inf)
    return np.maximum.accumulate(filled) if len(filled) else filled


def replay_path(
    input_path: str | Path,
    output_path: str | Path,
    *,
    runner: Runner | None = None,
    checkpoint: str | Path | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    values: Sequence[str] | None = None,
    progress: bool = False,
) -> ReplayReport:
    """Replay a CSV file, or every CSV under a directory, and write one result file per input."""
    src, dst = Path(input_path), Path(output_path)
    if not src.exists():
        raise InputError(f"{src} does not exist")
    runner = runner or Runner.from_checkpoint(checkpoint, device=device)
    f = runner.n_features
    files = list(iter_csv_files(src))
    if src.is_dir() and not files:
        raise InputError(f"no *.csv files under {src}")
    report = ReplayReport(files=len(files))
    tables: list[CsvTable] = []
    for p in files:
        rel = p.relative_to(src) if src.is_dir() else Path(p.name)
        if p.stat().st_size == 0:
            report.empty_files.append(str(rel))
        t = read_csv(p, values=values, stream_prefix=str(rel) if src.is_dir() else None)
        if len(t.value_cols) != f:
            raise InputError(
                f"{p}: {len(t.value_cols)} value column(s) {t.value_cols} but the model takes {f}; "
                f"choose columns with --values or use a matching --checkpoint"
            )
        if not src.is_dir() and not len(t):
            raise InputError(f"{p}: empty file (no data rows)")
        tables.append(t)

    # one global order: by per-file merge key, then file, then row
    keys = np.concatenate([_order_key(t.ts) for t in tables]) if tables else np.zeros(0)
    file_of = np.concatenate([np.full(len(t), i) for i, t in enumerate(tables)]) if tables else np.zeros(0, int)
    row_of = np.concatenate([np.arange(len(t)) for t in tables]) if tables else np.zeros(0, int)
    all_ts = np.concatenate([t.ts for t in tables]) if tables else np.zeros(0)
    all_x = np.concatenate([t.x for t in tables]) if tables else np.zeros((0, f), np.float32)
    all_ok = np.concatenate([t.ok for t in tables]) if tables else np.zeros(0, bool)
    all_ids = [s for t in tables for s in t.stream_ids]
    order = np.lexsort((row_of, file_of, keys))
    order = order[all_ok[order]]

    score = np.zeros(len(all_ts), np.float32)
    pred = np.full((len(all_ts), f), np.nan, np.float32)
    status: list[str | None] = [r for t in tables for r in t.reason]
    report.rows = len(all_ts)
    report.streams = len(set(all_ids[i] for i in order))

    from tqdm import tqdm

    with tqdm(total=len(order), unit="ev", disable=True if not progress else None, desc="replay") as bar:
        for a in range(0, len(order), batch_size):
            idx = order[a : a + batch_size]
            res = runner.process(Batch([all_ids[i] for i in idx], all_ts[idx], all_x[idx]))
            score[idx] = res.score
            pred[idx] = res.prediction
            for j in np.flatnonzero(~res.accepted):
                status[idx[j]] = res.reason[j]
            report.alerts_opened += int((res.transition > 0).sum())
            bar.update(len(idx))

    for s in status:
        if s is not None:
            report.rejected[s] += 1
    report.accepted = report.rows - sum(report.rejected.values())

    offset = 0
    for t in tables:
        out = dst / t.path.relative_to(src) if src.is_dir() else dst
        out.parent.mkdir(parents=True, exist_ok=True)
        pcols = ["prediction"] if f == 1 else [f"prediction_{c}" for c in t.value_cols]
        with open(out, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow([*t.header, "anomaly_score", *pcols, "status"])
            for i, row in enumerate(t.rows):
                g = offset + i
                st = status[g]
                preds = ["" if not np.isfinite(v) else f"{v:.9g}" for v in pred[g]]
                w.writerow([*row, f"{score[g]:.9g}", *preds, "ok" if st is None else f"rejected:{st}"])
        offset += len(t)
    return report
