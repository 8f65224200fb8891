"""The standalone REST port: a bare ASGI callable over :class:`~.rest.RestApp`, served by uvicorn.

No framework sits in between (no routing, no middleware): the REST core does
all of that, and every layer saved is throughput on the port outside clients
and load balancers hit. uvicorn brings the parts worth not writing again:
httptools parsing, keep-alive, pipelining, chunked bodies, graceful shutdown.

Event loops. :func:`serve` runs ``uvicorn.Server.serve()`` as a task on the
loop it is awaited on: the ModelServer's own io loop ("tfserve-io" thread),
which the gRPC front shares. uvloop cannot be swapped into a loop that is
already running, so whether this port runs on uvloop is decided by whoever
creates that loop (the standalone host may create it with
``uvloop.new_event_loop()``); this module works the same on either. One loop
for both fronts keeps a single network thread contending for the GIL with
the inference threads, and lets the host start and stop everything with one
``run_coroutine_threadsafe``. uvicorn's signal handling is disabled: the
host process owns SIGINT/SIGTERM and calls :meth:`Front.stop`.

Limits. Bodies over ``options.rest_api_max_body_bytes`` get a JSON 413 (from
the Content-Length before reading anything, or as soon as a chunked body
crosses the limit) and the connection is closed. Idle keep-alive connections
close after :data:`KEEP_ALIVE_SECONDS`; a client that opens a connection or
starts a request but does not finish its headers within
:data:`HEADER_TIMEOUT_SECONDS` is dropped (uvicorn has no header timeout of
its own, so the protocol class below adds one); a body that does not arrive
within :data:`BODY_TIMEOUT_SECONDS` gets a 408. Past
``options.max_requests_in_flight`` requests at once, a request gets a 503
before its body is read (uvicorn's own ``limit_concurrency`` is not used: it
counts idle keep-alive connections too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time

from ..core.status import invalid_argument
from .http import (
    BODY_TIMEOUT_SECONDS,
    CLIENT_GONE,
    HEADER_TIMEOUT_SECONDS,
    KEEP_ALIVE_SECONDS,
    AdmissionLimit,
    json_response,
    unless_client_gone,
)
from .rest import RestApp

log = logging.getLogger(__name__)

BACKLOG = 2048
STARTUP_TIMEOUT_SECONDS = 30.0
# The cancel message of a request task whose body stopped arriving (answered 408).
BODY_TIMEOUT = "tfserve: request body timed out"


class AsgiApp:
    """ASGI 3 application: one HTTP request in, ``rest_app.handle`` out. Lifespan is not used."""

    def __init__(self, rest_app: RestApp, max_body_bytes: int | None = None):
        self.rest_app = rest_app
        self.max_body_bytes = rest_app.max_body_bytes if max_body_bytes is None else max_body_bytes
        self.admission = AdmissionLimit(rest_app.max_requests_in_flight)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":  # answer politely if a host enables it
                while (await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})
            return
        admission = self.admission
        if not admission.enter():
            await _send(send, admission.refusal())
            return
        try:
            await self._http(scope, receive, send)
        finally:
            admission.leave()

    async def _http(self, scope, receive, send) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        limit = self.max_body_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send(send, self.rest_app.body_too_large(int(length), limit))
            return
        # uvicorn's receive() is a method of the request's cycle: the protocol below
        # cancels the task through it when the body stops arriving or the client goes.
        cycle = getattr(receive, "__self__", None)
        if cycle is not None:
            cycle.tfserve_reading = asyncio.current_task()
        try:
            body = await _read_body(receive, limit)
        except _TooLarge:
            await _send(send, self.rest_app.body_too_large(None, limit))
            return
        except asyncio.TimeoutError:
            message = f"Request body not received within {BODY_TIMEOUT_SECONDS:g} seconds"
            await _send(send, json_response({"error": message}, 408, [("Connection", "close")]))
            return
        except _Disconnected:
            return
        finally:
            if cycle is not None:
                cycle.tfserve_reading = None
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope["query_string"].decode("latin-1")
        if cycle is not None:
            cycle.tfserve_task = asyncio.current_task()
        response = await unless_client_gone(
            self.rest_app.handle(scope["method"], path, query, headers, body)
        )
        if response is not None:
            await _send(send, response)


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(receive, limit: int) -> bytes:
    """The whole request body; one that does not arrive within BODY_TIMEOUT_SECONDS raises TimeoutError.

    The deadline is kept by the protocol (``TimedHttpToolsProtocol``), which
    cancels this task with :data:`BODY_TIMEOUT`. It arms its timer only when a
    read leaves a body unfinished, so the common request, whose body came with
    its headers, sets no timer at all.
    """
    try:
        chunks = []
        size = 0
        more = True
        while more:
            chunk, more = _body_part(await receive(), size, limit)
            size += len(chunk)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except asyncio.CancelledError as exc:
        if exc.args != (BODY_TIMEOUT,):
            raise
        asyncio.current_task().uncancel()
        raise asyncio.TimeoutError from None


def _body_part(message, size: int, limit: int) -> tuple[bytes, bool]:
    if message["type"] == "http.disconnect":
        raise _Disconnected
    chunk = message.get("body", b"")
    if size + len(chunk) > limit:
        raise _TooLarge
    return chunk, message.get("more_body", False)


async def _send(send, response) -> None:
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers
    ]
    headers.append((b"Content-Length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


# ---------------------------------------------------------------------- uvicorn
def _protocol_class():
    """uvicorn's httptools protocol with a header timeout; plain "httptools" if its internals moved."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools missing or uvicorn reorganised
        return "httptools"

    class TimedHttpToolsProtocol(HttpToolsProtocol):
        """Drops connections whose request headers do not complete in time; times out bodies that stop.

        Timers are armed at the end of a read that leaves headers or a body
        unfinished (and once when a connection opens), not per request: a
        request that arrives whole, the usual case, sets none.

        When a client disconnects before its answer, the request's task is
        cancelled (see ``rest.unless_client_gone``): its queued work is dropped.
        """

        _header_timer = None
        _body_timer = None
        _receiving = None  # "headers" or "body" while a request is arriving

        def _arm_header_timer(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(
                    HEADER_TIMEOUT_SECONDS, self._header_timeout
                )

        def _disarm_timers(self) -> None:
            for name in ("_header_timer", "_body_timer"):
                timer = getattr(self, name)
                if timer is not None:
                    timer.cancel()
                    setattr(self, name, None)

        def _header_timeout(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def _body_timeout(self) -> None:
            self._body_timer = None
            task = getattr(self.cycle, "tfserve_reading", None)
            if task is not None:
                task.cancel(BODY_TIMEOUT)  # the app answers 408
            elif not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._receiving == "headers":
                self._arm_header_timer()
            elif self._receiving == "body" and self._body_timer is None:
                self._body_timer = self.loop.call_later(BODY_TIMEOUT_SECONDS, self._body_timeout)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._receiving = "headers"

        def on_headers_complete(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            self._receiving = "body"
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._receiving = None
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            super().on_message_complete()

        def connection_lost(self, exc) -> None:
            self._disarm_timers()
            cycle = self.cycle
            super().connection_lost(exc)
            task = getattr(cycle, "tfserve_task", None)
            if task is not None and cycle.disconnected:  # gone before its answer
                task.cancel(CLIENT_GONE)

    return TimedHttpToolsProtocol


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """A uvicorn server that leaves signal handling to the host process."""

        @contextlib.contextmanager
        def capture_signals(self):
            yield

    return Server


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address of ``host``, one port (``0`` picks a free one).

    tornado's binder is reused for this: it already handles "localhost" resolving
    to both IPv4 and IPv6, dual-stack wildcards and one shared ephemeral port.
    """
    import tornado.netutil

    return tornado.netutil.bind_sockets(port, host or None, backlog=BACKLOG)


class Front:
    """A running uvicorn front: ``port`` is the bound port, ``stop()`` drains in-flight requests."""

    def __init__(self, server, task: asyncio.Task, sockets: list[socket.socket]):
        self._server = server
        self._task = task
        self._sockets = sockets
        self.port: int = sockets[0].getsockname()[1]
        self.kind = "asgi"

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening, close idle connections, let running requests finish for up to ``grace`` s."""
        self._server.config.timeout_graceful_shutdown = max(grace, 0.0)
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace + 5.0)
        except asyncio.TimeoutError:
            log.warning("REST front on port %s did not stop within %.0f s", self.port, grace)
            self._task.cancel()
        finally:
            _close(self._sockets)

    def __repr__(self) -> str:
        return f"<asgi Front port={self.port}>"


def _close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def tls_files(options) -> tuple[str | None, str | None]:
    """The REST port's certificate and key, checked before any port opens.

    uvicorn would load them inside its serve task, where a bad file surfaces as a
    port that never starts; loaded here first, it is one line naming the flag.
    """
    cert_file = getattr(options, "rest_api_ssl_cert_file", "") or None
    key_file = getattr(options, "rest_api_ssl_key_file", "") or None
    if cert_file is None:
        if key_file is not None:
            raise invalid_argument(
                "--rest_api_ssl_key_file is set without --rest_api_ssl_cert_file"
            )
        return None, None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise invalid_argument(
            f"Could not load the REST port's certificate --rest_api_ssl_cert_file={cert_file}"
            f"{f' --rest_api_ssl_key_file={key_file}' if key_file else ''}: {exc.strerror or exc}"
        ) from None
    return cert_file, key_file


async def serve(rest_app: RestApp, host: str, port: int, options) -> Front:
    """Serve ``rest_app`` with uvicorn on ``host:port`` from the running loop; returns once listening."""
    import uvicorn

    uvicorn_logger = logging.getLogger("uvicorn.error")
    if uvicorn_logger.level == logging.NOTSET:  # the host prints its own "listening" line
        uvicorn_logger.setLevel(logging.WARNING)
    app = AsgiApp(rest_app, getattr(options, "rest_api_max_body_bytes", None))
    cert_file, key_file = tls_files(options)
    config = uvicorn.Config(
        app,
        http=_protocol_class(),
        interface="asgi3",
        lifespan="off",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=True,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        backlog=BACKLOG,
        ws="none",
        ssl_certfile=cert_file,
        ssl_keyfile=key_file,
    )
    sockets = bind_sockets(host, port)
    server = _server_class()(config)
    task = asyncio.get_running_loop().create_task(
        server.serve(sockets=sockets), name=f"tfserve-rest-{sockets[0].getsockname()[1]}"
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:  # uvicorn has no startup event to await
        if task.done():
            _close(sockets)
            task.result()  # raises what stopped it
            raise OSError(f"REST front on {host}:{port} exited during startup")
        if time.monotonic() > deadline:
            server.should_exit = True
            _close(sockets)
            raise OSError(f"REST front on {host}:{port} did not start within 30 s")
        await asyncio.sleep(0.005)
    return Front(server, task, sockets)
