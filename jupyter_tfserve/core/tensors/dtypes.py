"""TensorFlow dtypes <-> numpy dtypes, and the small helpers every codec shares.

One table maps each ``DataType`` TensorFlow Serving accepts to its numpy
dtype (``ml_dtypes`` supplies bfloat16, float8 and int4), so the JSON and
TensorProto codecs can never disagree about a type. This is the first module
of the package to import TensorFlow's protos, which imports TensorFlow: its
start-up lines go through :func:`~..native_logs.filtered_stderr`.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from ..native_logs import filtered_stderr
from ..status import invalid_argument

with filtered_stderr():  # TensorFlow's protos import TensorFlow
    from tensorflow.core.framework import types_pb2


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


def _to_bytes(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Raw bytes that arrived inside a JSON string (see parse_json).
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass")


def _shape_string(shape) -> str:
    return "[" + ",".join(str(int(d)) for d in shape) + "]"
