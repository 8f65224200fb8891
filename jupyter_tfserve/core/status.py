"""The one error type of jupyter-tfserve, with TensorFlow Serving's status codes.

Every layer raises :class:`ServingError`; each protocol maps it exactly once
(REST: HTTP status + ``{"error": msg}``, gRPC: status code + details).  The
numeric codes are the canonical ones shared by TensorFlow, absl and gRPC, so
the gRPC layer can convert with ``grpc.StatusCode`` by value.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """Canonical status codes (``tensorflow/core/protobuf/error_codes.proto``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# TF Serving's http_rest_api_util ToHTTPStatusCode, verbatim.
HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """An error with a TF Serving status code and a message clients can read."""

    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = Code(code)
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


# Error messages quote what a client sent up to this many characters, then "...": a
# message costs no more to build than the request took to read, however big.
QUOTE_LIMIT = 1024


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` as an error message quotes it: cut at ``limit`` characters, "..." marking the cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def invalid_argument(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(Code.FAILED_PRECONDITION, message)


def unavailable(message: str) -> ServingError:
    return ServingError(Code.UNAVAILABLE, message)


def internal(message: str) -> ServingError:
    return ServingError(Code.INTERNAL, message)


def from_exception(exc: BaseException) -> ServingError:
    """Wrap anything raised while serving; TensorFlow's own errors keep their code."""
    if isinstance(exc, ServingError):
        return exc
    code = getattr(exc, "error_code", None)  # tf.errors.OpError
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(code, int) and code in Code._value2member_map_:
        return ServingError(Code(code), message)
    return ServingError(Code.INTERNAL, message)
