"""aiokafka's log noise while a broker is down, thinned: :class:`RepeatFilter` on its loggers."""

from __future__ import annotations

import logging
import time

__all__ = ["RepeatFilter", "quiet_repeated_kafka_errors"]


class RepeatFilter(logging.Filter):
    """Let one record per message template through every ``every_s`` seconds; say how many were held back.

    aiokafka logs each failed reconnect (every ~100 ms per connection) while a broker is down;
    this keeps an outage to a few lines a minute instead of thousands.

    Example:
        >>> f = RepeatFilter(every_s=60.0)
        >>> rec = lambda: logging.LogRecord("aiokafka", logging.ERROR, "", 0, "Unable connect to %s", ("n1",), None)
        >>> [f.filter(rec()) for _ in range(3)]
        [True, False, False]
    """

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = str(record.msg)
        now = time.monotonic()
        last, held = self._seen.get(key, (-1e18, 0))
        if now - last < self.every_s:
            self._seen[key] = (last, held + 1)
            return False
        if held:
            record.msg = f"{record.msg} [{held} similar messages in the last {now - last:.0f} s held back]"
        self._seen[key] = (now, 0)
        return True


_REPEAT_FILTER = RepeatFilter()
_NOISY_LOGGERS = ("aiokafka", "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator", "aiokafka.conn")


def quiet_repeated_kafka_errors() -> None:
    """Install :class:`RepeatFilter` on aiokafka's loggers (idempotent)."""
    for name in _NOISY_LOGGERS:
        lg = logging.getLogger(name)
        if _REPEAT_FILTER not in lg.filters:
            lg.addFilter(_REPEAT_FILTER)
