"""The one tensor codec of jupyter-tfserve: JSON and TensorProto <-> numpy.

Protocols never convert tensors themselves; they call this module, so REST,
gRPC and warmup replay agree on every dtype, every number format and every
error message.  Clients of TensorFlow Serving parse these bodies and grep these
messages, so the behaviour follows TensorFlow Serving wherever a client can
tell the difference:

* REST request decoding follows its JSON tensor rules: the tensor shape comes
  from the first element of every nesting level, every value is type-checked
  against the signature dtype (ints are fine for floats, floats are not fine
  for ints, bools are never numbers), ``{"b64": ...}`` carries binary strings
  and ``NaN``/``Infinity`` are numbers.  Request shapes are *not* checked
  against the signature's declared shape.
* Floats are written with 6 significant digits when that reads back as the
  same value in the tensor's own dtype, otherwise with 9 (float32) or 17
  (float64) digits; whole numbers keep a ``.0`` so clients see a float.
* TensorProtos use the typed ``*_val`` fields, like a Predict response.

Every failure raises :class:`ServingError` with TensorFlow Serving's status code
and wording.  Nothing here runs TensorFlow ops: the hot paths are numpy and
orjson, with pure-Python fallbacks only where exact error messages are needed.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from collections.abc import Callable
from decimal import Decimal

import ml_dtypes
import numpy as np
import orjson

from .native_logs import filtered_stderr
from .signatures import SignatureInfo
from .status import Code, ServingError, invalid_argument

with filtered_stderr():  # TensorFlow's protos import TensorFlow
    from tensorflow.core.example import example_pb2, feature_pb2
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import input_pb2

__all__ = [
    "datatype_name",
    "datatype_of",
    "decode_examples",
    "decode_predict_request",
    "dumps",
    "encode_classify_response",
    "encode_predict_response",
    "encode_regress_response",
    "input_to_serialized_examples",
    "ndarray_to_tensor_proto",
    "numpy_dtype",
    "parse_json",
    "tensor_proto_to_ndarray",
]

# ---------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------

_T = types_pb2


def _quantized(name: str, base: type) -> np.dtype:
    # TensorFlow represents quantized dtypes in numpy as one-field structs; using
    # the same dtypes keeps arrays interchangeable with tf.make_ndarray's.
    return np.dtype([(name, base)])


_NUMPY_DTYPES: dict[int, np.dtype] = {
    _T.DT_FLOAT: np.dtype(np.float32),
    _T.DT_DOUBLE: np.dtype(np.float64),
    _T.DT_INT32: np.dtype(np.int32),
    _T.DT_UINT8: np.dtype(np.uint8),
    _T.DT_INT16: np.dtype(np.int16),
    _T.DT_INT8: np.dtype(np.int8),
    _T.DT_STRING: np.dtype(object),
    _T.DT_COMPLEX64: np.dtype(np.complex64),
    _T.DT_INT64: np.dtype(np.int64),
    _T.DT_BOOL: np.dtype(np.bool_),
    _T.DT_QINT8: _quantized("qint8", np.int8),
    _T.DT_QUINT8: _quantized("quint8", np.uint8),
    _T.DT_QINT32: _quantized("qint32", np.int32),
    _T.DT_BFLOAT16: np.dtype(ml_dtypes.bfloat16),
    _T.DT_QINT16: _quantized("qint16", np.int16),
    _T.DT_QUINT16: _quantized("quint16", np.uint16),
    _T.DT_UINT16: np.dtype(np.uint16),
    _T.DT_COMPLEX128: np.dtype(np.complex128),
    _T.DT_HALF: np.dtype(np.float16),
    _T.DT_UINT32: np.dtype(np.uint32),
    _T.DT_UINT64: np.dtype(np.uint64),
    _T.DT_FLOAT8_E5M2: np.dtype(ml_dtypes.float8_e5m2),
    _T.DT_FLOAT8_E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    _T.DT_FLOAT8_E4M3FNUZ: np.dtype(ml_dtypes.float8_e4m3fnuz),
    _T.DT_FLOAT8_E4M3B11FNUZ: np.dtype(ml_dtypes.float8_e4m3b11fnuz),
    _T.DT_FLOAT8_E5M2FNUZ: np.dtype(ml_dtypes.float8_e5m2fnuz),
    _T.DT_INT4: np.dtype(ml_dtypes.int4),
    _T.DT_UINT4: np.dtype(ml_dtypes.uint4),
}
_DATATYPES: dict[np.dtype, int] = {v: k for k, v in _NUMPY_DTYPES.items()}

_FLOAT8_TYPES = frozenset(
    {
        _T.DT_FLOAT8_E5M2,
        _T.DT_FLOAT8_E4M3FN,
        _T.DT_FLOAT8_E4M3FNUZ,
        _T.DT_FLOAT8_E4M3B11FNUZ,
        _T.DT_FLOAT8_E5M2FNUZ,
    }
)
# Types whose TensorProto values live in ``int_val``.
_INT_VAL_TYPES = frozenset(
    {
        _T.DT_INT32,
        _T.DT_INT16,
        _T.DT_INT8,
        _T.DT_UINT8,
        _T.DT_UINT16,
        _T.DT_QINT8,
        _T.DT_QUINT8,
        _T.DT_QINT16,
        _T.DT_QUINT16,
        _T.DT_QINT32,
        _T.DT_INT4,
        _T.DT_UINT4,
    }
)
_QUANTIZED_BASE = {
    _T.DT_QINT8: np.dtype(np.int8),
    _T.DT_QUINT8: np.dtype(np.uint8),
    _T.DT_QINT16: np.dtype(np.int16),
    _T.DT_QUINT16: np.dtype(np.uint16),
    _T.DT_QINT32: np.dtype(np.int32),
}


def numpy_dtype(datatype: int) -> np.dtype:
    """The numpy dtype holding values of TF ``DataType`` *datatype*.

    DT_STRING maps to ``object`` arrays of ``bytes`` (TF strings are bytes);
    bfloat16 and float8 come from ml_dtypes, as in TensorFlow itself.
    """
    try:
        return _NUMPY_DTYPES[datatype]
    except KeyError:
        raise invalid_argument(f"Unsupported tensor data type: {datatype_name(datatype)}") from None


def datatype_of(array: np.ndarray) -> int:
    """The TF ``DataType`` for *array*'s dtype; any object/bytes/str array is DT_STRING."""
    dtype = np.asarray(array).dtype
    if dtype.kind in "OSU":
        return _T.DT_STRING
    try:
        return _DATATYPES[dtype]
    except KeyError:
        raise invalid_argument(f"Unsupported numpy dtype for a tensor: {dtype}") from None


def datatype_name(datatype: int) -> str:
    """``DT_FLOAT``-style name of a TF ``DataType`` value (as in signature metadata)."""
    try:
        return types_pb2.DataType.Name(datatype)
    except ValueError:
        return f"DT_INVALID({datatype})"


