"""Durable per-stream state: snapshots on a changelog topic, parked streams, the reorder buffer.

``changelog``: the snapshot record format; ``manager``: :class:`StateManager`, which writes and
restores the snapshots; ``parked``: the parked-stream store; ``parking``: one source's streams by
input partition; ``reorder``: the reorder buffer.
"""

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
from .parking import PartitionState
from .reorder import HeldEvent, ReorderBuffer

__all__ = [
    "STATE_TOPIC_CONFIGS",
    "HeldEvent",
    "ParkedRow",
    "ParkedStore",
    "PartitionState",
    "ReorderBuffer",
    "SnapshotChunk",
    "StateManager",
    "concat_snapshots",
    "decode_chunk",
    "encode_snapshot",
    "join_chunks",
    "join_held",
]
