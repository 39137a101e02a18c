"""The changelog's binary format: one partition snapshot as Kafka records, and back.

Changelog record (one Kafka record per chunk; a snapshot's chunks travel in normal multi-record
batches on Kafka, one record per batch with the Tansu profile, whose broker's ListOffsets returns
a wrong end offset after multi-record batches)::

    key   = b"<source>:<topic>:<partition>#<slot>.<chunk>"  (slot alternates 0/1 so that, under
            log compaction, the previous complete snapshot survives a crash while writing the next)
    value = header (struct _HEAD) + key [+ version 3: u8 length + fingerprint (ASCII)]
            + stream ids (u16 length + UTF-8 each) + steps int64[n] + last_ts float64[n]
            + hidden [n, L, K, H] fp32|fp16 + aux [n, A] fp32
            [+ version 2, or version 3 with flag bit 0: the events held by the reorder buffer, see _encode_held]

Versions: 1 (slab rows), 2 (held events, n = 0 slab rows) and 3 (either, with the fingerprint of the
runner that built the state, :mod:`models.fingerprint`; the header's flags byte says whether held
events follow). Workers write version 3: every chunk names the model and scoring configuration
that produced the snapshot, so a restore under another model follows ``SEQSTREAM_ON_MODEL_CHANGE``
(:mod:`stream.state.manager`). Versions 1 and 2 are still read: they are snapshots of workers from
before fingerprints, decoded with ``fingerprint=None`` (the manager takes them as the current
model's, see docs/operations.md "Model upgrades"); workers from before version 3 skip version 3
records with a warning (a rollback to them replays retained input instead of restoring).

A snapshot's held events go into chunks of their own after the slab chunks (n = 0 slab rows), so
a crash never loses an event that was accepted but not yet run: the snapshot offset covers it and
the restored buffer releases it later.

The header carries a CRC32 of the body; a damaged or foreign record is skipped with a warning
(:func:`decode_chunk` raises ``ValueError``). What a snapshot offset means and when snapshots are
written and restored: :mod:`stream.state.manager`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from models.state import SlabSnapshot

from .reorder import HeldEvent

__all__ = [
    "STATE_TOPIC_CONFIGS",
    "SnapshotChunk",
    "concat_snapshots",
    "decode_chunk",
    "encode_snapshot",
    "join_chunks",
    "join_fingerprint",
    "join_held",
]

# The changelog topic as the worker creates it. Compaction never touches a log's active segment, so
# with Kafka's default segments (1 GiB or 7 days) a restore would read every snapshot written since
# the topic's first segment rolled; segments of at most 64 MiB or 10 minutes let the cleaner keep
# a restore near the two live snapshots per partition (plus one segment).
STATE_TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": str(64 << 20), "segment.ms": str(600_000)}

_MAGIC = b"SQS1"
# magic, version, dtype(0 fp32, 1 fp16), slot, flags (version 3; 0 before), snap_id, offset, chunk, nchunks, n, L, K,
# H, A, keylen, crc
_HEAD = struct.Struct("<4sBBBBqqIIIHHIIHI")
_VERSION = 1
_VERSION_HELD = 2  # a chunk that also carries held events
_VERSION_FP = 3  # a chunk with the fingerprint of the runner that built the state
_FLAG_HELD = 1  # version 3: held events follow the slab rows
_READS = (_VERSION, _VERSION_HELD, _VERSION_FP)

_HELD_FIX = struct.Struct("<dqqqiiH")  # ts, partition, offset, timestamp, key len, value len, F


def _encode_held(events: list[HeldEvent]) -> bytes:
    """u32 count, then per event: u16 stream length + stream, u16 topic length + topic, _HELD_FIX, key,
    value (length -1: None), x float32[F]."""
    parts = [struct.pack("<I", len(events))]
    for e in events:
        sid, top = e.stream.encode(), e.topic.encode()
        x = np.ascontiguousarray(e.x, np.float32).reshape(-1)
        parts.append(struct.pack("<H", len(sid)) + sid + struct.pack("<H", len(top)) + top)
        parts.append(
            _HELD_FIX.pack(
                e.ts,
                e.partition,
                e.offset,
                e.timestamp,
                -1 if e.key is None else len(e.key),
                -1 if e.value is None else len(e.value),
                len(x),
            )
        )
        parts.append((e.key or b"") + (e.value or b"") + x.tobytes())
    return b"".join(parts)


def _decode_held(body: memoryview, pos: int) -> tuple[tuple[HeldEvent, ...], int]:
    (n,) = struct.unpack_from("<I", body, pos)
    pos += 4
    out = []
    for _ in range(n):
        (ln,) = struct.unpack_from("<H", body, pos)
        sid = bytes(body[pos + 2 : pos + 2 + ln]).decode()
        pos += 2 + ln
        (ln,) = struct.unpack_from("<H", body, pos)
        top = bytes(body[pos + 2 : pos + 2 + ln]).decode()
        pos += 2 + ln
        ts, part, off, stamp, kl, vl, f = _HELD_FIX.unpack_from(body, pos)
        pos += _HELD_FIX.size
        key = None if kl < 0 else bytes(body[pos : pos + kl])
        pos += max(kl, 0)
        value = None if vl < 0 else bytes(body[pos : pos + vl])
        pos += max(vl, 0)
        x = np.frombuffer(body, np.float32, f, pos).copy()
        pos += 4 * f
        out.append(HeldEvent(sid, ts, top, part, off, stamp, key, value, x))
    return tuple(out), pos


@dataclass(frozen=True)
class SnapshotChunk:
    """One decoded changelog record: a slice of one partition snapshot."""

    key: str  # source:topic:partition
    snap_id: int
    offset: int
    slot: int
    chunk: int
    nchunks: int
    snap: SlabSnapshot
    held: tuple[HeldEvent, ...] = ()
    fingerprint: str | None = None  # of the runner that built the state (None: written before fingerprints)


def _empty_snapshot(shape: tuple[int, int, int], a: int) -> SlabSnapshot:
    return SlabSnapshot((), torch.zeros((0, *shape)), torch.zeros((0, a)), np.zeros(0, np.int64), np.zeros(0))


def concat_snapshots(parts: list[SlabSnapshot]) -> SlabSnapshot:
    """One snapshot holding the streams of all ``parts`` (same layout)."""
    if len(parts) == 1:
        return parts[0]
    return SlabSnapshot(
        stream_ids=tuple(s for p in parts for s in p.stream_ids),
        hidden=torch.cat([p.hidden for p in parts]),  # [N, L, K, H]
        aux=torch.cat([p.aux for p in parts]),  # [N, A]
        steps=np.concatenate([p.steps for p in parts]),
        last_ts=np.concatenate([p.last_ts for p in parts]),
    )


def encode_snapshot(
    key: str,
    snap: SlabSnapshot,
    *,
    offset: int,
    snap_id: int,
    slot: int,
    fp16: bool = False,
    chunk_bytes: int = 512 * 1024,
    held: list[HeldEvent] | tuple[HeldEvent, ...] = (),
    fingerprint: str | None = None,
) -> list[tuple[bytes, bytes]]:
    """A partition snapshot as changelog records ``[(record key, value)]`` of at most ~``chunk_bytes``.

    ``held``: events of the partition waiting in the reorder buffer; they go into extra chunks
    after the slab chunks. ``fingerprint``: of the runner that built the state (format version 3);
    None writes versions 1 and 2 (as workers before fingerprints did).

    Example:
        >>> s = SlabSnapshot(("a",), torch.ones(1, 1, 1, 2), torch.zeros(1, 3), np.array([4]), np.array([9.0]))
        >>> recs = encode_snapshot("sensors:t:0", s, offset=41, snap_id=1, slot=0)
        >>> c = decode_chunk(recs[0][1]); (recs[0][0], c.offset, c.snap.stream_ids, c.snap.steps.tolist())
        (b'sensors:t:0#0.0', 41, ('a',), [4])
    """
    n = len(snap)
    _, lyr, k, h = snap.hidden.shape if snap.hidden.ndim == 4 else (0, 1, 1, 1)
    a = snap.aux.shape[1] if snap.aux.ndim == 2 else 0
    hid = snap.hidden.to(torch.float16 if fp16 else torch.float32).contiguous().numpy()  # [N, L, K, H]
    aux = snap.aux.to(torch.float32).contiguous().numpy()  # [N, A]
    row = hid[0].nbytes + aux[0].nbytes + 16 + 24 if n else 1
    per = max(1, chunk_bytes // row)
    n_slab = max(1, -(-n // per))
    # held events: greedy chunks of at most ~chunk_bytes each
    held_parts: list[list[HeldEvent]] = []
    size = chunk_bytes
    for e in held:
        sz = 40 + len(e.stream) * 4 + len(e.topic) + len(e.key or b"") + len(e.value or b"") + 4 * e.x.size
        if size + sz > chunk_bytes or not held_parts:
            held_parts.append([])
            size = 0
        held_parts[-1].append(e)
        size += sz
    nchunks = n_slab + len(held_parts)
    kb = key.encode()
    if fingerprint is None:
        fpb, v_slab, v_held, f_held = b"", _VERSION, _VERSION_HELD, 0
    else:
        fp = fingerprint.encode("ascii")
        if len(fp) > 255:
            raise ValueError(f"fingerprint of {len(fp)} bytes; at most 255")
        fpb, v_slab, v_held, f_held = bytes([len(fp)]) + fp, _VERSION_FP, _VERSION_FP, _FLAG_HELD
    out = []
    for c in range(nchunks):
        if c >= n_slab:  # a chunk of held events (no slab rows)
            body = kb + fpb + _encode_held(held_parts[c - n_slab])
            head = _HEAD.pack(
                _MAGIC, v_held, int(fp16), slot, f_held, snap_id, offset, c, nchunks, 0, lyr, k, h, a, len(kb),
                zlib.crc32(body),
            )  # fmt: skip
            out.append((f"{key}#{slot}.{c}".encode(), head + body))
            continue
        lo, hi = c * per, min(n, (c + 1) * per)
        ids = b"".join(struct.pack("<H", len(e)) + e for e in (s.encode() for s in snap.stream_ids[lo:hi]))
        body = b"".join(
            [
                kb,
                fpb,
                ids,
                np.ascontiguousarray(snap.steps[lo:hi], np.int64).tobytes(),
                np.ascontiguousarray(snap.last_ts[lo:hi], np.float64).tobytes(),
                hid[lo:hi].tobytes(),
                aux[lo:hi].tobytes(),
            ]
        )
        head = _HEAD.pack(
            _MAGIC, v_slab, int(fp16), slot, 0, snap_id, offset, c, nchunks, hi - lo, lyr, k, h, a, len(kb),
            zlib.crc32(body),
        )  # fmt: skip
        out.append((f"{key}#{slot}.{c}".encode(), head + body))
    return out


def decode_chunk(value: bytes) -> SnapshotChunk:
    """Parse one changelog record; raises ``ValueError`` for anything that is not an intact chunk."""
    if len(value) < _HEAD.size or value[:4] != _MAGIC:
        raise ValueError("not a seqstream state record")
    _magic, ver, fp16, slot, flags, snap_id, offset, c, nchunks, n, lyr, k, h, a, klen, crc = _HEAD.unpack_from(value)
    if ver not in _READS:
        raise ValueError(f"state record version {ver}; this worker reads versions {', '.join(map(str, _READS))}")
    body = memoryview(value)[_HEAD.size :]
    if zlib.crc32(body) != crc:
        raise ValueError("state record checksum mismatch (damaged or tampered)")
    pos = klen
    key = bytes(body[:klen]).decode()
    fingerprint = None
    if ver == _VERSION_FP:
        if pos >= len(body):
            raise ValueError("state record has a wrong length")
        fl = body[pos]
        fingerprint = bytes(body[pos + 1 : pos + 1 + fl]).decode("ascii")
        pos += 1 + fl
    ids = []
    for _ in range(n):
        (ln,) = struct.unpack_from("<H", body, pos)
        ids.append(bytes(body[pos + 2 : pos + 2 + ln]).decode())
        pos += 2 + ln
    steps = np.frombuffer(body, np.int64, n, pos)
    pos += 8 * n
    last_ts = np.frombuffer(body, np.float64, n, pos)
    pos += 8 * n
    hdt = np.float16 if fp16 else np.float32
    nh = n * lyr * k * h
    hid = np.frombuffer(body, hdt, nh, pos).reshape(n, lyr, k, h)
    pos += nh * np.dtype(hdt).itemsize
    aux = np.frombuffer(body, np.float32, n * a, pos).reshape(n, a)
    pos += aux.nbytes
    held: tuple[HeldEvent, ...] = ()
    if ver == _VERSION_HELD or (ver == _VERSION_FP and flags & _FLAG_HELD):
        try:
            held, pos = _decode_held(body, pos)
        except (struct.error, ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"state record has damaged held events ({exc})") from None
    if pos != len(body):
        raise ValueError("state record has a wrong length")
    snap = SlabSnapshot(
        tuple(ids),
        torch.from_numpy(hid.astype(np.float32)),  # [n, L, K, H]
        torch.from_numpy(aux.copy()),  # [n, A]
        steps.copy(),
        last_ts.copy(),
    )
    return SnapshotChunk(key, snap_id, offset, slot, c, nchunks, snap, held, fingerprint)


def join_chunks(chunks: Iterable[SnapshotChunk]) -> SlabSnapshot:
    parts = [c.snap for c in sorted(chunks, key=lambda c: c.chunk) if len(c.snap) or c.chunk == 0]
    return concat_snapshots(parts) if parts else _empty_snapshot((1, 1, 1), 0)


def join_held(chunks: Iterable[SnapshotChunk]) -> list[HeldEvent]:
    """The held events of one complete snapshot, in chunk order."""
    return [e for c in sorted(chunks, key=lambda c: c.chunk) for e in c.held]


def join_fingerprint(chunks: Iterable[SnapshotChunk]) -> str | None:
    """The fingerprint of one complete snapshot (None: written before fingerprints)."""
    return min(chunks, key=lambda c: c.chunk).fingerprint  # one encode_snapshot call wrote them all