def _dtype_string(datatype: int) -> str:
    """TensorFlow's short dtype spelling (``float``, ``int32``), used in error messages."""
    name = datatype_name(datatype)
    if name.endswith("_REF"):
        return name[3:-4].lower() + "_ref"
    return name[3:].lower() if name.startswith("DT_") else name


# ---------------------------------------------------------------------------
# Float formatting
# ---------------------------------------------------------------------------

_F32 = struct.Struct("<f")
_FMT6 = "%.6g".__mod__
_FMT9 = "%.9g".__mod__
_FMT17 = "%.17g".__mod__
_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_INF = math.inf
_FLT_MAX = float(np.finfo(np.float32).max)

# Rounding modes of the float writer, by how a dtype round-trips.
_M_F32 = 0  # 6 digits if they read back as the same float32, else 9
_M_F64 = 1  # 6 digits if they read back as the same float64, else 17
_M_SHORT = 2  # <= 11-bit mantissas (half, bfloat16, float8): 6 digits always read back


def _to_f32(value: float) -> float:
    try:
        return _F32.unpack(_F32.pack(value))[0]
    except OverflowError:
        return math.copysign(_INF, value)


def _fmt_float(value: float, mode: int) -> str:
    """One float as a JSON number token, TF Serving style (reference for the fast paths)."""
    if value != value:
        return "NaN"
    if value == _INF:
        return "Infinity"
    if value == -_INF:
        return "-Infinity"
    text = _FMT6(value)
    if mode == _M_F32:
        if _to_f32(float(text)) != value:
            text = _FMT9(value)
    elif mode == _M_F64:
        if float(text) != value:
            text = _FMT17(value)
    if "." in text or "e" in text:
        return text
    return text + ".0"


def _as_f32(values: list[float]) -> list[float] | tuple[float, ...]:
    """``values`` rounded to float32 in one struct round trip (a few times cheaper than numpy for a few values)."""
    layout = f"<{len(values)}f"
    try:
        return struct.unpack(layout, struct.pack(layout, *values))
    except OverflowError:  # one rounds past float32's range: round each on its own
        return [_to_f32(value) for value in values]


def _float_mode(dtype: np.dtype) -> int:
    if dtype == np.float32:
        return _M_F32
    if dtype == np.float64:
        return _M_F64
    return _M_SHORT


def _float_tokens_small(flat: np.ndarray, mode: int) -> list[str]:
    """Tokens for a few floats: per-element Python formatting is cheapest here."""
    if mode == _M_SHORT:
        with np.errstate(invalid="ignore"):
            flat = flat.astype(np.float32)
    values = flat.tolist()
    tokens = list(map(_FMT6, values))
    if mode == _M_F32:
        back = _as_f32(list(map(float, tokens)))
        tokens = [t if b == v else _FMT9(v) for t, b, v in zip(tokens, back, values, strict=True)]
    elif mode == _M_F64:
        tokens = [t if float(t) == v else _FMT17(v) for t, v in zip(tokens, values, strict=True)]
    return [t if ("." in t or "e" in t) else (_SPECIAL.get(t) or t + ".0") for t in tokens]


# Vectorised writer.  Decimal digits are computed in float64 arithmetic, whose
# error (< 3e-16 relative) is far below the rounding decisions it has to make;
# the few values that land too close to a decision are flagged and formatted
# one by one, so the output is identical to _fmt_float for every value.
_P10_OFF = 64
_P10 = np.array([float(f"1e{k}") for k in range(-_P10_OFF, _P10_OFF + 1)])
_I10 = np.array([10**k for k in range(19)], dtype=np.int64)
_ROUND_TOL = {6: 1e-9, 9: 1e-6}
_TOKEN_WIDTH = 29  # sign, "0.000", 9 digits with 8 dots between, ".0", "e+XX"
_CHUNK = 1 << 16
_SMALL = 512  # below this, per-value Python formatting is cheaper


def _round_sig(ax: np.ndarray, e: np.ndarray, digits: int):
    """Round positive *ax* (with decimal exponent *e*) to *digits* significant digits.

    Returns (mantissa as int64 in [10**(digits-1), 10**digits), exponent, unsure).
    """
    scaled = ax * _P10[(digits - 1) - e + _P10_OFF]
    floor = np.floor(scaled)
    frac = scaled - floor
    unsure = (
        (np.abs(frac - 0.5) < _ROUND_TOL[digits])
        | (floor < 10 ** (digits - 1))
        | (floor >= 10**digits)
    )
    mant = np.minimum(np.maximum(floor, 0), 10**digits).astype(np.int64) + (frac > 0.5)
    carry = mant >= 10**digits
    mant -= carry * (10**digits - 10 ** (digits - 1))
    return mant, e + carry, unsure


def _put(out: np.ndarray, rows: np.ndarray, tokens: list[bytes]) -> None:
    """Overwrite the columns *rows* of the transposed token matrix *out* with *tokens*."""
    width = out.shape[0]
    block = np.array(tokens, dtype=f"S{width}").view(np.uint8).reshape(len(tokens), width)
    out[:, rows] = block.T


def _write_float_tokens(x: np.ndarray, mode: int, out: np.ndarray) -> None:
    """Write the JSON token of each float64 value of *x* into a column of *out*.

    *out* is a (token width, n) uint8 matrix of zeros; zero bytes are dropped
    later.  Column-per-value keeps every write below contiguous.
    """
    # Selections below are arithmetic blends rather than np.where, which is
    # several times slower on unpredictable masks.
    neg = np.signbit(x)
    ax = np.abs(x)
    finite = np.isfinite(ax)
    regular = finite & (ax != 0)
    axr = ax
    if not regular.all():
        axr = ax.copy()
        axr[~regular] = 1.0
    e = np.floor(np.log10(axr)).astype(np.int64)
    e = np.minimum(np.maximum(e, -50), 45)
    e -= axr < _P10[e + _P10_OFF]
    e += axr >= _P10[e + 1 + _P10_OFF]
    mant6, e6, unsure = _round_sig(axr, e, 6)
    if mode == _M_SHORT:
        mant, exp, digits = mant6, e6, 6
    else:
        # The 6-digit decimal as a double; one of the two factors is 1.0, so
        # this is a single correctly rounded operation.
        j = e6 - 5
        jp = np.minimum(np.maximum(j, 0), _P10_OFF)
        jn = np.minimum(np.maximum(-j, 0), _P10_OFF)
        d6 = mant6 * _P10[jp + _P10_OFF] / _P10[jn + _P10_OFF]
        if mode == _M_F64:
            # Exact powers of ten make d6 the correctly rounded double; outside
            # that range the value is formatted by itself.  Values that need 17
            # digits are printed by the C formatter in one batch.
            unsure |= (j < -22) | (j > 22)
            long = (d6 != axr) & ~unsure & regular
            mant, exp, digits = mant6, e6, 6
        else:
            # 6 digits round-trip iff they lie strictly between the midpoints to
            # the neighbouring float32 values (both exact in float64).
            v32 = axr.astype(np.float32)
            with np.errstate(over="ignore"):
                lo = np.nextafter(v32, np.float32(0)).astype(np.float64)
                hi = np.nextafter(v32, np.float32(np.inf)).astype(np.float64)
            mid_lo = (axr + lo) * 0.5
            mid_hi = (axr + hi) * 0.5
            tol = d6 * 1e-15  # > 4 ulps
            unsure |= (np.abs(d6 - mid_lo) <= tol) | (np.abs(d6 - mid_hi) <= tol)
            use6 = (d6 > mid_lo) & (d6 < mid_hi)
            mant9, e9, unsure9 = _round_sig(axr, e, 9)
            unsure |= unsure9 & ~use6
            mant = mant9 + (mant6 * 1000 - mant9) * use6
            exp = e9 + (e6 - e9) * use6
            digits = 9 - 3 * use6
    if mode != _M_F32:
        mant = mant * 1000  # all mantissas as 9 digits
    _write_decimal(out, neg, mant, exp, digits)
    unsure &= regular
    if not regular.all():
        nan = np.isnan(x)
        zero = finite & ~regular
        inf = ~finite & ~nan
        for mask, token in (
            (zero & ~neg, b"0.0"),
            (zero & neg, b"-0.0"),
            (nan, b"NaN"),
            (inf & ~neg, b"Infinity"),
            (inf & neg, b"-Infinity"),
        ):
            rows = np.flatnonzero(mask)
            if rows.size:
                _put(out, rows, [token] * rows.size)
    if mode == _M_F64 and long.any():
        rows = np.flatnonzero(long)
        tokens = list(map(_FMT17, x[rows].tolist()))
        _put(out, rows, [(t if "." in t or "e" in t else t + ".0").encode() for t in tokens])
    if unsure.any():
        rows = np.flatnonzero(unsure)
        _put(out, rows, [_fmt_float(v, mode).encode() for v in x[rows].tolist()])


