"""Durable per-stream state: partition snapshots on a changelog topic, parked streams, the reorder buffer.

Modules: ``changelog`` (the snapshot record format), ``manager`` (:class:`StateManager`: writes
and restores the snapshots), ``restore`` (the changelog topic on the broker), ``parked`` (the
parked-stream store), ``parking`` (one source's streams by input partition), ``reorder`` (the
reorder buffer). None of them imports :mod:`stream.pipeline` or :mod:`stream.engine`: the
manager takes the pipelines as :class:`~stream.state.manager.StatefulPipeline`.
"""

from .changelog import STATE_TOPIC_CONFIGS, decode_chunk, encode_snapshot, join_chunks, join_fingerprint, join_held
from .manager import PartitionProgress, StateManager
from .parked import ParkedRow, ParkedStore
from .parking import PartitionState
from .reorder import HeldEvent, ReorderBuffer

__all__ = [
    "STATE_TOPIC_CONFIGS",
    "HeldEvent",
    "ParkedRow",
    "ParkedStore",
    "PartitionProgress",
    "PartitionState",
    "ReorderBuffer",
    "StateManager",
    "decode_chunk",
    "encode_snapshot",
    "join_chunks",
    "join_fingerprint",
    "join_held",
]
