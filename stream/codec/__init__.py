"""The JSON of the wire: input records decoded in bulk (:mod:`.decode`), output records encoded (:mod:`.encode`)."""

from .decode import REASONS, BadInput, Decoded, RecordLike, WireFormat, decode_batch
from .encode import encode_alert, encode_dead, encode_prediction, encode_predictions, event_id, severity

__all__ = [
    "REASONS",
    "BadInput",
    "Decoded",
    "RecordLike",
    "WireFormat",
    "decode_batch",
    "encode_alert",
    "encode_dead",
    "encode_prediction",
    "encode_predictions",
    "event_id",
    "severity",
]
