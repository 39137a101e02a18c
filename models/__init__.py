"""PyTorch side of seqstream: nets, per-stream state, scoring, the runners and their types, training, replay.

Never imports Kafka, Faust or asyncio.
"""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .errors import CapacityError, CheckpointError, ConfigError, InputError, SeqstreamError
from .nets import NetConfig, RecurrentForecaster
from .runner import Runner
from .scoring import Scorer
from .scoring_config import ScoringConfig
from .state import SlabSnapshot, StateSlab
from .types import Alert, Batch, Results, StreamRunner

__all__ = [
    "Alert",
    "Batch",
    "CapacityError",
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "InputError",
    "NetConfig",
    "RecurrentForecaster",
    "Results",
    "Runner",
    "Scorer",
    "ScoringConfig",
    "SeqstreamError",
    "SlabSnapshot",
    "StateSlab",
    "StreamRunner",
    "load_checkpoint",
    "save_checkpoint",
]