def _write_decimal(out: np.ndarray, neg, mant9, exp, digits) -> None:
    """Lay out ``mant9 * 10**(exp - 8)`` like printf ``%.<digits>g`` (+ ``.0``) in *out*.

    Every byte has a fixed slot (row of *out*); unused slots stay 0 and are
    squeezed out later, which keeps the whole layout vectorised.
    """
    u8 = np.uint8
    digit = np.empty((9, mant9.shape[0]), u8)
    rest = mant9
    trailing = np.ones(mant9.shape[0], bool)
    tz = np.zeros(mant9.shape[0], np.int64)
    for c in range(8, -1, -1):
        quot = rest // 10  # fast division by a constant (np.divmod is not)
        d = rest - quot * 10
        rest = quot
        digit[c] = d
        trailing &= d == 0
        tz += trailing
    nd = 9 - tz  # significant digits after dropping trailing zeros
    sci = (exp < -4) | (exp >= digits)
    fixpos = ~sci & (exp >= 0)
    fixneg = ~sci & (exp < 0)
    whole = fixpos & (nd <= exp + 1)  # an integer: all digits up to exp, then ".0"
    shown = nd + (exp + 1 - nd) * whole
    digit += u8(48)
    out[0] = neg * u8(45)  # '-'
    out[1] = fixneg * u8(48)  # '0'
    out[2] = fixneg * u8(46)  # '.'
    lead_zeros = (-exp - 1) * fixneg
    for i in range(3):
        out[3 + i] = (lead_zeros > i) * u8(48)
    dot_at = (exp + 1) * (fixpos & ~whole) + (sci & (nd > 1)) - 1
    for c in range(9):
        out[6 + 2 * c] = (c < shown) * digit[c]
        if c < 8:
            out[7 + 2 * c] = (dot_at == c) * u8(46)
    out[23] = whole * u8(46)
    out[24] = whole * u8(48)
    aexp = np.abs(exp)
    out[25] = sci * u8(101)  # 'e'
    out[26] = sci * (43 + 2 * (exp < 0)).astype(u8)  # '+' or '-'
    out[27] = sci * (aexp // 10 + 48).astype(u8)
    out[28] = sci * (aexp % 10 + 48).astype(u8)


def _layout(
    n: int,
    inner: tuple[int, ...],
    row_sep: bool,
    width: int,
    fill: Callable[[int, int, np.ndarray], None],
) -> bytes:
    """Nest *n* fixed-width tokens into JSON arrays of shape *inner*, vectorised.

    Brackets, commas and the tokens go into one zero-padded byte matrix per
    chunk (a column per value); dropping the zero bytes yields the text.  With
    *row_sep*, groups of ``prod(inner)`` tokens are separated by newlines
    instead of commas, so the caller can split the text into rows.
    """
    k = len(inner)
    blocks = [math.prod(inner[j:]) for j in range(k)]
    group = math.prod(inner)
    parts = []
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        idx = np.arange(start, stop)
        mat = np.zeros((2 * k + width + 1, stop - start), np.uint8)
        for j, block in enumerate(blocks):
            mat[j] = (idx % block == 0) * np.uint8(91)  # '['
            mat[k + width + (k - 1 - j)] = ((idx + 1) % block == 0) * np.uint8(93)  # ']'
        fill(start, stop, mat[k : k + width])
        sep = mat[-1]
        sep[:] = 44  # ','
        if row_sep:
            sep[(idx + 1) % group == 0] = 10  # '\n'
        if stop == n:
            sep[-1] = 0
        flat = np.ascontiguousarray(mat.T)
        parts.append(flat[flat != 0].tobytes())
    return b"".join(parts)


# ---------------------------------------------------------------------------
# Tensor -> JSON text
# ---------------------------------------------------------------------------

_encode_str = json.encoder.encode_basestring  # C-accelerated, keeps non-ASCII as is


def _b64_token(raw: bytes) -> str:
    return '{"b64":"' + base64.b64encode(raw).decode("ascii") + '"}'


def _string_token(value, as_bytes: bool) -> str:
    if isinstance(value, str):
        return _b64_token(_to_bytes(value)) if as_bytes else _encode_str(value)
    if not isinstance(value, (bytes, bytearray, memoryview)):
        return _encode_str(str(value))
    raw = bytes(value)
    if as_bytes:
        return _b64_token(raw)
    try:
        return _encode_str(raw.decode("utf-8"))
    except UnicodeDecodeError:
        # JSON text cannot carry these bytes as a string; base64 keeps them intact.
        return _b64_token(raw)


def _empty_json(shape: tuple[int, ...]) -> str:
    """Text of a tensor with no elements (some dim is 0)."""
    if shape[0] == 0:
        return "[]"
    return "[" + ",".join([_empty_json(shape[1:])] * shape[0]) + "]"


def _nest_rows(tokens: list[str], shape: tuple[int, ...]) -> list[str]:
    """Group flat row-major *tokens* into the texts of the ``shape[0]`` rows."""
    if 0 in shape:
        return [_empty_json(shape[1:])] * shape[0] if len(shape) > 1 else []
    items = tokens
    for d in reversed(shape[1:]):
        items = ["[" + ",".join(items[i : i + d]) + "]" for i in range(0, len(items), d)]
    return items


def _tensor_tokens(arr: np.ndarray, as_bytes: bool) -> list[str] | None:
    """Python tokens for the small/irregular paths; None when the vectorised float path applies."""
    kind = arr.dtype.kind
    if kind in "OSU":
        return [_string_token(v, as_bytes) for v in arr.ravel().tolist()]
    if kind == "b":
        return ["true" if v else "false" for v in arr.ravel().tolist()]
    if kind in "iu":
        return [str(v) for v in arr.ravel().tolist()]
    datatype = _DATATYPES.get(arr.dtype)
    if datatype in _INT_VAL_TYPES:  # quantized / int4 / uint4
        base = _QUANTIZED_BASE.get(datatype)
        ints = arr.view(base) if base is not None else arr.astype(np.int64)
        return [str(v) for v in ints.ravel().tolist()]
    if kind == "f" or datatype in (_T.DT_BFLOAT16, _T.DT_HALF) or datatype in _FLOAT8_TYPES:
        if arr.size >= _SMALL:
            return None
        return _float_tokens_small(arr.ravel(), _float_mode(arr.dtype))
    dtname = _dtype_string(datatype) if datatype is not None else str(arr.dtype)
    raise invalid_argument(f"Failed to write JSON value for tensor type: {dtname}")


def _float_layout(arr: np.ndarray, rows: bool) -> bytes:
    mode = _float_mode(arr.dtype)
    flat = arr.ravel()
    if flat.dtype != np.float64:
        with np.errstate(invalid="ignore"):  # signalling NaNs widen quietly
            flat = flat.astype(np.float64)

    def fill(start: int, stop: int, out: np.ndarray) -> None:
        _write_float_tokens(flat[start:stop], mode, out)

    inner = arr.shape[1:] if rows else arr.shape
    return _layout(flat.shape[0], inner, rows, _TOKEN_WIDTH, fill)


def _tensor_json(arr: np.ndarray, as_bytes: bool) -> bytes:
    """JSON text of a whole tensor (nested lists, or a bare value for a scalar)."""
    if arr.dtype.kind in "iub" and arr.dtype in _DATATYPES:
        if arr.ndim == 0:
            return orjson.dumps(arr.item())
        return orjson.dumps(np.ascontiguousarray(arr), option=orjson.OPT_SERIALIZE_NUMPY)
    if arr.size == 0:
        return _empty_json(arr.shape).encode()
    tokens = _tensor_tokens(arr, as_bytes)
    if tokens is None:
        return _float_layout(arr, rows=False)
    if arr.ndim == 0:
        return tokens[0].encode()
    return ("[" + ",".join(_nest_rows(tokens, arr.shape)) + "]").encode()


def _tensor_rows_json(arr: np.ndarray, as_bytes: bool) -> list[bytes]:
    """JSON text of each ``arr[i]`` (row format with several outputs)."""
    if arr.shape[0] == 0:
        return []
    if arr.dtype.kind in "iub" and arr.dtype in _DATATYPES:
        arr = np.ascontiguousarray(arr)
        if arr.ndim == 1:
            return orjson.dumps(arr, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
        return [orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) for row in arr]
    if arr.size == 0:
        return [_empty_json(arr.shape[1:]).encode()] * arr.shape[0]
    tokens = _tensor_tokens(arr, as_bytes)
    if tokens is None:
        return _float_layout(arr, rows=True).split(b"\n")
    return [row.encode() for row in _nest_rows(tokens, arr.shape)]


def _is_bytes_output(name: str, arr: np.ndarray) -> bool:
    # Only string tensors can be bytes; the name suffix is the client's opt-in.
    return name.endswith("_bytes") and arr.dtype.kind in "OSU"


def encode_predict_response(outputs: dict[str, np.ndarray], row_format: bool) -> bytes:
    """The REST predict body: ``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar).

    One output is written bare; several become per-row objects (row format,
    which needs a common batch dimension) or one object keyed by alias.
    """
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    arrays = {}
    for name in names:
        arr = np.asarray(outputs[name])
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        arrays[name] = arr
    if row_format:
        batch = -1
        for name in names:
            arr = arrays[name]
            if arr.ndim == 0:
                raise invalid_argument(f"Tensor name: {name} has no shape information ")
            if batch >= 0 and arr.shape[0] != batch:
                raise invalid_argument(
                    f"Tensor name: {name} has inconsistent batch size: {arr.shape[0]} "
                    f"expecting: {batch}"
                )
            batch = arr.shape[0]
        if len(names) == 1:
            name = names[0]
            body = _tensor_json(arrays[name], _is_bytes_output(name, arrays[name]))
            return b'{"predictions":' + body + b"}"
        keys = [orjson.dumps(name) + b":" for name in names]
        columns = [
            _tensor_rows_json(arrays[name], _is_bytes_output(name, arrays[name])) for name in names
        ]
        rows = [
            b"{" + b",".join(key + col[i] for key, col in zip(keys, columns, strict=True)) + b"}"
            for i in range(batch)
        ]
        return b'{"predictions":[' + b",".join(rows) + b"]}"
    if len(names) == 1:
        name = names[0]
        body = _tensor_json(arrays[name], _is_bytes_output(name, arrays[name]))
        return b'{"outputs":' + body + b"}"
    fields = [
        orjson.dumps(name) + b":" + _tensor_json(arrays[name], _is_bytes_output(name, arrays[name]))
        for name in names
    ]
    return b'{"outputs":{' + b",".join(fields) + b"}}"


def _shape_string(shape) -> str:
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


def encode_classify_response(classes: np.ndarray | None, scores: np.ndarray | None) -> bytes:
    """``{"results": [[[label, score], ...], ...]}`` from [batch, num_classes] outputs.

    A model without a classes output gets label ``""``; one without scores gets
    score 0.0 (an unset proto field).  Scores are float32 in the result proto,
    so they are written as float32.
    """
    for tensor in (classes, scores):
        if tensor is not None and np.ndim(tensor) != 2:
            raise invalid_argument(
                "Expected Tensor shape: [batch_size num_classes] but got "
                + _shape_string(np.shape(tensor))
            )
    if classes is not None and scores is not None and np.shape(classes) != np.shape(scores):
        raise invalid_argument(
            f"Expected classes and scores of the same shape; got classes "
            f"{_shape_string(np.shape(classes))} and scores {_shape_string(np.shape(scores))}"
        )
    ref = classes if classes is not None else scores
    if ref is None or np.shape(ref)[0] == 0:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    batch, num_classes = np.shape(ref)
    if scores is not None:
        score_tokens = _float_tokens_small(np.asarray(scores, dtype=np.float32).ravel(), _M_F32)
    else:
        score_tokens = ["0.0"] * (batch * num_classes)
    if classes is not None:
        label_tokens = [_string_token(v, False) for v in np.asarray(classes).ravel().tolist()]
    else:
        label_tokens = ['""'] * (batch * num_classes)
    pairs = ["[" + a + "," + b + "]" for a, b in zip(label_tokens, score_tokens, strict=True)]
    rows = [
        "[" + ",".join(pairs[i * num_classes : (i + 1) * num_classes]) + "]" for i in range(batch)
    ]
    return ('{"results":[' + ",".join(rows) + "]}").encode()


def encode_regress_response(values: np.ndarray) -> bytes:
    """``{"results": [v, ...]}`` from a [batch] or [batch, 1] output, written as float32."""
    values = np.asarray(values)
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            + _shape_string(values.shape)
        )
    if values.shape[0] == 0:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    flat = values.astype(np.float32).ravel()
    if flat.size >= _SMALL:
        body = _float_layout(flat, rows=False)
    else:
        body = ("[" + ",".join(_float_tokens_small(flat, _M_F32)) + "]").encode()
    return b'{"results":' + body + b"}"


