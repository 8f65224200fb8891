"""The standalone REST port: HTTP/1.1 parsed by httptools on the host's asyncio loop, into :class:`.rest.RestApp`.

Why not an ASGI server. The REST core is a transport-free function
(``RestApp.handle``), so all a front has to do is frame bytes. On one core,
the ASGI layer between uvicorn's parser and an app (a scope dict, message
dicts, an ``Event`` and a task per request, headers written apart from the
body) cost 20-25 us a request: a bare uvicorn app answered a quarter to a
third of the requests of a bare httptools protocol (``bench_fronts``), and
the batched one-row MLP served 1.34x the requests at 0.75x the CPU per
request through this module as through uvicorn (``bench_pair``, six rounds).
httptools (llhttp, the parser uvicorn uses) still does all the parsing:
request line, headers, chunked bodies, keep-alive rules.

What the port does, per connection:

* requests are answered in order (pipelining); one runs at a time, later ones
  wait, and reading pauses while more than :data:`MAX_PIPELINED` wait or the
  client is not reading its answers (the transport's write buffer is full);
* every answer is one write: status line, the response's headers,
  ``Content-Length`` and ``Date``, body;
* bounded cost: headers over :data:`MAX_HEADER_BYTES` get a 431, a body over
  ``rest_api_max_body_bytes`` a 413 (from its Content-Length before reading
  it, or as soon as a chunked body crosses the limit), a request past
  ``max_requests_in_flight`` a 503 (before its body is read, unless it waits
  behind others on its connection: requests count when their turn comes);
  after each of these the connection closes, once what the client is still
  sending has been read and dropped (bounded), so the client gets the answer;
* time limits: a connection that does not finish its request headers within
  :data:`HEADER_TIMEOUT_SECONDS` is dropped; a body that stops arriving for
  :data:`BODY_TIMEOUT_SECONDS` gets a 408; idle keep-alive connections close
  after :data:`KEEP_ALIVE_SECONDS`. One timer per port sweeps these
  deadlines, so a request that arrives whole sets no timer at all;
* a client that disconnects before its answer has its request's task
  cancelled (see ``http.unless_client_gone``): its queued work is dropped;
* ``Expect: 100-continue`` is answered before the body is read (curl sends it
  for bodies over 1 KiB); a malformed request gets a 400 and the connection
  closes; a request asking for a protocol upgrade is answered over HTTP/1.1.

Stopping (:meth:`Front.stop`) stops listening at once, closes idle
connections, lets running requests finish for a grace period and then closes
the rest.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import socket
import ssl
import time
from collections import deque

import httptools

from ..core.status import invalid_argument
from .http import (
    BODY_TIMEOUT_SECONDS,
    CLIENT_GONE,
    HEADER_TIMEOUT_SECONDS,
    KEEP_ALIVE_SECONDS,
    AdmissionLimit,
    Response,
    json_response,
    unless_client_gone,
)
from .rest import RestApp

log = logging.getLogger(__name__)

BACKLOG = 2048
# Request line and headers of one request, in bytes (nginx's default large buffers hold 32 KiB).
MAX_HEADER_BYTES = 64 * 1024
# Complete requests a connection may have waiting behind the one running before reading pauses.
MAX_PIPELINED = 8
# The deadline sweep runs at least this often (and at a quarter of the shortest timeout).
SWEEP_SECONDS = 1.0
# After a refusal, what the client is still sending is read and dropped for this long, up to
# this many bytes, before the connection closes (see HttpConnection._linger).
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in http.HTTPStatus}
# Answers repeat a few status and header sets; each one's text is built once (up to this many).
_HEAD_STARTS: dict[tuple, tuple[bytes, bool, bool]] = {}
_MAX_HEAD_STARTS = 256


def _head_start(status: int, headers: list[tuple[str, str]]) -> tuple[bytes, bool, bool]:
    """The status line and ``headers`` as bytes; whether they close the connection; whether they name it."""
    key = (status, *headers)
    cached = _HEAD_STARTS.get(key)
    if cached is not None:
        return cached
    lines = [_STATUS_LINES.get(status) or f"HTTP/1.1 {status} \r\n"]
    closes = says_connection = False
    for name, value in headers:
        if name.lower() == "connection":
            says_connection = True
            closes = closes or value.lower() == "close"
        lines.append(f"{name}: {value}\r\n")
    cached = ("".join(lines).encode("latin-1"), closes, says_connection)
    if len(_HEAD_STARTS) < _MAX_HEAD_STARTS:
        _HEAD_STARTS[key] = cached
    return cached


class _HeadersTooLarge(Exception):
    """Raised from a parser callback; the parser wraps it, ``header_bytes`` says what it was."""


class _Request:
    """One parsed request of a connection, or the answer it already has (a refusal)."""

    __slots__ = ("method", "path", "query", "headers", "body", "keep_alive", "answer", "admitted")

    def __init__(self, method, path, query, headers, body, keep_alive, answer=None, admitted=False):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.answer: Response | None = answer
        self.admitted = admitted


class _Port:
    """What the connections of one listening port share: the app, the admission bound, the clock."""

    def __init__(self, rest_app: RestApp, max_body_bytes: int, loop: asyncio.AbstractEventLoop):
        self.rest_app = rest_app
        self.max_body_bytes = max_body_bytes
        self.admission = AdmissionLimit(rest_app.max_requests_in_flight)
        self.loop = loop
        self.connections: set[HttpConnection] = set()
        self.stopping = False
        self.busy = 0  # requests running
        self.drained: asyncio.Event | None = (
            None  # set by the last request to finish, once stopping
        )
        # Read when the port opens, so a test (or a host) may set the module's limits first.
        self.header_timeout = HEADER_TIMEOUT_SECONDS
        self.body_timeout = BODY_TIMEOUT_SECONDS
        self.keep_alive = KEEP_ALIVE_SECONDS
        self.sweep_every = min(SWEEP_SECONDS, self.header_timeout / 4, self.body_timeout / 4)
        self.sweep_every = min(self.sweep_every, self.keep_alive / 4)
        self._date = (0, b"")
        self._timer = loop.call_later(self.sweep_every, self._sweep)

    def date(self) -> bytes:
        """The ``Date`` header's value, formatted once a second."""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True).encode())
        return self._date[1]

    def running(self, delta: int) -> None:
        self.busy += delta
        if not self.busy and self.drained is not None:
            self.drained.set()

    def _sweep(self) -> None:
        now = self.loop.time()
        for connection in list(self.connections):
            deadline = connection.deadline
            if deadline is not None and deadline <= now:
                connection.expired()
        self._timer = self.loop.call_later(self.sweep_every, self._sweep)

    def close(self) -> None:
        self._timer.cancel()


