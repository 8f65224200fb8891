"""Numeric REST predict bodies -> tensors in compiled code, skipping Python numbers.

Most predict bodies are numbers only (``{"instances": [[0.1, ...]]}``).
orjson makes a Python float per value and numpy reads them back (~24 us for
784 floats); simdjson's ``Array.as_buffer`` writes the doubles or 64-bit
integers straight into one buffer (~9 us). This module takes only the bodies
it can decode with the same answer as the general decoder; for everything
else (strings, b64, bools, nulls, objects per row, ragged or empty lists,
escapes, duplicate or unknown keys, non-finite or out-of-range numbers,
half-precision types) :meth:`NumericBody.decode` answers None and the caller
takes :func:`~.json_decode.decode_predict_request`, which words the errors as
TensorFlow Serving does.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import simdjson

from ..signatures import SignatureInfo
from .budget import TensorBudget, charge
from .dtypes import _T, numpy_dtype
from .json_decode import _NUMERIC_LIMITS

_BOM = b"\xef\xbb\xbf"
_KEYS = frozenset({"signature_name", "instances", "inputs"})
# Bodies up to this size reuse the thread's parser (its buffers grow to the largest body
# parsed); bigger ones get a parser of their own, freed with the request.
_REUSE_BYTES = 1 << 20
# Quotes of a numeric body are its keys (and signature name): a few dozen named inputs at most.
_MAX_QUOTES = 64
# What ``as_buffer`` writes for each dtype this path takes: the general decoder's fast
# path reads the same values (all JSON integers as int64, any float makes it float64).
# Half and bfloat16 are left out: numpy's int64 -> half conversions round differently.
_BUFFERS = {
    _T.DT_FLOAT: ("d", np.float64),
    _T.DT_DOUBLE: ("d", np.float64),
    _T.DT_INT8: ("i", np.int64),
    _T.DT_INT16: ("i", np.int64),
    _T.DT_INT32: ("i", np.int64),
    _T.DT_INT64: ("i", np.int64),
    _T.DT_UINT8: ("i", np.int64),
    _T.DT_UINT16: ("i", np.int64),
    _T.DT_UINT32: ("i", np.int64),
    _T.DT_UINT64: ("u", np.uint64),
}
# simdjson's refusals: wrong element type, number out of range, unparsable document.
_REFUSED = (TypeError, ValueError, RuntimeError)
_local = threading.local()


def _parse(body: bytes):
    if len(body) > _REUSE_BYTES:
        return simdjson.Parser().parse(body)
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    try:
        return parser.parse(body)
    except RuntimeError:
        # A document of an earlier body is still referenced (say, by a traceback):
        # the parser cannot be reused until it goes, so this thread takes a new one.
        parser = _local.parser = simdjson.Parser()
        return parser.parse(body)


class NumericBody:
    """A predict body parsed by simdjson whose tensors are not decoded yet.

    The document lives in the thread's parser: :meth:`decode` must run on the
    thread that parsed it, before that thread parses another body.
    """

    __slots__ = ("_body", "_doc", "signature_name")

    def __init__(self, body: bytes, doc, signature_name: str):
        self._body, self._doc, self.signature_name = body, doc, signature_name

    def decode(
        self, signature: SignatureInfo, budget: TensorBudget | None = None
    ) -> tuple[dict[str, np.ndarray], bool] | None:
        """``(tensors by alias, row format)`` as the general decoder makes them, or None.

        Each tensor is charged to ``budget`` before it is built, in the order
        the general decoder charges them, so a refusal reads the same.
        """
        doc, self._doc = self._doc, None
        columns = _columns(doc, signature)
        if columns is None:
            return None
        row_format, values = columns
        shapes = {}
        arrays = 0
        for name, value in values.items():
            dense = _dense_shape(value)
            if dense is None:
                return None
            shapes[name], count = dense
            arrays += count
        # Every array the body holds is one of the tensors' containers: no list hides
        # among the leaves (as_buffer flattens nested lists) nor inside a string.
        if count_bytes(self._body, b"[", arrays) != arrays:
            return None
        tensors = {}
        for name in sorted(values):
            datatype = signature.inputs[name].dtype
            charge(budget, shapes[name], datatype)
            tensor = _as_tensor(values[name], datatype)
            if tensor is None:
                return None
            tensors[name] = tensor.reshape(shapes[name])
        return tensors, row_format


class OneRowBody:
    """``{"instances": [[n, n, ...]]}``: one row of numbers, the body most clients send.

    The object around the row is matched as bytes (:func:`_one_row`), so only the
    row itself is parsed, and read with one ``as_buffer``: no object proxies to
    walk for keys and nesting. It decodes exactly as :class:`NumericBody` would
    (the same checks and budget charge, through the same helpers), and declines
    the same bodies.
    """

    __slots__ = ("_row",)
    signature_name = ""

    def __init__(self, row: bytes):
        self._row = row

    def decode(
        self, signature: SignatureInfo, budget: TensorBudget | None = None
    ) -> tuple[dict[str, np.ndarray], bool] | None:
        if len(signature.inputs) != 1:
            return None
        ((name, spec),) = signature.inputs.items()
        try:
            row = _parse(self._row)
        except _REFUSED:
            return None
        size = len(row)
        if not size:
            return None
        shape = (1, size)
        charge(budget, shape, spec.dtype)
        tensor = _as_tensor(row, spec.dtype)
        if tensor is None:
            return None
        return {name: tensor.reshape(shape)}, True


_WS = rb"[ \t\n\r]*"  # JSON's whitespace, not regex's \s (which has \f and \v too)
_ONE_ROW_HEAD = re.compile(_WS + rb"\{" + _WS + rb'"instances"' + _WS + rb":" + _WS + rb"\[" + _WS)
_ONE_ROW_TAIL = re.compile(rb"\]" + _WS + rb"\]" + _WS + rb"\}" + _WS + rb"\Z")
_TAIL_BYTES = 64


def _one_row(body: bytes) -> OneRowBody | None:
    """The row of a ``{"instances": [[...]]}`` body, or None for any other body."""
    head = _ONE_ROW_HEAD.match(body)
    if head is None or body[head.end() : head.end() + 1] != b"[":
        return None
    start = head.end()
    tail = _ONE_ROW_TAIL.search(body, max(start + 1, len(body) - _TAIL_BYTES))
    if tail is None:
        return None
    stop = tail.start()  # the row's closing bracket
    for byte in (b"[", b"]", b"{", b"}", b'"'):  # nothing but numbers between the brackets
        if body.find(byte, start + 1, stop) >= 0:
            return None
    return OneRowBody(body[start : stop + 1])


def parse_numeric(body: bytes) -> NumericBody | OneRowBody | None:
    """A body this module may decode, parsed; None for any other (malformed ones included)."""
    one_row = _one_row(body)
    if one_row is not None:
        return one_row
    if b"\\" in body or body.startswith(_BOM):  # escapes: orjson and simdjson differ on some
        return None
    if count_bytes(body, b'"', _MAX_QUOTES) > _MAX_QUOTES:  # strings or b64: spare the parse
        return None
    try:
        doc = _parse(body)
    except _REFUSED:
        return None
    if type(doc) is not simdjson.Object:
        return None
    keys = list(doc.keys())
    unique = set(keys)
    if (
        len(unique) != len(keys)
        or not unique <= _KEYS
        or len(unique & {"instances", "inputs"}) != 1
    ):
        return None
    signature_name = doc.get("signature_name", "")
    if type(signature_name) is not str:
        return None
    return NumericBody(body, doc, signature_name)


def count_bytes(body: bytes, byte: bytes, most: int) -> int:
    """Occurrences of ``byte`` in ``body``, counting no further than ``most + 1``.

    A few ``find`` calls (memchr) instead of ``bytes.count``, which reads every
    byte one by one: 2 us for a 784-float row, where the few brackets and
    quotes of a numeric body take 0.2 us to find.
    """
    count = 0
    at = body.find(byte)
    while at >= 0 and count <= most:
        count += 1
        at = body.find(byte, at + 1)
    return count


def _columns(doc, signature: SignatureInfo):
    """``(row format, {alias: array})`` when the body names the signature's inputs plainly."""
    names = set(signature.inputs)
    if "instances" in doc:
        if len(names) != 1:
            return None
        return True, {next(iter(names)): doc["instances"]}
    value = doc["inputs"]
    if type(value) is simdjson.Array and len(names) == 1:
        return False, {next(iter(names)): value}
    if type(value) is not simdjson.Object or not names:
        return None
    keys = list(value.keys())
    if len(keys) != len(names) or set(keys) != names:
        return None
    return False, {name: value[name] for name in names}


def _dense_shape(value) -> tuple[tuple[int, ...], int] | None:
    """The shape of a non-empty rectangular nesting of arrays, and how many arrays it has."""
    shape = []
    first = value
    while type(first) is simdjson.Array:
        if not len(first):
            return None
        shape.append(len(first))
        first = first[0]
    if not shape:
        return None
    level = [value]
    arrays = 0
    for depth, size in enumerate(shape):
        if any(type(a) is not simdjson.Array or len(a) != size for a in level):
            return None
        arrays += len(level)
        if depth + 1 < len(shape):
            level = [child for a in level for child in a]
    return tuple(shape), arrays


def _as_tensor(value, datatype: int) -> np.ndarray | None:
    """The flat values as ``datatype`` when every one is a number comfortably in its range."""
    if datatype not in _BUFFERS:
        return None
    of_type, wide = _BUFFERS[datatype]
    try:
        flat = np.frombuffer(value.as_buffer(of_type=of_type), dtype=wide)
    except _REFUSED:
        return None
    low, high = _NUMERIC_LIMITS[datatype]
    if not (low <= flat.min() and flat.max() <= high):
        return None
    return flat.astype(numpy_dtype(datatype))