def _dumps_default(obj):
    # orjson hands over what it cannot write natively (numpy scalars, arrays
    # of dtypes it lacks, non-contiguous arrays).
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def dumps(obj) -> bytes:
    """JSON for non-tensor bodies (status, metadata, errors, management)."""
    return orjson.dumps(
        obj,
        default=_dumps_default,
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
    )


# ---------------------------------------------------------------------------
# JSON parsing
# ---------------------------------------------------------------------------


class _NumberTooBig(ValueError):
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


def _parse_int(text: str):
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


# ---------------------------------------------------------------------------
# JSON values in error messages
# ---------------------------------------------------------------------------

_FLOAT_LIMIT = 3.4028234e38  # TensorFlow Serving's "fits in a float" bound


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _quote(text: str) -> str:
    return _encode_str(_to_bytes(text).decode("utf-8", "replace"))


def _nested_double(value: float) -> str:
    """A double inside an array/object: shortest digits, ``.0`` for whole numbers."""
    if value != value:
        return "NaN"
    if value in (_INF, -_INF):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digits, exp = Decimal(repr(abs(value))).as_tuple()
    digit_str = "".join(map(str, digits)).rstrip("0")
    exp += len(digits) - len(digit_str)
    length = len(digit_str)
    kk = length + exp
    prefix = "-" if value < 0 else ""
    if 0 <= exp and kk <= 21:
        text = digit_str + "0" * exp + ".0"
    elif 0 < kk <= 21:
        text = digit_str[:kk] + "." + digit_str[kk:]
    elif -6 < kk <= 0:
        text = "0." + "0" * (-kk) + digit_str
    elif length == 1:
        text = digit_str + "e" + str(kk - 1)
    else:
        text = digit_str[0] + "." + digit_str[1:] + "e" + str(kk - 1)
    return prefix + text


