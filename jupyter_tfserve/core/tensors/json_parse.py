"""Request bodies -> Python values, with TF Serving's parse errors and its non-finite numbers."""

from __future__ import annotations

import json
import re

import orjson

from ..status import ServingError, invalid_argument
from .float_text import _INF


class _NumberTooBig(ValueError):
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


# The most characters a JSON integer within 64 bits takes ("-9223372036854775808").
_INT64_CHARS = 20


def _parse_int(text: str):
    if len(text) > _INT64_CHARS:
        # Beyond 64 bits whatever its digits; int() of thousands of digits raises (or is slow).
        return _parse_float(text)
    value = int(text)
    if -(1 << 63) <= value < (1 << 64):
        return value
    # Integers beyond 64 bits are doubles, as every 64-bit JSON reader sees them.
    return _parse_float(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise _NumberTooBig(text)
    return value


_STD_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float)
_TOKENS_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)

# Messages of TensorFlow Serving's JSON reader, keyed by the stdlib message they correspond to.
_PARSE_MESSAGES = [
    ("Expecting property name", "Missing a name for object member."),
    ("Illegal trailing comma before end of object", "Missing a name for object member."),
    ("Expecting ':' delimiter", "Missing a colon after a name of object member."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid control character", "Invalid encoding in string."),
    ("Invalid \\uXXXX escape", "Incorrect hex digit after \\u escape in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
    ("Extra data", "The document root must not be followed by other values."),
    ("Unexpected UTF-8 BOM", "Invalid value."),
]


def _parse_error(message: str, offset: int) -> ServingError:
    return invalid_argument(f"JSON Parse error: {message} at offset: {offset}")


def _innermost_container(text: str, pos: int) -> str:
    stack = []
    for match in _TOKENS_RE.finditer(text, 0, pos):
        tok = match.group()
        if tok in "[{":
            stack.append(tok)
        elif tok in "]}":
            if stack:
                stack.pop()
    return stack[-1] if stack else "["


def bool_free(body: bytes) -> bool:
    """Whether a JSON body cannot hold a ``true`` or ``false`` literal.

    Single bytes are found with ``memchr`` (0.1 us for an 8 KB row), whole
    words at 8 us: most bodies (``{"instances": [[...numbers...]]}``) have
    neither the ``u`` of ``true`` nor the ``l`` of ``false`` and never need
    the word search.
    """
    if b"u" not in body and b"l" not in body:
        return True
    return b"true" not in body and b"false" not in body


def parse_json(body: bytes) -> object:
    """Parse a request body; ``NaN``, ``Infinity`` and ``-Infinity`` are numbers.

    orjson handles the common case; bodies it refuses (non-finite numbers,
    raw non-UTF-8 bytes inside strings) are retried with the stdlib parser,
    and real syntax errors get TensorFlow Serving's wording and byte offset.
    """
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        first_error = exc
    raw = bytes(body)
    if not raw.strip(b" \t\r\n"):
        raise invalid_argument("JSON Parse error: The document is empty")
    # Strings may carry arbitrary bytes; surrogateescape keeps them, and the
    # DT_STRING conversion turns them back into the original bytes.
    text = raw.decode("utf-8", "surrogateescape")
    try:
        return _STD_DECODER.decode(text)
    except _NumberTooBig as exc:
        pos = first_error.pos if "infinity" in str(first_error) else max(0, text.find(exc.text))
        raise _parse_error("Number too big to be stored in double.", pos) from None
    except RecursionError:
        raise invalid_argument("JSON Parse error: The document is nested too deeply") from None
    except json.JSONDecodeError as exc:
        msg = exc.msg
        offset = len(text[: exc.pos].encode("utf-8", "surrogateescape"))
        if msg.startswith("Unterminated string"):
            offset = len(raw)
        if msg.startswith("Expecting ',' delimiter"):
            if _innermost_container(text, exc.pos) == "{":
                message = "Missing a comma or '}' after an object member."
            else:
                message = "Missing a comma or ']' after an array element."
        else:
            message = next((m for key, m in _PARSE_MESSAGES if msg.startswith(key)), None)
            message = message or "Invalid value."
        raise _parse_error(message, offset) from None
