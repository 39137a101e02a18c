"""PyTorch side of seqstream: nets, per-stream state, scoring, the Runner, training and replay.

Never imports Kafka, Faust or asyncio.
"""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .errors import CapacityError, CheckpointError, ConfigError, InputError, SeqstreamError
from .nets import NetConfig, RecurrentForecaster
from .runner import Alert, Batch, Results, Runner
from .scoring import Scorer
from .scoring_config import ScoringConfig
from .state import SlabSnapshot, StateSlab

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
    "load_checkpoint",
    "save_checkpoint",
]