def _pretty(value, depth: int) -> str:
    kind = type(value)
    if kind is list:
        if not value:
            return "[]"
        pad = "    " * (depth + 1)
        inner = (",\n").join(pad + _pretty(v, depth + 1) for v in value)
        return "[\n" + inner + "\n" + "    " * depth + "]"
    if kind is dict:
        if not value:
            return "{}"
        pad = "    " * (depth + 1)
        inner = (",\n").join(
            pad + _quote(str(k)) + ": " + _pretty(v, depth + 1) for k, v in value.items()
        )
        return "{\n" + inner + "\n" + "    " * depth + "}"
    if kind is float:
        return _nested_double(value)
    return _scalar_text(value)


def _scalar_text(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _quote(value)
    return str(value)


def _json_value(value) -> str:
    """How TensorFlow Serving prints a JSON value inside an error message."""
    if type(value) is float:
        if -_FLOAT_LIMIT <= value <= _FLOAT_LIMIT:
            return _fmt_float(_to_f32(value), _M_F32)
        return _fmt_float(value, _M_F64)
    if isinstance(value, (list, dict)):
        try:
            return _pretty(value, 0)
        except RecursionError:
            return orjson.dumps(value).decode()
    return _scalar_text(value)


# ---------------------------------------------------------------------------
# JSON -> tensors
# ---------------------------------------------------------------------------


def _type_error(value, datatype: int) -> ServingError:
    return invalid_argument(
        f"JSON Value: {_json_value(value)} Type: {_json_type(value)} "
        f"is not of expected type: {_dtype_string(datatype)}"
    )


def _lossy_error(value, target: str) -> ServingError:
    return invalid_argument(
        f"Cannot convert JSON value: {_json_value(value)} to {target} without loss of precision."
    )


def _format_error(value, *parts: str) -> ServingError:
    return invalid_argument(f"JSON Value: {_json_value(value)} " + "".join(parts))


def _is_b64(value) -> bool:
    return type(value) is dict and len(value) == 1 and type(value.get("b64")) is str


def _decode_b64(value) -> bytes:
    if not _is_b64(value):
        raise invalid_argument(
            f"JSON Value: {_json_value(value)} not formatted correctly for base64 data"
        )
    text = value["b64"]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid_argument("Unable to base64 decode") from None


def _to_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Raw bytes that arrived inside a JSON string (see parse_json).
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass")


_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT_RANGES = {
    _T.DT_INT32: _INT32,
    _T.DT_INT16: _INT32,  # narrowed afterwards, as TensorFlow Serving does
    _T.DT_INT8: _INT32,
    _T.DT_UINT8: _INT32,
    _T.DT_UINT16: _INT32,
    _T.DT_INT64: (-(1 << 63), (1 << 63) - 1),
    _T.DT_UINT32: (0, (1 << 32) - 1),
    _T.DT_UINT64: (0, (1 << 64) - 1),
}
_FLOAT_TYPES = {
    # dtype: (name in messages, largest exact integer, largest finite value)
    _T.DT_FLOAT: ("float", (1 << 24) - 1, _FLT_MAX),
    _T.DT_DOUBLE: ("double", (1 << 53) - 1, float(np.finfo(np.float64).max)),
    _T.DT_HALF: ("half", None, float(np.finfo(np.float16).max)),
    _T.DT_BFLOAT16: ("bfloat16", None, float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)),
}


def _converter(datatype: int) -> Callable[[object], object]:
    """Checker/converter for one JSON leaf value of a tensor of *datatype*."""
    if datatype in _FLOAT_TYPES:
        target, max_int, max_value = _FLOAT_TYPES[datatype]

        def to_float(value):
            kind = type(value)
            if kind is int:
                if max_int is not None and abs(value) > max_int:
                    raise _lossy_error(value, target)
                if max_int is None and abs(value) > max_value:
                    raise _lossy_error(value, target)
                return float(value)
            if kind is float:
                if math.isfinite(value) and abs(value) > max_value:
                    raise _lossy_error(value, target)
                return value
            raise _type_error(value, datatype)

        return to_float
    if datatype in _INT_RANGES:
        low, high = _INT_RANGES[datatype]

        def to_int(value):
            if type(value) is int and low <= value <= high:
                return value
            raise _type_error(value, datatype)

        return to_int
    if datatype == _T.DT_BOOL:

        def to_bool(value):
            if type(value) is bool:
                return value
            raise _type_error(value, datatype)

        return to_bool
    if datatype == _T.DT_STRING:

        def to_string(value):
            if type(value) is str:
                return _to_bytes(value)
            raise _type_error(value, datatype)

        return to_string

    def unsupported(value):
        raise ServingError(
            Code.UNIMPLEMENTED,
            f"Conversion of JSON Value: {_json_value(value)} to type: {_dtype_string(datatype)}",
        )

    return unsupported


