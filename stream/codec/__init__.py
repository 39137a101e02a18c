"""The JSON of the wire: input records decoded in bulk (:mod:`.decode`), output records encoded (:mod:`.encode`)."""

from .decode import REASONS, Decoded, RecordLike, decode_batch
from .encode import encode_alert, encode_dead, encode_prediction, encode_predictions

__all__ = [
    "REASONS",
    "Decoded",
    "RecordLike",
    "decode_batch",
    "encode_alert",
    "encode_dead",
    "encode_prediction",
    "encode_predictions",
]
