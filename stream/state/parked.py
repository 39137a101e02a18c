"""Streams parked off the slab by the resident bound: :class:`ParkedStore`, host memory then SQLite."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sqlite3
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["ParkedRow", "ParkedStore"]

log = logging.getLogger(__name__)


class ParkedRow(NamedTuple):
    """One parked stream's state: its slab row, and the input partition it lives on.

    A named tuple: one is built per parked stream (a restore with a resident bound parks millions).
    """

    partition: int  # input partition of the stream (-1: unknown)
    hidden: torch.Tensor  # [L, K, H] cpu fp32 recurrent state
    aux: torch.Tensor  # [A] cpu fp32 normaliser/scorer state
    steps: int  # events the stream has run
    last_ts: float  # event time of its last event


class ParkedStore:
    """Streams parked off the slab by the resident bound: the most recently parked ``memory_rows`` in
    host memory, older ones spilled to an SQLite file (one per source and process).

    A cache, not a source of truth: the changelog snapshots hold every parked stream, and a worker
    rebuilds the store from them on assignment, so the file is written without journal or fsync
    and deleted on close (files of dead processes are removed at start). Host memory is bounded
    by ``memory_rows`` rows, SQLite's page cache (16 MiB) and one batch; the disk holds the rest
    (~``4 * (L*K*H + A) + 60`` bytes per stream).

    Example:
        >>> st = ParkedStore(None, "doc", memory_rows=1, shape=(1, 1, 2), aux_dim=1)
        >>> row = ParkedRow(0, torch.ones(1, 1, 2), torch.zeros(1), 3, 9.0)
        >>> st.put_many([("a", row), ("b", ParkedRow(1, torch.zeros(1, 1, 2), torch.ones(1), 1, 5.0))])
        >>> (len(st), st.n_memory, st.n_disk, "a" in st, st.get("a").steps)
        (2, 1, 1, True, 3)
        >>> st.close()
    """

    def __init__(
        self, directory: Path | None, name: str, *, memory_rows: int, shape: tuple[int, ...], aux_dim: int
    ) -> None:
        self.memory_rows = memory_rows
        self.shape = tuple(shape)
        self.aux_dim = aux_dim
        self.mem: OrderedDict[str, ParkedRow] = OrderedDict()
        self._dir = Path(directory) if directory is not None else Path(tempfile.gettempdir()) / "seqstream-parked"
        self._name = name
        self._db: sqlite3.Connection | None = None
        self.path: Path | None = None
        self.n_disk = 0
        self.spilled = 0  # rows written to disk so far

    # -- sqlite ------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._dir.mkdir(parents=True, exist_ok=True)
            for old in self._dir.glob(f"{self._name}-*.sqlite"):  # left by dead processes
                try:
                    pid = int(old.stem.rsplit("-", 1)[1])
                    os.kill(pid, 0)
                except (ValueError, ProcessLookupError):
                    with contextlib.suppress(OSError):
                        old.unlink()
                except PermissionError:
                    pass
            self.path = self._dir / f"{self._name}-{os.getpid()}.sqlite"
            with contextlib.suppress(OSError):
                self.path.unlink()
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA cache_size=-16000")
            db.execute(
                "CREATE TABLE parked (stream TEXT PRIMARY KEY, part INTEGER, steps INTEGER, last_ts REAL, state BLOB)"
                " WITHOUT ROWID"
            )
            db.execute("CREATE INDEX parked_part ON parked(part)")
            self._db = db
            atexit.register(self.close)
            log.info("parked state of %s spills to %s", self._name, self.path)
        return self._db

    def _encode(self, sid: str, row: ParkedRow) -> tuple[str, int, int, float, bytes]:
        blob = row.hidden.to(torch.float32).contiguous().numpy().tobytes() + row.aux.to(torch.float32).numpy().tobytes()
        return sid, row.partition, row.steps, row.last_ts, blob

    def _decode(self, part: int, steps: int, last: float, blob: bytes) -> ParkedRow:
        a = np.frombuffer(blob, np.float32)
        nh = int(np.prod(self.shape))
        hidden = torch.from_numpy(a[:nh].copy()).reshape(self.shape)  # [L, K, H]
        aux = torch.from_numpy(a[nh:].copy())  # [A]
        return ParkedRow(part, hidden, aux, int(steps), float(last))

    def _disk_delete(self, ids: Sequence[str]) -> None:
        if not self.n_disk or not ids:
            return
        db = self._conn()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            cur = db.execute(f"DELETE FROM parked WHERE stream IN ({','.join('?' * len(chunk))})", chunk)
            self.n_disk -= cur.rowcount

    def _disk_take(self, ids: Sequence[str]) -> dict[str, ParkedRow]:
        out: dict[str, ParkedRow] = {}
        if not self.n_disk or not ids:
            return out
        db = self._conn()
        for i in range(0, len(ids), 500):
            chunk = list(ids[i : i + 500])
            q = ",".join("?" * len(chunk))
            for sid, part, steps, last, blob in db.execute(
                f"SELECT stream, part, steps, last_ts, state FROM parked WHERE stream IN ({q})", chunk
            ):
                out[sid] = self._decode(part, steps, last, blob)
        return out

    # -- mapping-like API (what the pipeline and the explorer use) ---------------------------
    def __len__(self) -> int:
        return len(self.mem) + self.n_disk

    def __contains__(self, sid: object) -> bool:
        if sid in self.mem:
            return True
        if not self.n_disk or not isinstance(sid, str):
            return False
        return self._conn().execute("SELECT 1 FROM parked WHERE stream = ?", (sid,)).fetchone() is not None

    def __iter__(self) -> Iterator[str]:
        yield from list(self.mem)
        if self.n_disk:
            for (sid,) in self._conn().execute("SELECT stream FROM parked"):
                yield sid

    def get(self, sid: str, default: ParkedRow | None = None) -> ParkedRow | None:
        row = self.mem.get(sid)
        if row is not None:
            return row
        return self._disk_take([sid]).get(sid, default)

    def __setitem__(self, sid: str, row: ParkedRow) -> None:
        self.put_many([(sid, row)])

    def pop(self, sid: str, default: ParkedRow | None = None) -> ParkedRow | None:
        return self.take_many([sid]).get(sid, default)

    # -- bulk --------------------------------------------------------------------------------
    def put_many(self, items: Sequence[tuple[str, ParkedRow]]) -> None:
        """Park rows (replacing older copies); the oldest beyond ``memory_rows`` spill to disk.

        A plain 5-tuple in :class:`ParkedRow`'s field order is taken as one.
        """
        if not items:
            return
        self._disk_delete([sid for sid, _ in items])
        mem = self.mem
        for sid, row in items:
            mem[sid] = row if type(row) is ParkedRow else ParkedRow._make(row)
            mem.move_to_end(sid)
        excess = len(mem) - self.memory_rows
        if excess > 0:
            rows = [self._encode(*mem.popitem(last=False)) for _ in range(excess)]
            db = self._conn()
            db.executemany("INSERT OR REPLACE INTO parked VALUES (?, ?, ?, ?, ?)", rows)
            self.n_disk += len(rows)
            self.spilled += len(rows)

    def take_many(self, ids: Sequence[str]) -> dict[str, ParkedRow]:
        """Remove and return the parked rows of ``ids`` (missing ids are left out)."""
        out: dict[str, ParkedRow] = {}
        rest = []
        for sid in ids:
            row = self.mem.pop(sid, None)
            if row is None:
                rest.append(sid)
            else:
                out[sid] = row
        if rest and self.n_disk:
            got = self._disk_take(rest)
            self._disk_delete(list(got))
            out.update(got)
        return out

    def ids_of(self, partition: int) -> list[str]:
        ids = [sid for sid, row in self.mem.items() if row.partition == partition]
        if self.n_disk:
            ids += [sid for (sid,) in self._conn().execute("SELECT stream FROM parked WHERE part = ?", (partition,))]
        return ids

    def rows_of(self, partition: int) -> Iterator[tuple[str, ParkedRow]]:
        """Every parked row of one input partition (memory first, then disk, streamed)."""
        yield from [(sid, row) for sid, row in self.mem.items() if row.partition == partition]
        if self.n_disk:
            cur = self._conn().execute(
                "SELECT stream, part, steps, last_ts, state FROM parked WHERE part = ?", (partition,)
            )
            for sid, part, steps, last, blob in cur:
                yield sid, self._decode(part, steps, last, blob)

    def drop_partition(self, partition: int) -> int:
        gone = [sid for sid, row in self.mem.items() if row.partition == partition]
        for sid in gone:
            del self.mem[sid]
        n = len(gone)
        if self.n_disk:
            cur = self._conn().execute("DELETE FROM parked WHERE part = ?", (partition,))
            self.n_disk -= cur.rowcount
            n += cur.rowcount
        return n

    @property
    def n_memory(self) -> int:
        return len(self.mem)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
            if self.path is not None:
                with contextlib.suppress(OSError):
                    self.path.unlink()
        self.mem.clear()
        self.n_disk = 0