def _dense_shape(value) -> list[int]:
    """The tensor shape implied by the first element of every nesting level."""
    shape = []
    while type(value) is list:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill_tensor(value, datatype: int) -> tuple[list, tuple[int, ...]]:
    """Check every leaf of *value* against its dense shape and dtype; exact error messages.

    Returns the row-major leaf values (converted) and the shape.
    """
    shape = _dense_shape(value)
    rank = len(shape)
    convert = _converter(datatype)
    out: list = []
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if type(item) is list:
            if level >= rank:
                raise invalid_argument(
                    f"Encountered list at unexpected level: {level} expected < {rank}"
                )
            if len(item) != shape[level]:
                raise invalid_argument(
                    f"Encountered list at unexpected size: {len(item)} at level: {level} "
                    f"expected size: {shape[level]}"
                )
            stack.extend((v, level + 1) for v in reversed(item))
            continue
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {_json_value(item)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        if type(item) is dict:
            if datatype != _T.DT_STRING:
                raise _type_error(item, datatype)
            out.append(_decode_b64(item))
        else:
            out.append(convert(item))
    return out, tuple(shape)


def _build_array(values: list, shape: tuple[int, ...], datatype: int) -> np.ndarray:
    dtype = numpy_dtype(datatype)
    if datatype == _T.DT_STRING:
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr.reshape(shape)
    if datatype in _FLOAT_TYPES:
        return np.array(values, dtype=np.float64).astype(dtype).reshape(shape)
    if datatype == _T.DT_UINT64:
        return np.array(values, dtype=np.uint64).reshape(shape)
    if datatype == _T.DT_BOOL:
        return np.array(values, dtype=np.bool_).reshape(shape)
    # Narrow like a C cast: the JSON reader only checks the int32 range for these.
    return np.array(values, dtype=np.int64).astype(dtype).reshape(shape)


def _leaf_types(value) -> set | None:
    """Types of all leaves, or None when a list mixes lists with scalars."""
    if type(value) is not list:
        return {type(value)}
    types: set = set()
    stack = [value]
    while stack:
        lst = stack.pop()
        kinds = set(map(type, lst))
        if list in kinds:
            if len(kinds) > 1:
                return None
            stack.extend(lst)
        else:
            types |= kinds
    return types


_NUMBER_TYPES = frozenset({int, float})
# Where numbers of either JSON kind convert exactly as the exact path would:
# floats up to the largest integer the type holds exactly (half precision
# types: their largest value), integer types within their range.
_NUMERIC_LIMITS = {
    **{
        dtype: (-(limit := max_value if max_int is None else max_int), limit)
        for dtype, (_, max_int, max_value) in _FLOAT_TYPES.items()
    },
    **_INT_RANGES,
}


def _fast_tensor(value, datatype: int, bool_free: bool = False) -> np.ndarray | None:
    """Vectorised conversion of well-formed numeric input; None means "take the exact path".

    ``bool_free`` says the document holds no JSON ``true``/``false``. numpy then
    tells numbers from everything else by itself (strings, nulls and ragged
    lists give another dtype or an error), so the per-element type check,
    the costliest step for a row of floats, is skipped.
    """
    if bool_free and datatype in _NUMERIC_LIMITS:
        arr = _numbers_only(value, datatype)
        if arr is not None:
            return arr
    if datatype == _T.DT_STRING:
        try:
            values, shape = _fill_tensor(value, datatype)
        except ServingError:
            return None
        return _build_array(values, shape, datatype)
    types = _leaf_types(value)
    if types is None:
        return None
    try:
        if datatype in _FLOAT_TYPES:
            if not types <= _NUMBER_TYPES:
                return None
            arr = np.array(value, dtype=np.float64)
            _, max_int, max_value = _FLOAT_TYPES[datatype]
            finite = arr[np.isfinite(arr)] if arr.size else arr
            if finite.size:
                # Ints must be exact in the target type; when present, let the
                # exact path sort out which large values were ints.
                limit = max_value if (max_int is None or int not in types) else max_int
                if float(np.abs(finite).max()) > limit:
                    return None
            return arr.astype(numpy_dtype(datatype))
        if datatype in _INT_RANGES:
            if not types <= {int}:
                return None
            wide = np.uint64 if datatype == _T.DT_UINT64 else np.int64
            arr = np.array(value, dtype=wide)
            low, high = _INT_RANGES[datatype]
            if arr.size and (int(arr.min()) < low or int(arr.max()) > high):
                return None
            return arr.astype(numpy_dtype(datatype))
        if datatype == _T.DT_BOOL:
            if not types <= {bool}:
                return None
            return np.array(value, dtype=np.bool_)
    except (ValueError, TypeError, OverflowError):
        return None
    return None


def _numbers_only(value, datatype: int) -> np.ndarray | None:
    """``value`` as the target dtype when it is a dense array of numbers comfortably in range."""
    try:
        arr = np.array(value)
    except (ValueError, OverflowError):
        return None
    # Integer tensors take JSON integers only; float tensors take both kinds.
    if arr.dtype.kind not in ("fi" if datatype in _FLOAT_TYPES else "i") or not arr.size:
        return None
    low, high = _NUMERIC_LIMITS[datatype]
    # NaN and infinities fail these comparisons: the exact path words their errors.
    if not (low <= arr.min() and arr.max() <= high):
        return None
    return arr.astype(numpy_dtype(datatype))


def _to_tensor(value, datatype: int, bool_free: bool = False) -> np.ndarray:
    arr = _fast_tensor(value, datatype, bool_free)
    if arr is not None and arr.shape == tuple(_dense_shape(value)):
        return arr
    values, shape = _fill_tensor(value, datatype)
    return _build_array(values, shape, datatype)


def _wrap_status(error: ServingError) -> str:
    """A nested error as TensorFlow Serving embeds it (``CODE: message``)."""
    return f"{error.code.name}: {error.message}"


def _instances_exact(instances: list, inputs: dict) -> dict[str, np.ndarray]:
    """Row format, element by element, with TensorFlow Serving's checks and wording."""
    first = instances[0]
    if (type(first) is not dict or _is_b64(first)) and len(inputs) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    objects = type(first) is dict and not _is_b64(first)
    names = sorted(inputs)
    values: dict[str, list] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    sizes: dict[str, int] = {}

    def add(item, name: str) -> None:
        if name not in inputs:
            raise invalid_argument(f"JSON object: does not have named input: {name}")
        flat, shape = _fill_tensor(item, inputs[name].dtype)
        if name not in sizes:
            sizes[name] = len(flat)
            shapes[name] = shape
            values[name] = []
        elif sizes[name] != len(flat):
            raise invalid_argument(f"Expecting tensor size: {sizes[name]} but got: {len(flat)}")
        elif shapes[name] != shape:
            raise invalid_argument(
                f"Expecting shape {_shape_string(shapes[name])} but got: {_shape_string(shape)}"
            )
        values[name].extend(flat)

    for index, element in enumerate(instances):
        is_object = type(element) is dict and not _is_b64(element)
        if objects:
            if not is_object:
                raise invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            for key, item in element.items():
                try:
                    add(item, key)
                except ServingError as exc:
                    raise invalid_argument(
                        f"Failed to process element: {index} key: {key} of 'instances' list. "
                        f"Error: {_wrap_status(exc)}"
                    ) from None
            if set(element) != set(names):
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{_json_value(element)} keys must be equal to: {','.join(names)}"
                )
        else:
            if is_object:
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                add(element, names[0])
            except ServingError as exc:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {_wrap_status(exc)}"
                ) from None
    count = len(instances)
    return {
        name: _build_array(values[name], (count, *shapes[name]), inputs[name].dtype)
        for name in values
    }