class HttpConnection(asyncio.Protocol):
    """One client connection: httptools parses, :class:`RestApp` answers, one request at a time."""

    def __init__(self, port: _Port):
        self.port = port
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.requests: deque[_Request] = deque()  # waiting behind the running one
        self.task: asyncio.Task | None = None
        self.closing = False
        self.writing_paused = False
        self.reading_paused = False
        # The request being parsed.
        self.phase = "headers"  # headers | body | done | idle
        self.deadline: float | None = None
        self.url = b""
        self.headers: dict[str, str] = {}
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.refusal: Response | None = None  # answered before its body: the body is dropped
        self.admitted = False  # counted in the port's admission bound while its body arrives

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.port.connections.add(self)
        self.deadline = self.port.loop.time() + self.port.header_timeout

    def connection_lost(self, exc) -> None:
        self.closing = True
        self.port.connections.discard(self)
        self._unadmit()
        self._drop_waiting()
        if self.task is not None:  # gone before its answer: its queued work is dropped
            self.task.cancel(CLIENT_GONE)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # httptools.HttpParserError and its subclasses
            self._parse_failed(exc, data)
            return
        phase = self.phase
        if phase == "headers" or phase == "body":  # a read left this request unfinished
            if self.deadline is None:
                timeout = self.port.header_timeout if phase == "headers" else self.port.body_timeout
                self.deadline = self.port.loop.time() + timeout

    def _parse_failed(self, exc: Exception, data: bytes) -> None:
        if isinstance(exc, httptools.HttpParserUpgrade):
            # The request was read whole and is answered over HTTP/1.1, which RFC 9110
            # allows (no 101 is sent); a fresh parser reads what follows it.
            self.parser = httptools.HttpRequestParser(self)
            rest = data[exc.args[0] :] if exc.args and isinstance(exc.args[0], int) else b""
            if rest:
                self.data_received(rest)
            return
        if self.header_bytes > MAX_HEADER_BYTES:
            message = f"Request headers exceed {MAX_HEADER_BYTES} bytes"
            response = json_response({"error": message}, 431, [("Connection", "close")])
        else:
            message = f"Malformed HTTP request: {exc}"
            response = json_response({"error": message}, 400, [("Connection", "close")])
        self._unadmit()
        self._refuse_and_close(response)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._resume_reading()
        self._next()

    # ------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        self.phase = "headers"
        self.deadline = None
        self.url = b""
        self.headers = {}
        self.header_bytes = 0
        self.body = []
        self.body_size = 0
        self.refusal = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self.headers
        headers[key] = f"{headers[key]},{text}" if key in headers else text

    def on_headers_complete(self) -> None:
        self.phase = "body"
        self.deadline = None
        port = self.port
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > port.max_body_bytes:
            self.refusal = port.rest_app.body_too_large(int(length), port.max_body_bytes)
        elif self.task is not None or self.requests:
            pass  # pipelined behind others: admitted when its turn comes (see _next)
        elif port.admission.enter():  # its turn is now: admitted before its body is read
            self.admitted = True
        else:
            self.refusal = port.admission.refusal()
        if self.refusal is not None:
            self._refuse_and_close(self.refusal)
        elif self.headers.get("expect", "").lower() == "100-continue":
            self.transport.write(_CONTINUE)

    def on_body(self, chunk: bytes) -> None:
        if self.refusal is not None:
            return
        self.body_size += len(chunk)
        if self.body_size > self.port.max_body_bytes:
            self._unadmit()
            self.refusal = self.port.rest_app.body_too_large(None, self.port.max_body_bytes)
            self._refuse_and_close(self.refusal)
            return
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.phase = "done"
        self.deadline = None
        if self.refusal is not None:
            return
        parsed = httptools.parse_url(self.url)
        body = self.body
        request = _Request(
            self.parser.get_method().decode("latin-1"),
            parsed.path.decode("latin-1"),
            (parsed.query or b"").decode("latin-1"),
            self.headers,
            body[0] if len(body) == 1 else b"".join(body),
            self.parser.should_keep_alive(),
            admitted=self.admitted,
        )
        self.admitted = False  # the request holds its place now, if it has one
        self.body = []
        self.requests.append(request)
        if self.task is None:
            self._next()
        elif len(self.requests) > MAX_PIPELINED:
            self._pause_reading()

    # ------------------------------------------------------------------ answering
    def _next(self) -> None:
        """Start the oldest waiting request, unless one is running or the client is not reading."""
        if self.closing:
            return
        while self.task is None and self.requests and not self.writing_paused:
            request = self.requests.popleft()
            if request.answer is not None:  # a refusal: the last answer of this connection
                self._write(request.answer, keep_alive=False)
                self._linger()
                return
            if not request.admitted:
                if not self.port.admission.enter():
                    self._drop_waiting()
                    self._refuse_and_close(self.port.admission.refusal())
                    return
                request.admitted = True
            self.port.running(1)
            self.task = self.port.loop.create_task(self._answer(request))
        if not self.requests:
            self._resume_reading()
            if self.task is None and self.phase == "done" and not self.closing:
                self.phase = "idle"
                self.deadline = self.port.loop.time() + self.port.keep_alive

    async def _answer(self, request: _Request) -> None:
        try:
            response = await unless_client_gone(
                self.port.rest_app.handle(
                    request.method, request.path, request.query, request.headers, request.body
                )
            )
        except Exception:  # the app answers its own errors; this is a bug in it
            log.exception("REST %s %s failed", request.method, request.path)
            response = json_response({"error": "Internal error"}, 500)
        finally:
            self.task = None
            self.port.admission.leave()
            self.port.running(-1)
        if response is not None and not self.closing:
            keep_alive = request.keep_alive and not self.port.stopping
            if self._write(response, keep_alive, head=request.method == "HEAD"):
                self._next()
            else:
                self._close()

    def _write(self, response: Response, keep_alive: bool, head: bool = False) -> bool:
        """One write per answer (a HEAD request's has its length and no body); whether to keep alive."""
        start, closes, says_connection = _head_start(response.status, response.headers)
        keep_alive = keep_alive and not closes
        body = response.body
        self.transport.write(
            b"".join(
                (
                    start,
                    b"" if keep_alive or says_connection else b"Connection: close\r\n",
                    b"Content-Length: %d\r\nDate: %s\r\n\r\n" % (len(body), self.port.date()),
                    b"" if head else body,
                )
            )
        )
        return keep_alive

    def _refuse_and_close(self, response: Response) -> None:
        """Answer ``response`` after the requests before it, read nothing more, then close."""
        self._pause_reading()
        self.phase = "done"
        self.deadline = None
        self.requests.append(_Request("", "", "", {}, b"", False, answer=response))
        self.parser = _Discard()
        self._next()

    def _linger(self) -> None:
        """After a refusal is written: read and drop what the client still sends, then close.

        Closing a socket with unread data makes the kernel answer with a reset,
        and a client still uploading a body it was refused would lose the
        refusal with it (a 300 MB upload would see "connection reset", not the
        413). The wait is bounded by :data:`LINGER_SECONDS` and :data:`LINGER_BYTES`.
        """
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is whole: the client may close first
        self.parser = _Discard(LINGER_BYTES, self._close)
        self.phase = "lingering"
        self.deadline = self.port.loop.time() + LINGER_SECONDS
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    # ------------------------------------------------------------------ deadlines and closing
    def expired(self) -> None:
        """The port's sweep found this connection past its deadline."""
        self.deadline = None
        if self.closing:
            return
        if self.phase == "body":
            message = f"Request body not received within {self.port.body_timeout:g} seconds"
            self._unadmit()
            self.refusal = json_response({"error": message}, 408, [("Connection", "close")])
            self._refuse_and_close(self.refusal)
        else:  # headers that never finished, an idle keep-alive connection, a linger done
            self._close()

    def stop(self) -> None:
        """The port is stopping: close now if idle, else after the running request's answer."""
        if self.task is None:
            self._close()

    def _close(self) -> None:
        if not self.closing:
            self.closing = True
            self.transport.close()

    def _drop_waiting(self) -> None:
        for request in self.requests:
            if request.admitted:
                self.port.admission.leave()
        self.requests.clear()

    def _unadmit(self) -> None:
        if self.admitted:
            self.admitted = False
            self.port.admission.leave()

    def _pause_reading(self) -> None:
        if not self.reading_paused and not self.closing:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and not self.closing and not self.writing_paused:
            self.reading_paused = False
            self.transport.resume_reading()

    def _count_header_bytes(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_HEADER_BYTES:
            raise _HeadersTooLarge


class _Discard:
    """Stands in for the parser once a connection is refused: what else arrives is dropped.

    With a ``limit``, ``enough`` is called once more than that many bytes were dropped.
    """

    __slots__ = ("left", "enough")

    def __init__(self, limit: int | None = None, enough=None):
        self.left = limit
        self.enough = enough

    def feed_data(self, data: bytes) -> None:
        if self.left is not None:
            self.left -= len(data)
            if self.left < 0:
                self.left = None
                self.enough()


# ---------------------------------------------------------------------- the port
def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address of ``host``, one port (``0`` picks a free one).

    tornado's binder is reused for this: it already handles "localhost" resolving
    to both IPv4 and IPv6, dual-stack wildcards and one shared ephemeral port.
    """
    import tornado.netutil

    return tornado.netutil.bind_sockets(port, host or None, backlog=BACKLOG)


class Front:
    """A listening REST port: ``port`` is the bound port, ``stop()`` drains in-flight requests."""

    kind = "standalone"

    def __init__(self, port_state: _Port, servers: list[asyncio.AbstractServer], port: int):
        self._port = port_state
        self._servers = servers
        self.port = port

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening, close idle connections, let running requests finish for up to ``grace`` s."""
        state = self._port
        state.stopping = True
        state.drained = asyncio.Event()
        if not state.busy:
            state.drained.set()
        for server in self._servers:
            server.close()
        for connection in list(state.connections):
            connection.stop()
        try:
            await asyncio.wait_for(state.drained.wait(), max(grace, 0.0))
        except asyncio.TimeoutError:
            log.warning("REST front on port %s did not drain within %.0f s", self.port, grace)
        for connection in list(state.connections):
            connection._close()
        state.close()

    def __repr__(self) -> str:
        return f"<standalone Front port={self.port}>"


def tls_context(options) -> ssl.SSLContext | None:
    """The REST port's TLS context, loaded before any port opens (a bad file is one line naming the flag)."""
    cert_file = getattr(options, "rest_api_ssl_cert_file", "") or None
    key_file = getattr(options, "rest_api_ssl_key_file", "") or None
    if cert_file is None:
        if key_file is not None:
            raise invalid_argument(
                "--rest_api_ssl_key_file is set without --rest_api_ssl_cert_file"
            )
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise invalid_argument(
            f"Could not load the REST port's certificate --rest_api_ssl_cert_file={cert_file}"
            f"{f' --rest_api_ssl_key_file={key_file}' if key_file else ''}: {exc.strerror or exc}"
        ) from None
    return context


async def serve(rest_app: RestApp, host: str, port: int, options) -> Front:
    """Serve ``rest_app`` on ``host:port`` from the running loop; returns once listening."""
    context = tls_context(options)
    loop = asyncio.get_running_loop()
    max_body_bytes = getattr(options, "rest_api_max_body_bytes", None)
    if max_body_bytes is None:
        max_body_bytes = rest_app.max_body_bytes
    state = _Port(rest_app, max_body_bytes, loop)
    sockets = bind_sockets(host, port)
    servers = []
    try:
        for sock in sockets:
            servers.append(
                await loop.create_server(
                    lambda: HttpConnection(state), sock=sock, ssl=context, backlog=BACKLOG
                )
            )
    except BaseException:
        for server in servers:
            server.close()
        for sock in sockets:
            sock.close()
        state.close()
        raise
    return Front(state, servers, sockets[0].getsockname()[1])
