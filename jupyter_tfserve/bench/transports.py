"""The two ways a load-generator worker talks to a TF Serving-compatible server: REST and gRPC.

Both run inside a worker process on its own asyncio loop and send bodies that
were encoded once, before the run, by the parent: the worker never builds a
tensor, so what it measures is the server and the wire, not our encoder.

* REST is plain HTTP/1.1 over keep-alive connections, one request in flight
  per connection (HTTP/1.1 has no usable pipelining), written with asyncio
  streams so any server that speaks HTTP (TF Serving's own, ours on its
  standalone port or under tornado) can be measured. Responses are read to the last byte
  (``Content-Length`` or chunked) but never decoded.
* gRPC calls ``tensorflow.serving.PredictionService/Predict`` with the
  serialized ``PredictRequest`` as raw bytes through a generic stub, so the
  worker imports neither TensorFlow nor the serving protos.

A transport hands out *lanes*: a REST lane is one connection and carries one
request at a time; the gRPC lane is the shared channel, which multiplexes.
Failures raise :class:`RequestFailed` with a short *kind* (``http 503``,
``timeout``, ``connection refused``, ``grpc UNAVAILABLE``) that the results
count errors by.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from urllib.parse import urlsplit

now = time.monotonic  # CLOCK_MONOTONIC: one clock for every process on the machine

GRPC_PREDICT = "/tensorflow.serving.PredictionService/Predict"
_UNMEASURED = float("nan")


class RequestFailed(Exception):
    """One request failed; ``kind`` groups it in the error counts, ``broken`` drops the lane."""

    def __init__(self, kind: str, broken: bool = True):
        super().__init__(kind)
        self.kind = kind
        self.broken = broken


def _connection_kind(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, (asyncio.IncompleteReadError, BrokenPipeError, ConnectionAbortedError)):
        return "connection closed"
    if isinstance(exc, (asyncio.LimitOverrunError, ValueError)):
        return "bad response"  # not HTTP, or a header too long
    if isinstance(exc, OSError):
        return f"os error {exc.errno}" if exc.errno else "os error"
    return type(exc).__name__


class _Connection:
    __slots__ = ("reader", "writer", "timer", "timed_out")

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.timer = None
        self.timed_out = False

    def expire(self) -> None:
        """The request timer fired: abort the socket so the pending read fails at once."""
        self.timed_out = True
        transport = self.writer.transport
        if transport is not None:
            transport.abort()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        transport = self.writer.transport
        if transport is not None and not transport.is_closing():
            transport.close()


class RestTransport:
    """POST pre-encoded JSON bodies to one URL over keep-alive HTTP/1.1 connections."""

    exclusive = True  # one request per lane at a time

    def __init__(self, url: str, bodies: list[bytes], headers: dict[str, str], timeout: float):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"REST URL must be http:// or https://, not {url!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = parts.netloc.rsplit("@", 1)[-1]
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.messages = [
            (
                f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n{extra}\r\n"
            ).encode("latin-1")
            + body
            for body in bodies
        ]
        self.timeout = timeout

    async def open(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=1 << 20),
                self.timeout,
            )
        except asyncio.TimeoutError:
            raise RequestFailed("timeout") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise RequestFailed(_connection_kind(exc)) from None
        return _Connection(reader, writer)

    def close(self, lane: _Connection) -> None:
        lane.close()

    async def shutdown(self) -> None:
        """Lanes are closed one by one by their users; nothing is shared."""

    async def call(self, lane: _Connection, index: int) -> tuple[float, float]:
        """Send body ``index``; returns (sent, first response byte) times, raises RequestFailed."""
        loop = asyncio.get_running_loop()
        lane.timer = loop.call_later(self.timeout, lane.expire)
        try:
            lane.writer.write(self.messages[index % len(self.messages)])
            await lane.writer.drain()
            sent = now()
            head = await lane.reader.readuntil(b"\r\n\r\n")
            first = now()
            status, length, chunked, close = _parse_head(head)
            if chunked:
                await _read_chunked(lane.reader)
            elif length:
                await lane.reader.readexactly(length)
        except RequestFailed:
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise RequestFailed("timeout" if lane.timed_out else _connection_kind(exc)) from None
        finally:
            lane.timer.cancel()
            lane.timer = None
        if close:
            lane.close()
        if status != 200:
            raise RequestFailed(f"http {status}", broken=close)
        return sent, first

    def usable(self, lane: _Connection) -> bool:
        """False once the server closed the connection (``Connection: close``): open a new one."""
        transport = lane.writer.transport
        return transport is not None and not transport.is_closing()


def _parse_head(head: bytes) -> tuple[int, int, bool, bool]:
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        raise ValueError("not an HTTP response")
    status = int(status_line[1])
    length, chunked, close = 0, False, status_line[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            value = value.strip().lower()
            close = value == b"close" or (close and value != b"keep-alive")
    return status, length, chunked, close


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # trailers end with an empty line
            return
        await reader.readexactly(size + 2)


class GrpcTransport:
    """Predict calls with pre-serialized ``PredictRequest`` bytes over one multiplexed channel."""

    exclusive = False

    def __init__(self, target: str, bodies: list[bytes], metadata: dict[str, str], timeout: float):
        import grpc  # imported in gRPC workers only

        self.grpc = grpc
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        self.channel = grpc.aio.insecure_channel(target, options=options)
        self.predict = self.channel.unary_unary(GRPC_PREDICT)  # no serializers: bytes in, bytes out
        self.bodies = bodies
        self.metadata = tuple((k.lower(), v) for k, v in metadata.items()) or None
        self.timeout = timeout

    async def open(self):
        return self.channel

    def close(self, lane) -> None:
        """The channel outlives failures; :meth:`shutdown` closes it."""

    def usable(self, lane) -> bool:
        return True

    async def shutdown(self) -> None:
        await self.channel.close()

    async def call(self, lane, index: int) -> tuple[float, float]:
        try:
            await self.predict(
                self.bodies[index % len(self.bodies)], timeout=self.timeout, metadata=self.metadata
            )
        except self.grpc.aio.AioRpcError as exc:
            code = exc.code()
            kind = (
                "timeout" if code == self.grpc.StatusCode.DEADLINE_EXCEEDED else f"grpc {code.name}"
            )
            raise RequestFailed(kind, broken=False) from None
        return _UNMEASURED, _UNMEASURED  # the stub gives no send/receive split (reported missing)