def _instances(instances: list, inputs: dict, bool_free: bool) -> dict[str, np.ndarray]:
    first = instances[0]
    names = sorted(inputs)
    if type(first) is dict and not _is_b64(first):
        wanted = set(names)
        if all(type(r) is dict and r.keys() == wanted and not _is_b64(r) for r in instances):
            result = {}
            for name in names:
                column = [r[name] for r in instances]
                arr = _fast_tensor(column, inputs[name].dtype, bool_free)
                if arr is None or arr.shape != tuple(_dense_shape(column)):
                    break
                result[name] = arr
            else:
                return result
    elif len(names) == 1:
        arr = _fast_tensor(instances, inputs[names[0]].dtype, bool_free)
        if arr is not None and arr.shape == tuple(_dense_shape(instances)):
            return {names[0]: arr}
    return _instances_exact(instances, inputs)


def decode_predict_request(
    request: object, signature: SignatureInfo, *, bool_free: bool = False
) -> tuple[dict[str, np.ndarray], bool]:
    """Tensors of a REST predict body, by input alias, and whether it used the row format.

    Pass ``bool_free=True`` when the body is known to hold no JSON ``true`` or
    ``false`` (see :func:`bool_free`): numeric tensors then convert without a
    per-element type check. The answer is the same either way.

    ``{"instances": [...]}`` is the row format (one entry per batch element,
    objects when there are several inputs); ``{"inputs": ...}`` is columnar
    (a bare value for a single input, or an object keyed by alias).
    """
    if type(request) is not dict:
        raise _format_error(request, "Is not object")
    inputs = signature.inputs
    if not inputs:
        raise invalid_argument(
            f"Failed to get input map for signature: {signature.name or 'DEFAULT'}"
        )
    has_instances = "instances" in request
    has_inputs = "inputs" in request
    if has_instances and has_inputs:
        raise _format_error(
            request,
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
        )
    if has_instances:
        instances = request["instances"]
        if type(instances) is not list:
            raise _format_error(request, "Excepting 'instances' to be an list/array")
        if not instances:
            raise _format_error(request, "No values in 'instances' array")
        return _instances(instances, inputs, bool_free), True
    if has_inputs:
        value = request["inputs"]
        names = sorted(inputs)
        if type(value) is not dict or _is_b64(value):
            if len(names) > 1:
                raise invalid_argument(
                    "inputs is a plain value/list, but expecting an object as multiple input "
                    "tensors required as per tensorinfo_map"
                )
            return {names[0]: _to_tensor(value, inputs[names[0]].dtype, bool_free)}, False
        result = {}
        for name in names:
            if name not in value:
                raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
            result[name] = _to_tensor(value[name], inputs[name].dtype, bool_free)
        return result, False
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# ---------------------------------------------------------------------------
# tf.Example input (classify / regress)
# ---------------------------------------------------------------------------

_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}
_INT64_MAX = (1 << 63) - 1


def _feature(name: str, content) -> feature_pb2.Feature:
    """One feature from a JSON value or list: strings/b64 -> bytes, ints/bools -> int64, floats."""
    values = content if type(content) is list else [content]
    kind = None
    items: list = []

    def expect(wanted: str) -> None:
        nonlocal kind
        if kind is None:
            kind = wanted
        elif kind != wanted:
            raise invalid_argument(
                f"Unexpected element type in feature: {name} expecting type: {_KIND_NAMES[kind]}"
            )

    for value in values:
        vtype = type(value)
        if vtype is bool:
            expect("int64_list")
            items.append(1 if value else 0)
        elif vtype is int:
            expect("int64_list")
            if value > _INT64_MAX:
                raise invalid_argument(
                    f"Feature: {name} has uint64 element. Only int64 is supported."
                )
            items.append(value)
        elif vtype is float:
            expect("float_list")
            if math.isfinite(value) and abs(value) > _FLT_MAX:
                raise _lossy_error(value, "float")
            items.append(value)
        elif vtype is str:
            expect("bytes_list")
            items.append(_to_bytes(value))
        elif vtype is dict and _is_b64(value):
            expect("bytes_list")
            items.append(_decode_b64(value))
        else:
            raise invalid_argument(
                f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}"
            )
    feature = feature_pb2.Feature()
    if kind is not None:
        getattr(feature, kind).value.extend(items)
    return feature


