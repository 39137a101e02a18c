"""Stream explorer: per-stream ring buffers of recent points (``store``), a JSON query API (``api``) and
its web routes and page (``routes``, ``static/explorer.html``).
"""

from ..producer import partition_of
from .api import MAX_ID_CHARS, Explorer
from .band import band
from .routes import TokenGuard, aiohttp_app, explorer_bind, register_routes
from .store import RingStore, ring_store_for

__all__ = [
    "MAX_ID_CHARS",
    "Explorer",
    "RingStore",
    "TokenGuard",
    "aiohttp_app",
    "band",
    "explorer_bind",
    "partition_of",
    "register_routes",
    "ring_store_for",
]
