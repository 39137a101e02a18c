"""Explorer web routes: :func:`register_routes` on a Faust worker, :func:`aiohttp_app` on a bare aiohttp app.

Both serve the same three routes, with the same bodies and headers: the page, ``/api/streams`` and
``/api/streams/{id}`` (see :mod:`stream.explorer.api`). Where and for whom (``SEQSTREAM_EXPLORER*``):

* ``SEQSTREAM_EXPLORER=off``: none of the routes (404) and no ring buffers at all;
* ``SEQSTREAM_EXPLORER_HOST``/``_PORT`` naming another address than the web server's: a small aiohttp
  site of its own serves the explorer there, and the web port (``/metrics``) does not;
* ``SEQSTREAM_EXPLORER_TOKEN``: every route answers 401 unless the request carries
  ``Authorization: Bearer <token>`` or the cookie that ``/explorer?token=<token>`` sets once (a browser:
  the page redirects to itself without the token in the address and its API calls send the cookie).

``/metrics``, ``/health`` and ``/ready`` are not explorer routes: they stay open on the web port.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any

from .api import Explorer

__all__ = ["COOKIE", "TokenGuard", "aiohttp_app", "explorer_bind", "register_routes"]

log = logging.getLogger(__name__)

COOKIE = "seqstream_explorer"
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


Reply = tuple[int, bytes, str, dict[str, str]]  # status, body, content type, headers


class TokenGuard:
    """``SEQSTREAM_EXPLORER_TOKEN``: who may see the explorer (everyone when there is no token).

    The cookie holds an HMAC of the token, not the token; every comparison is constant-time.

    Example:
        >>> g = TokenGuard("s3cret")
        >>> g.allowed({"Authorization": "Bearer s3cret"}, {}), g.allowed({"Authorization": "Bearer nope"}, {})
        (True, False)
        >>> g.allowed({}, {COOKIE: g.cookie}), TokenGuard(None).allowed({}, {})
        (True, True)
    """

    def __init__(self, token: str | None) -> None:
        self.token = token or None
        self.cookie = (
            hmac.new(self.token.encode(), b"seqstream explorer session", hashlib.sha256).hexdigest()
            if self.token
            else ""
        )

    def _is_token(self, given: str | None) -> bool:
        return self.token is not None and given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def allowed(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        if self.token is None:
            return True
        scheme, _, given = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and self._is_token(given.strip()):
            return True
        c = cookies.get(COOKIE)
        return c is not None and hmac.compare_digest(c.encode(), self.cookie.encode())

    def login(self, query: Mapping[str, str], path: str) -> Reply | None:
        """``/explorer?token=<token>``: a redirect to the page without the token, setting the cookie."""
        if not self._is_token(query.get("token")):
            return None
        cookie = f"{COOKIE}={self.cookie}; HttpOnly; SameSite=Strict; Path=/"
        return 303, b"", "text/plain", {"Location": path, "Set-Cookie": cookie, "Cache-Control": "no-store"}

    @staticmethod
    def denied() -> Reply:
        body = {
            "error": "unauthorized",
            "message": "the explorer needs `Authorization: Bearer <token>` (SEQSTREAM_EXPLORER_TOKEN); "
            "in a browser, open /explorer?token=<token> once",
        }
        headers = {**_JSON_HEADERS, "WWW-Authenticate": 'Bearer realm="seqstream explorer"'}
        return 401, _json(body), "application/json", headers


class _Routes:
    """The three handlers as plain functions of (path, query, headers, cookies), behind the guard."""

    def __init__(self, explorer: Explorer, guard: TokenGuard) -> None:
        self.explorer = explorer
        self.guard = guard
        self.html = explorer.page_html().encode()

    def page(
        self, path: str, query: Mapping[str, str], headers: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Reply:
        if not self.guard.allowed(headers, cookies):
            return self.guard.login(query, path) or self.guard.denied()
        return 200, self.html, "text/html", dict(_PAGE_HEADERS)

    def streams(self, query: Mapping[str, str], headers: Mapping[str, str], cookies: Mapping[str, str]) -> Reply:
        if not self.guard.allowed(headers, cookies):
            return self.guard.denied()
        status, body = self.explorer.list_streams(query)
        return status, _json(body), "application/json", dict(_JSON_HEADERS)

    def stream(
        self, sid: str, query: Mapping[str, str], headers: Mapping[str, str], cookies: Mapping[str, str]
    ) -> Reply:
        if not self.guard.allowed(headers, cookies):
            return self.guard.denied()
        status, body = self.explorer.stream_detail(query.get("id") or sid, query)
        return status, _json(body), "application/json", dict(_JSON_HEADERS)


def explorer_bind(settings: Any) -> tuple[str, int] | None:
    """The explorer's own ``(host, port)``, or None when it shares the web server's."""
    web = (str(settings.web_host), int(settings.web_port))
    host = getattr(settings, "explorer_host", None) or web[0]
    port = getattr(settings, "explorer_port", None)
    bind = (str(host), web[1] if port is None else int(port))
    return None if bind == web else bind


def _token(settings: Any) -> str | None:
    t = getattr(settings, "explorer_token", None)
    if t is None:
        return None
    return str(t.get_secret_value() if hasattr(t, "get_secret_value") else t) or None


def register_routes(app: Any, registry: Mapping[str, Any], settings: Any) -> Explorer | None:
    """Serve the explorer of a Faust app as ``SEQSTREAM_EXPLORER*`` say; None when it is off."""
    if not getattr(settings, "explorer", True):
        return None
    explorer = Explorer(registry, settings)
    guard = TokenGuard(_token(settings))
    bind = explorer_bind(settings)
    if bind is not None:
        _register_site(app, explorer, guard, bind)
        return explorer
    routes = _Routes(explorer, guard)

    def reply(web: Any, r: Reply) -> Any:
        status, body, ctype, headers = r
        return web.bytes(body, content_type=ctype, status=status, headers=headers)

    @app.page("/explorer", name="seqstream.explorer")
    async def explorer_page(web: Any, request: Any) -> Any:
        return reply(web, routes.page(request.path, request.query, request.headers, request.cookies))

    @app.page("/api/streams", name="seqstream.api.streams")
    async def api_streams(web: Any, request: Any) -> Any:
        return reply(web, routes.streams(request.query, request.headers, request.cookies))

    @app.page("/api/streams/{stream_id:.+}", name="seqstream.api.stream")
    async def api_stream(web: Any, request: Any, stream_id: str) -> Any:
        return reply(web, routes.stream(stream_id, request.query, request.headers, request.cookies))

    return explorer


def _register_site(app: Any, explorer: Explorer, guard: TokenGuard, bind: tuple[str, int]) -> None:
    """The explorer on its own address: an aiohttp site started and stopped with the worker."""
    from mode import Service

    class ExplorerSite(Service):
        """The explorer's own web server (``SEQSTREAM_EXPLORER_HOST``/``_PORT``)."""

        runner: Any = None

        async def on_start(self) -> None:
            from aiohttp import web

            self.runner = web.AppRunner(aiohttp_app(explorer, guard), access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, bind[0], bind[1])
            await site.start()
            log.info("stream explorer on http://%s:%d/explorer", bind[0], bind[1])

        async def on_stop(self) -> None:
            if self.runner is not None:
                await self.runner.cleanup()

    app.service(ExplorerSite)


def aiohttp_app(explorer: Explorer, guard: TokenGuard | None = None) -> Any:
    """The same routes on a bare ``aiohttp`` application (the explorer's own site, tests, embedding)."""
    from aiohttp import web

    routes = _Routes(explorer, guard or TokenGuard(None))

    def reply(r: Reply) -> web.Response:
        status, body, ctype, headers = r
        return web.Response(body=body, status=status, content_type=ctype, headers=headers)

    async def page(request: web.Request) -> web.Response:
        return reply(routes.page(request.path, request.query, request.headers, request.cookies))

    async def streams(request: web.Request) -> web.Response:
        return reply(routes.streams(request.query, request.headers, request.cookies))

    async def stream(request: web.Request) -> web.Response:
        return reply(routes.stream(request.match_info["stream_id"], request.query, request.headers, request.cookies))

    a = web.Application()
    a.router.add_get("/explorer", page)
    a.router.add_get("/api/streams", streams)
    a.router.add_get("/api/streams/{stream_id:.+}", stream)
    return a