def _example(value) -> example_pb2.Example:
    if type(value) is not dict:
        raise invalid_argument(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = example_pb2.Example()
    features = example.features.feature
    for name, content in value.items():
        features[name].CopyFrom(_feature(name, content))
    return example


def decode_examples(request: dict) -> list[bytes]:
    """Serialized tf.Examples of a REST classify/regress body.

    ``context`` features apply to every example; an example's own feature of
    the same name wins.  The context is serialized once and prepended to each
    example: parsing concatenated messages merges them, later fields winning.
    """
    if type(request) is not dict:
        raise _format_error(request, "Is not object")
    context = b""
    if "context" in request:
        context = _example(request["context"]).SerializeToString()
    if "examples" not in request:
        raise _format_error(
            request, "When method is classify, key 'examples' is expected and was not found"
        )
    examples = request["examples"]
    if type(examples) is not list:
        raise _format_error(request, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(request, "'examples' value is an empty array")
    return [context + _example(e).SerializeToString() for e in examples]


def input_to_serialized_examples(input_proto: input_pb2.Input) -> list[bytes]:
    """Serialized tf.Examples of a gRPC classify/regress ``Input`` (context merged in)."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        result = [e.SerializeToString() for e in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        group = input_proto.example_list_with_context
        context = group.context.SerializeToString()
        result = [context + e.SerializeToString() for e in group.examples]
    else:
        result = []
    if not result:
        raise invalid_argument("Input is empty.")
    return result


# ---------------------------------------------------------------------------
# TensorProto
# ---------------------------------------------------------------------------


def _proto_error(detail: str) -> ServingError:
    return invalid_argument(f"tensor parsing error: {detail}")


def _typed_values(proto: tensor_pb2.TensorProto, datatype: int, dtype: np.dtype) -> np.ndarray:
    """The values of the typed ``*_val`` field for *datatype*, as a flat array."""
    if datatype == _T.DT_FLOAT:
        return np.array(proto.float_val, dtype=np.float32)
    if datatype == _T.DT_DOUBLE:
        return np.array(proto.double_val, dtype=np.float64)
    if datatype == _T.DT_INT64:
        return np.array(proto.int64_val, dtype=np.int64)
    if datatype == _T.DT_BOOL:
        return np.array(proto.bool_val, dtype=np.bool_)
    if datatype == _T.DT_UINT32:
        return np.array(proto.uint32_val, dtype=np.uint32)
    if datatype == _T.DT_UINT64:
        return np.array(proto.uint64_val, dtype=np.uint64)
    if datatype in (_T.DT_HALF, _T.DT_BFLOAT16):
        bits = np.array(proto.half_val, dtype=np.int64) & 0xFFFF
        return bits.astype(np.uint16).view(dtype)
    if datatype in (_T.DT_COMPLEX64, _T.DT_COMPLEX128):
        field = proto.scomplex_val if datatype == _T.DT_COMPLEX64 else proto.dcomplex_val
        parts = np.array(field, dtype=np.float32 if datatype == _T.DT_COMPLEX64 else np.float64)
        if parts.size % 2:
            raise _proto_error(
                f"{_dtype_string(datatype)} values need real/imaginary pairs, got {parts.size} "
                "numbers"
            )
        return parts.view(dtype)
    if datatype in _FLOAT8_TYPES:
        return np.frombuffer(proto.float8_val, dtype=np.uint8).view(dtype)
    if datatype in _INT_VAL_TYPES:
        ints = np.array(proto.int_val, dtype=np.int64)
        base = _QUANTIZED_BASE.get(datatype)
        if base is not None:
            return ints.astype(base).view(dtype)
        return ints.astype(dtype)
    raise _proto_error(f"unsupported dtype {datatype_name(datatype)}")


def tensor_proto_to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """A numpy array with the TensorProto's dtype, shape and values.

    ``tensor_content`` is wrapped without copying (the array is read-only);
    typed ``*_val`` fields are accepted like the serving runtime accepts them:
    no values means zeros, fewer values than elements repeat the last one
    (so one value broadcasts).  More values than elements is an error.
    """
    datatype = proto.dtype
    dtype = _NUMPY_DTYPES.get(datatype)
    if dtype is None:
        raise _proto_error(f"unsupported dtype {datatype_name(datatype)}")
    if proto.tensor_shape.unknown_rank:
        raise _proto_error("tensor shape has unknown rank")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise _proto_error(f"invalid tensor shape {_shape_string(shape)}")
    count = math.prod(shape)
    if count == 0:
        # Nothing to read: values, if any, are ignored like the runtime does.
        return np.empty(shape, dtype=dtype)

    if datatype == _T.DT_STRING:
        if proto.tensor_content:
            raise _proto_error("string tensors must use string_val, not tensor_content")
        values = list(proto.string_val)
        if len(values) > count:
            raise _proto_error(f"{len(values)} values do not fit shape {_shape_string(shape)}")
        if values and len(values) < count:
            values.extend([values[-1]] * (count - len(values)))
        elif not values:
            values = [b""] * count
        arr = np.empty(count, dtype=object)
        arr[:] = values
        return arr.reshape(shape)

    content = proto.tensor_content
    if content:
        expected = count * dtype.itemsize
        if len(content) != expected:
            raise _proto_error(
                f"tensor_content has {len(content)} bytes but shape {_shape_string(shape)} "
                f"of {_dtype_string(datatype)} needs {expected}"
            )
        return np.frombuffer(content, dtype=dtype).reshape(shape)

    values = _typed_values(proto, datatype, dtype)
    have = values.shape[0]
    if have == count:
        return values.reshape(shape)
    if have > count:
        raise _proto_error(f"{have} values do not fit shape {_shape_string(shape)}")
    if have == 0:
        return np.zeros(shape, dtype=dtype)
    out = np.empty(count, dtype=dtype)
    out[:have] = values
    out[have:] = values[-1]
    return out.reshape(shape)


def _string_list(flat: np.ndarray) -> list[bytes]:
    out = []
    for v in flat.tolist():
        if isinstance(v, bytes):
            out.append(v)
        elif isinstance(v, str):
            out.append(_to_bytes(v))
        else:
            out.append(bytes(v))
    return out


def ndarray_to_tensor_proto(
    array: np.ndarray, datatype: int | None = None
) -> tensor_pb2.TensorProto:
    """A TensorProto with typed ``*_val`` fields, as a Predict response carries them.

    *datatype* (a TF ``DataType``) converts the array first when it differs.
    """
    arr = np.asarray(array)
    if datatype is None:
        datatype = datatype_of(arr)
    elif datatype == _T.DT_STRING:
        if arr.dtype.kind not in "OSU":
            raise invalid_argument(f"Cannot store a {arr.dtype} array as DT_STRING")
    elif arr.dtype != numpy_dtype(datatype):
        arr = arr.astype(numpy_dtype(datatype))
    proto = tensor_pb2.TensorProto(dtype=datatype)
    dims = proto.tensor_shape.dim
    for size in arr.shape:
        dims.add(size=size)
    flat = np.ascontiguousarray(arr).reshape(-1)
    if datatype == _T.DT_FLOAT:
        proto.float_val.extend(flat.tolist())
    elif datatype == _T.DT_DOUBLE:
        proto.double_val.extend(flat.tolist())
    elif datatype == _T.DT_STRING:
        proto.string_val.extend(_string_list(flat))
    elif datatype == _T.DT_INT64:
        proto.int64_val.extend(flat.tolist())
    elif datatype == _T.DT_BOOL:
        proto.bool_val.extend(flat.tolist())
    elif datatype == _T.DT_UINT32:
        proto.uint32_val.extend(flat.tolist())
    elif datatype == _T.DT_UINT64:
        proto.uint64_val.extend(flat.tolist())
    elif datatype in (_T.DT_HALF, _T.DT_BFLOAT16):
        proto.half_val.extend(flat.view(np.uint16).tolist())
    elif datatype == _T.DT_COMPLEX64:
        proto.scomplex_val.extend(flat.view(np.float32).tolist())
    elif datatype == _T.DT_COMPLEX128:
        proto.dcomplex_val.extend(flat.view(np.float64).tolist())
    elif datatype in _FLOAT8_TYPES:
        proto.float8_val = flat.view(np.uint8).tobytes()
    elif datatype in _INT_VAL_TYPES:
        base = _QUANTIZED_BASE.get(datatype)
        ints = flat.view(base) if base is not None else flat
        proto.int_val.extend(ints.astype(np.int32).tolist())
    else:
        raise invalid_argument(f"Unsupported tensor data type: {datatype_name(datatype)}")
    return proto
