"""Explorer web routes: :func:`register_routes` on the Faust worker's web server, :func:`aiohttp_app` bare.

Both add the same three routes, with the same bodies and headers: the page, ``/api/streams`` and
``/api/streams/{id}`` (see :mod:`stream.explorer.api`). The worker serves them on the port of ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .api import Explorer

_JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
    ),
}


def _json(body: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def register_routes(app: Any, registry: Mapping[str, Any], settings: Any) -> Explorer:
    """Add ``/explorer``, ``/api/streams`` and ``/api/streams/{id}`` to a Faust app's web server."""
    explorer = Explorer(registry, settings)
    html = explorer.page_html()

    @app.page("/explorer", name="seqstream.explorer")
    async def explorer_page(web: Any, request: Any) -> Any:
        return web.bytes(html.encode(), content_type="text/html", headers=dict(_PAGE_HEADERS))

    @app.page("/api/streams", name="seqstream.api.streams")
    async def api_streams(web: Any, request: Any) -> Any:
        status, body = explorer.list_streams(request.query)
        return web.bytes(_json(body), content_type="application/json", status=status, headers=dict(_JSON_HEADERS))

    @app.page("/api/streams/{stream_id:.+}", name="seqstream.api.stream")
    async def api_stream(web: Any, request: Any, stream_id: str) -> Any:
        status, body = explorer.stream_detail(request.query.get("id") or stream_id, request.query)
        return web.bytes(_json(body), content_type="application/json", status=status, headers=dict(_JSON_HEADERS))

    return explorer


def aiohttp_app(explorer: Explorer) -> Any:
    """The same routes on a bare ``aiohttp`` application (tests, embedding)."""
    from aiohttp import web

    html = explorer.page_html().encode()

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=html, content_type="text/html", headers=_PAGE_HEADERS)

    async def streams(request: web.Request) -> web.Response:
        status, body = explorer.list_streams(request.query)
        return web.Response(body=_json(body), status=status, content_type="application/json", headers=_JSON_HEADERS)

    async def stream(request: web.Request) -> web.Response:
        sid = request.query.get("id") or request.match_info["stream_id"]
        status, body = explorer.stream_detail(sid, request.query)
        return web.Response(body=_json(body), status=status, content_type="application/json", headers=_JSON_HEADERS)

    a = web.Application()
    a.router.add_get("/explorer", page)
    a.router.add_get("/api/streams", streams)
    a.router.add_get("/api/streams/{stream_id:.+}", stream)
    return a
