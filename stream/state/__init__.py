"""Durable per-stream state (moved here from stream/state_store.py; split into modules next)."""

from .changelog import (
    STATE_TOPIC_CONFIGS,
    SnapshotChunk,
    concat_snapshots,
    decode_chunk,
    encode_snapshot,
    join_chunks,
    join_held,
)
from .manager import StateManager
from .parked import ParkedRow, ParkedStore
from .reorder import HeldEvent

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
