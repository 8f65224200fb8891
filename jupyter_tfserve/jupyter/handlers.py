"""The extension's routes: the shared REST core mounted at ``{base_url}tfserve`` behind Jupyter's auth.

One route hands ``/v1/...`` (TF Serving's API) and ``/api/...`` (the
management API) to the same REST core the standalone port serves, through the
tornado adapter. Every request first passes :class:`TFServeAPIHandler`'s
``prepare``: Jupyter's identity provider, ``@tornado.web.authenticated`` (403
for API requests without a user) and ``@authorized`` on the ``tfserve``
resource (read for GET, write for POST, PUT, DELETE), so custom authorizers
can grant or deny the model server like any other Jupyter API. Authentication
happens before the request body is read.

The adapter's module imports the tensor codec, hence TensorFlow, so it must not
be imported while Jupyter starts. :class:`TFServeRoutes` is mounted instead: a
tornado router that hands requests to the adapter's handler once the host's
background thread has imported it, and holds (without blocking the loop) the
few requests that arrive before that.
"""

from __future__ import annotations

import asyncio
import re

from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.base.handlers import APIHandler
from tornado import httputil, routing, web

from ..core.status import Code, ServingError

AUTH_RESOURCE = "tfserve"
MOUNT = "tfserve"


class TFServeAPIHandler(APIHandler):
    """Jupyter's API handler, authenticated and authorized in ``prepare``, before any body is read."""

    auth_resource = AUTH_RESOURCE

    async def prepare(self) -> None:
        await super().prepare()
        if not self._finished:
            check = _PERMISSION_CHECKS[HTTP_METHOD_TO_AUTH_ACTION.get(self.request.method, "write")]
            await check(self)


def _permission_check(action: str):
    """``@web.authenticated`` and ``@authorized(action)`` around nothing: they raise 403 when refused.

    The action is explicit: ``@authorized`` without one remembers the action of
    the first request it sees, so one check shared by all methods would
    authorize every later request as that first one.
    """

    @web.authenticated
    @authorized(action)
    async def check(self) -> None:
        pass

    return check


_PERMISSION_CHECKS = {action: _permission_check(action) for action in ("read", "write")}


def _guarded(method, action: str):
    """``method`` under ``@web.authenticated`` and ``@authorized``, as Jupyter expects of handler methods.

    ``prepare`` has already checked; this second check is what Jupyter's own
    audit of extension handlers (and ours, in the tests) looks for.
    """

    @web.authenticated
    @authorized(action)
    async def guarded(self, *args, **kwargs):
        return await method(self, *args, **kwargs)

    return guarded


def authenticated_handler(handler_class: type) -> type:
    """A subclass of the REST adapter's handler with every HTTP method guarded."""
    methods = {
        name.lower(): _guarded(
            getattr(handler_class, name.lower()), HTTP_METHOD_TO_AUTH_ACTION[name]
        )
        for name in handler_class.SUPPORTED_METHODS
    }
    return type(handler_class.__name__, (handler_class,), methods)


class JupyterMount:
    """The REST core as seen from ``{base_url}tfserve``.

    It waits for the ModelServer (built in the background). The management API,
    which the core keeps at ``/tfserve/api`` on a port of its own, sits at
    ``/api`` right under the mount point. Requests come from the Jupyter user:
    Jupyter has authenticated and authorized them before their body was read.
    """

    def __init__(self, host):
        self.host = host
        self.max_body_bytes = host.options.rest_api_max_body_bytes
        self.max_requests_in_flight = host.options.max_requests_in_flight

    async def handle(self, method, path, query, headers, body):
        # The engine's modules are imported here, once the server runs: never on Jupyter's startup path.
        from ..core.admin import Caller

        try:
            server = await self.host.server()
        except Exception as exc:
            from ..protocols.http import error_response

            return error_response(
                ServingError(Code.UNAVAILABLE, f"The model server could not start: {exc}")
            )
        if path == "/api" or path.startswith("/api/"):
            path = "/tfserve" + path
        return await server.rest.dispatch(
            method, path, query, headers, body, Caller("jupyter", "jupyter user")
        )

    def body_too_large(self, size, limit=None):
        from ..protocols.http import body_too_large

        # Needs nothing of a running server but the limit.
        return body_too_large(size, self.max_body_bytes if limit is None else limit)


class TFServeRoutes(routing.Router):
    """Routes ``{base_url}tfserve/...`` to the REST adapter's handler, once it is importable."""

    # Jupyter audits the HTTP methods of what extensions mount. A router has
    # none of its own; the handler it routes to is the one to audit, and the
    # tests do (every method of it is authenticated).
    SUPPORTED_METHODS: tuple[str, ...] = ()

    def __init__(self, application: web.Application, host, prefix: str):
        self.application = application
        self.host = host
        self.prefix = prefix.rstrip("/")
        self.pattern = re.escape(self.prefix) + r"(/.*)"
        self._handler_class: type | None = None

    def handler_class(self) -> type:
        """The adapter's handler class, derived from :class:`TFServeAPIHandler` (built once)."""
        if self._handler_class is None:
            from ..protocols.http_tornado import rest_handlers

            ((_, handler_class),) = rest_handlers(
                JupyterMount(self.host), self.prefix, TFServeAPIHandler
            )
            self._handler_class = authenticated_handler(handler_class)
        return self._handler_class

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs
    ) -> httputil.HTTPMessageDelegate:
        imported = self.host.imported
        if not imported.done():
            self.host.start()
            return _Held(self, request, kwargs)
        return self.delegate(request, kwargs)

    def delegate(self, request, kwargs) -> httputil.HTTPMessageDelegate:
        if self.host.imported.exception() is not None:
            return self.application.get_handler_delegate(
                request, web.ErrorHandler, {"status_code": 503}
            )
        return self.application.get_handler_delegate(
            request,
            self.handler_class(),
            path_args=kwargs.get("path_args"),
            path_kwargs=kwargs.get("path_kwargs"),
        )


class _Held(httputil.HTTPMessageDelegate):
    """A request that arrived before the adapter was imported: waits for it, then is handed over.

    Tornado awaits ``headers_received`` before it reads the body, so nothing is
    lost or buffered here; the connection simply waits on the loop.
    """

    def __init__(self, routes: TFServeRoutes, request, kwargs):
        self.routes = routes
        self.request = request
        self.kwargs = kwargs
        self.target: httputil.HTTPMessageDelegate | None = None

    async def headers_received(self, start_line, headers) -> None:
        try:
            await asyncio.wrap_future(self.routes.host.imported)
        except Exception:
            pass  # logged by the host; delegate() answers 503
        self.target = self.routes.delegate(self.request, self.kwargs)
        waiting = self.target.headers_received(start_line, headers)
        if waiting is not None:
            await waiting

    def data_received(self, chunk):
        return self.target.data_received(chunk)

    def finish(self) -> None:
        self.target.finish()

    def on_connection_close(self) -> None:
        if self.target is not None:
            self.target.on_connection_close()


def routes(application: web.Application, base_url: str, host) -> list[tuple]:
    """The URL rules to add to Jupyter's web application."""
    router = TFServeRoutes(application, host, base_url.rstrip("/") + "/" + MOUNT)
    return [(router.pattern, router)]
