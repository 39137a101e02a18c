"""The one exception root of seqstream; every error says what the operator should do."""

from __future__ import annotations

__all__ = ["CapacityError", "CheckpointError", "ConfigError", "InputError", "ModelChangeError", "SeqstreamError"]


class SeqstreamError(Exception):
    """Root of every error seqstream raises on purpose."""


class ConfigError(SeqstreamError, ValueError):
    """A setting or argument is invalid; the message names it and the accepted values."""


class CheckpointError(SeqstreamError):
    """A checkpoint file is missing, corrupt, tampered with or of an unknown format version."""


class CapacityError(SeqstreamError):
    """The state slab is full and may neither grow nor evict."""


class InputError(SeqstreamError, ValueError):
    """A whole input (file, batch) cannot be processed; per-row problems are rejections, not errors."""


class ModelChangeError(SeqstreamError):
    """Restored state was built by another model or scoring configuration and the policy is to refuse it
    (``SEQSTREAM_ON_MODEL_CHANGE=refuse``); the message names both fingerprints and the ways on."""
