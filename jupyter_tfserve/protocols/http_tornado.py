"""Thin tornado adapter over :class:`~.rest.RestApp`: the routes mounted inside Jupyter, under any prefix.

:func:`rest_handlers` returns tornado URL specs for everything the REST core
serves (TF Serving's ``/v1/``, ``/tfserve/api/``, the Prometheus page),
mounted below ``prefix``. The handler class derives from ``handler_base``:
the Jupyter extension passes Jupyter's authenticated handler class, so
authentication, XSRF checks and origin checks stay that class's business
(its ``prepare()`` is awaited before anything else, and tornado calls its
``check_xsrf_cookie`` when the application enables XSRF). The REST core sees
only the raw path *relative to the prefix*, so ``{base_url}tfserve/v1/...``
inside Jupyter and ``/v1/...`` on a port of its own behave the same.

:func:`serve` runs the same handlers on a standalone tornado port. The
standalone host uses its own httptools front (:mod:`.http_standalone`); this
one exists to compare the two on identical requests.
Responses are byte-for-byte those of that front: tornado's default
``Content-Type``, ``Server`` and ``Etag`` headers are removed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import tornado.httpserver
import tornado.netutil
import tornado.web

from .http import (
    BODY_TIMEOUT_SECONDS,
    CLIENT_GONE,
    KEEP_ALIVE_SECONDS,
    AdmissionLimit,
    unless_client_gone,
)
from .rest import RestApp

log = logging.getLogger(__name__)

_UNLIMITED = 1 << 62  # tornado's own limit is lifted; the handler enforces ours with a JSON 413


class _InFlight:
    """Counts requests being handled, so a standalone front can drain them on stop."""

    def __init__(self):
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> None:
        self.count += 1
        self.idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count <= 0:
            self.count = 0
            self.idle.set()


def rest_handlers(
    rest_app: RestApp,
    prefix: str = "",
    handler_base: type[tornado.web.RequestHandler] = tornado.web.RequestHandler,
    max_body_bytes: int | None = None,
) -> list[tuple]:
    """URL specs serving ``rest_app`` below ``prefix`` (e.g. ``"/user/me/tfserve"``; "" for the root).

    The routes of one call share one bound on requests in flight
    (``rest_app.max_requests_in_flight``): past it, a 503 before the body is read.
    """
    prefix = prefix.rstrip("/")
    limit = rest_app.max_body_bytes if max_body_bytes is None else max_body_bytes
    admitted = AdmissionLimit(rest_app.max_requests_in_flight)

    @tornado.web.stream_request_body
    class TFServeRestHandler(handler_base):
        SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")

        def initialize(self, *args, **kwargs) -> None:
            super().initialize(*args, **kwargs)
            self._chunks: list[bytes] = []
            self._size = 0
            self._too_large = False
            self._inflight: _InFlight | None = None
            self._admitted = False
            self._task: asyncio.Task | None = None

        async def prepare(self) -> None:
            result = super().prepare()
            if result is not None:
                await result
            if self._finished:  # the base class answered (auth, origin checks)
                return
            if not admitted.enter():
                await self._respond(admitted.refusal())
                return
            self._admitted = True
            self._inflight = self.settings.get("tfserve_inflight")
            if self._inflight is not None:
                self._inflight.enter()
            self.request.connection.set_max_body_size(_UNLIMITED)
            self.request.connection.set_body_timeout(BODY_TIMEOUT_SECONDS)
            length = self.request.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > limit:
                # Answer before reading the body; tornado closes the connection after it.
                await self._respond(rest_app.body_too_large(int(length), limit))

        def data_received(self, chunk: bytes):
            if self._finished or self._too_large:
                return None
            self._size += len(chunk)
            if self._size > limit:
                # Answer now rather than after the whole body; tornado then closes the connection.
                self._too_large = True
                self._chunks.clear()
                return self._respond(rest_app.body_too_large(None, limit))
            self._chunks.append(chunk)
            return None

        async def _dispatch(self, *args) -> None:
            path = self.request.path
            if prefix:
                path = path[len(prefix) :]
            body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            self._chunks = []
            headers = {name.lower(): value for name, value in self.request.headers.items()}
            self._task = asyncio.current_task()  # cancelled if the client goes first
            response = await unless_client_gone(
                rest_app.handle(self.request.method, path, self.request.query, headers, body)
            )
            if response is not None:
                await self._respond(response)

        get = head = post = delete = patch = put = options = _dispatch

        async def _respond(self, response) -> None:
            if self._finished:
                return
            self.clear_header("Content-Type")
            self.clear_header("Server")
            self.set_status(response.status, reason=_REASONS.get(response.status))
            for name, value in response.headers:
                self.add_header(name, value)
            await self.finish(response.body)

        def compute_etag(self):
            return None  # no Etag / 304 handling: TF Serving sends neither

        def on_finish(self) -> None:
            super().on_finish()
            self._leave()

        def on_connection_close(self) -> None:
            super().on_connection_close()
            self._leave()
            if self._task is not None and not self._finished:
                self._task.cancel(CLIENT_GONE)

        def _leave(self) -> None:
            if self._admitted:
                self._admitted = False
                admitted.leave()
            if self._inflight is not None:
                inflight, self._inflight = self._inflight, None
                inflight.leave()

    TFServeRestHandler.__name__ = TFServeRestHandler.__qualname__ = (
        f"TFServeRestHandler_{handler_base.__name__}"
    )
    return [(re.escape(prefix) + r"(/.*)", TFServeRestHandler)]


_REASONS = {499: "Client Closed Request"}


class Front:
    """A standalone tornado port serving a RestApp; ``stop()`` drains in-flight requests first."""

    def __init__(self, server: tornado.httpserver.HTTPServer, port: int, inflight: _InFlight):
        self._server = server
        self._inflight = inflight
        self.port = port
        self.kind = "tornado"

    async def stop(self, grace: float = 10.0) -> None:
        self._server.stop()  # no new connections
        deadline = time.monotonic() + max(grace, 0.0)
        while self._inflight.count and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self._inflight.idle.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
        if self._inflight.count:
            log.warning(
                "Closing tornado REST front with %d request(s) still running", self._inflight.count
            )
        await self._server.close_all_connections()

    def __repr__(self) -> str:
        return f"<tornado Front port={self.port}>"


async def serve(rest_app: RestApp, host: str, port: int, options) -> Front:
    """Serve ``rest_app`` on a tornado HTTP server bound to ``host:port`` (0 = any free port)."""
    inflight = _InFlight()
    max_body = getattr(options, "rest_api_max_body_bytes", None)
    application = tornado.web.Application(
        rest_handlers(rest_app, "", max_body_bytes=max_body),
        tfserve_inflight=inflight,
        compress_response=False,
        log_function=lambda handler: None,  # no access log on a serving port
    )
    server = tornado.httpserver.HTTPServer(
        application,
        decompress_request=False,  # the REST core inflates gzip bodies, identically for every front
        idle_connection_timeout=KEEP_ALIVE_SECONDS,
        body_timeout=BODY_TIMEOUT_SECONDS,
        max_body_size=_UNLIMITED,
        xheaders=False,
    )
    sockets = tornado.netutil.bind_sockets(port, host or None, backlog=2048)
    server.add_sockets(sockets)
    return Front(server, sockets[0].getsockname()[1], inflight)
