"""Checkpoint files: model weights, model config, scoring config, metadata and a format version.

Files are written with ``torch.save`` and read with ``torch.load(weights_only=True)``, which
unpickles only tensors and plain containers, so loading a checkpoint never executes code. A
SHA-256 digest over the weights and configs detects a file that was edited after saving.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .nets import NetConfig, RecurrentForecaster
from .scoring_config import ScoringConfig

__all__ = ["DEFAULT_CHECKPOINT", "FORMAT_VERSION", "Checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "sensor_gru.pt"


@dataclass
class Checkpoint:
    model: RecurrentForecaster
    scoring: ScoringConfig
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def model_id(self) -> str:
        return str(self.meta.get("model_id") or (self.path.stem if self.path else "unnamed"))


def _digest(state: dict[str, torch.Tensor], header: str) -> str:
    h = hashlib.sha256(header.encode())
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(
    path: str | Path, model: RecurrentForecaster, scoring: ScoringConfig, meta: dict[str, Any] | None = None
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    header = json.dumps(
        {
            "format_version": FORMAT_VERSION,
            "model_config": model.config.to_dict(),
            "scoring_config": scoring.to_dict(),
            "meta": meta or {},
        },
        sort_keys=True,
    )
    torch.save({"header": header, "state_dict": state, "sha256": _digest(state, header)}, path)
    return path


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Rebuild the model and scoring config; the default is the bundled sensor checkpoint."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; pass an existing file or train one with `seqstream train`")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        header_s, state, digest = blob["header"], blob["state_dict"], blob["sha256"]
        header = json.loads(header_s)
    except Exception as exc:  # any unpickling/format problem is the same for the operator
        raise CheckpointError(f"checkpoint {path} is not a seqstream checkpoint or is corrupt ({exc})") from exc
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {header.get('format_version')}, this seqstream reads "
            f"{FORMAT_VERSION}; retrain or convert it"
        )
    if _digest(state, header_s) != digest:
        raise CheckpointError(f"checkpoint {path} failed its integrity check (modified after saving); refusing to load")
    try:
        model = RecurrentForecaster(NetConfig(**header["model_config"]))
        model.load_state_dict(state)
        scoring = ScoringConfig(**header["scoring_config"])
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} does not match this seqstream's model code ({exc})") from exc
    return Checkpoint(model.eval(), scoring, dict(header.get("meta", {})), path)
