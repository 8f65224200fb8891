"""What every HTTP router and front shares: Request, Response, errors as responses, limits, timeouts.

The two routers (TF Serving's ``/v1/`` API in :mod:`.rest`, the management
API in :mod:`.management`) and the two fronts (:mod:`.http_standalone`,
:mod:`.http_tornado`) all speak these types, so each imports this small
module instead of one another: a ``ServingError`` becomes an HTTP answer here,
once (TF Serving's status table, ``{"error": message}`` body), and both fronts
time out idle and slow clients alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..core import tensors
from ..core.status import ServingError, unavailable

JSON_CONTENT_TYPE = "application/json"

# Longer than the idle timeout of common load balancers (60 s), so they never
# reuse a connection the server is closing.
KEEP_ALIVE_SECONDS = 75
# A client that has not sent its headers, or its body, by then is dropped (a 408 for the body).
HEADER_TIMEOUT_SECONDS = 30.0
BODY_TIMEOUT_SECONDS = 60.0

# The cancel message of a request whose client disconnected before its answer.
CLIENT_GONE = "tfserve: client disconnected"


@dataclass(slots=True)
class Response:
    """What every front writes back: status, headers (in order, names as sent) and body."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(slots=True)
class Request:
    """One HTTP request as the fronts hand it over; header names are lower-case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


def json_response(obj, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(
        status, [("Content-Type", JSON_CONTENT_TYPE), *(headers or ())], tensors.dumps(obj)
    )


def error_response(error: ServingError) -> Response:
    """A ServingError as TF Serving's REST API answers it: its HTTP status, ``{"error": message}``."""
    return json_response({"error": error.message}, error.http_status)


async def unless_client_gone(awaitable):
    """``await awaitable``, or None once its front cancelled it with :data:`CLIENT_GONE`.

    A front that sees its client go cancels the request's task: the inference
    (or decode) future it awaits is cancelled with it, so work still queued on
    the executor or in a batch is dropped instead of run for nobody.
    """
    try:
        return await awaitable
    except asyncio.CancelledError as exc:
        if exc.args != (CLIENT_GONE,):
            raise
        task = asyncio.current_task()
        if hasattr(task, "uncancel"):  # Python 3.11+: the cancel was consumed here
            task.uncancel()
        return None


class AdmissionLimit:
    """The requests one port is handling, bounded: past ``limit`` a request is refused at once.

    Queued work is what makes an overloaded server slow for everyone, so a
    port takes at most ``max_requests_in_flight`` requests at a time and
    answers the rest with an immediate 503, before reading their bodies.
    A front counts on its one event loop, so no lock is needed.
    """

    __slots__ = ("limit", "count")

    def __init__(self, limit: int):
        self.limit = limit
        self.count = 0

    def enter(self) -> bool:
        """Admit one more request, or say no (the caller answers :meth:`refusal`)."""
        if self.count >= self.limit:
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        self.count -= 1

    def refusal(self) -> Response:
        """The 503 for a request over the bound; its body was not read, so the connection closes."""
        error = unavailable(
            f"Too many requests in flight on this port (max_requests_in_flight={self.limit}); "
            "try again later"
        )
        response = error_response(error)
        response.headers.append(("Connection", "close"))
        return response


def body_too_large(size: int | None, limit: int) -> Response:
    """The 413 every front sends for a body over ``limit`` (known before reading it, or found after)."""
    got = f"{size} bytes exceed" if size is not None else "it exceeds"
    message = f"Request body too large: {got} the limit of {limit} bytes (rest_api_max_body_bytes)."
    return json_response({"error": message}, 413, [("Connection", "close")])
