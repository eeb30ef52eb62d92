"""The authorization server's routes called straight from `AuthgateApp` (issue 18).

Starlette's application wraps each request in five layers (its error middleware, its
exception middleware, the router's scan of every route, the route's own exception wrapper,
and for the public endpoints the CORS middleware), each a coroutine with a `send` wrapper of
its own: ~60 µs of a request's CPU for the ~5 requests of an OAuth flow. `RouteTable` answers
the common case in one call with the same outcome:

    a fixed path (no path parameter), a method the route allows, no root_path,
    no Origin on a CORS path                      ──> the route's endpoint, here
    anything else (404, 405, a slash redirect, /register/{client_id}, a preflight,
    a browser's cross-origin call, lifespan)      ──> the Starlette app, as before

What the layers would have done is done here too: the same scope keys (`app`, `router`,
`route`, `endpoint`, `path_params`: a form parser's limit becomes an HTTPException because
`app` is set), an `HTTPException` answered as Starlette's handler answers it, any other
exception answered with Starlette's plain 500 and raised on to the server, and on a CORS path
`Vary: Origin` added as `CORSMiddleware` adds it to a request without an Origin.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RouteTable"]


class RouteTable:
    """`app`: the Starlette app of the routes; `public`: the same behind `CORSMiddleware`, for
    the paths in `cors_paths` (the endpoints any origin may call)."""

    def __init__(self, app: Starlette, public: ASGIApp, cors_paths: set[str]) -> None:
        self.app = app
        self.public = public
        self._cors = cors_paths
        self._routes: dict[str, tuple[Route, frozenset[str]]] = {}
        taken: set[str] = set()
        for index, route in enumerate(app.routes):
            if not isinstance(route, Route) or route.param_convertors or route.methods is None:
                continue
            path = route.path
            # Starlette takes the first route that matches: where one listed earlier (a pattern,
            # the same path again) matches too, the path stays with Starlette
            if path in taken or any(r.matches({**_PROBE, "path": path})[0].value for r in app.routes[:index]):
                self._routes.pop(path, None)
            else:
                self._routes[path] = (route, frozenset(route.methods))
            taken.add(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.find(scope)
            if route is not None:
                await self.call(route, scope, receive, send)
            elif scope["path"] in self._cors:
                await self.public(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        else:  # lifespan (websockets: Starlette refuses them)
            await self.app(scope, receive, send)

    def find(self, scope: Scope) -> Route | None:
        """The route to call here, or None for the Starlette app."""
        path = scope["path"]
        found = self._routes.get(path)
        if found is None or scope["method"] not in found[1] or scope.get("root_path"):
            return None
        if path in self._cors and any(key == b"origin" for key, _ in scope["headers"]):
            return None  # a browser's cross-origin call: CORSMiddleware answers it
        return found[0]

    async def call(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        scope["router"] = self.app.router
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = dict(scope.get("path_params", {}))
        if scope["path"] in self._cors:
            send = _vary_origin(send)
        request = Request(scope, receive, send)
        try:
            response: Response = await route.endpoint(request)
        except HTTPException as exc:  # starlette.middleware.exceptions.ExceptionMiddleware.http_exception
            if exc.status_code in {204, 304}:
                response = Response(status_code=exc.status_code, headers=exc.headers)
            else:
                response = PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
            exc.__traceback__ = None
        except Exception:  # starlette.middleware.errors.ServerErrorMiddleware: a 500, then the server logs it
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        await response(scope, receive, send)


_PROBE: Scope = {"type": "http", "method": "GET", "root_path": ""}


def _vary_origin(send: Send) -> Send:
    """`CORSMiddleware.send` for a request without an Origin: `Vary: Origin` on the answer."""

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            message.setdefault("headers", [])
            headers = MutableHeaders(scope=message)
            headers["Vary"] = ", ".join([*headers.getlist("Vary"), "Origin"])
        await send(message)

    return sender
