"""Durable per-stream state (moved here from stream/state_store.py; split into modules next)."""

from .manager import (
    STATE_TOPIC_CONFIGS,
    HeldEvent,
    ParkedRow,
    ParkedStore,
    SnapshotChunk,
    StateManager,
    concat_snapshots,
    decode_chunk,
    encode_snapshot,
    join_chunks,
    join_held,
)

__all__ = [
    "STATE_TOPIC_CONFIGS",
    "HeldEvent",
    "ParkedRow",
    "ParkedStore",
    "SnapshotChunk",
    "StateManager",
    "concat_snapshots",
    "decode_chunk",
    "encode_snapshot",
    "join_chunks",
    "join_held",
]
