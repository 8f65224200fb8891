"""TensorProto <-> numpy, for gRPC: ``tensor_content`` bytes for numeric dtypes, typed ``*_val`` fields otherwise."""

from __future__ import annotations

import math

import numpy as np
from tensorflow.core.framework import tensor_pb2

from ..status import ServingError, invalid_argument
from .budget import TensorBudget, charge
from .dtypes import (
    _FLOAT8_TYPES,
    _INT_VAL_TYPES,
    _NUMPY_DTYPES,
    _QUANTIZED_BASE,
    _T,
    _dtype_string,
    _shape_string,
    _to_bytes,
    datatype_name,
    datatype_of,
    numpy_dtype,
)


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


def tensor_proto_to_ndarray(
    proto: tensor_pb2.TensorProto, budget: TensorBudget | None = None
) -> np.ndarray:
    """A numpy array with the TensorProto's dtype, shape and values.

    ``tensor_content`` is wrapped without copying (the array is read-only);
    typed ``*_val`` fields are accepted like the serving runtime accepts them:
    no values means zeros, fewer values than elements repeat the last one
    (so one value broadcasts).  More values than elements is an error.

    A request's *budget* is charged for the tensor before anything is
    allocated: a shape filled from one value costs its whole size.
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
        try:
            return np.empty(shape, dtype=dtype)
        except ValueError:  # numpy refuses an empty shape whose other dims overflow its sizes
            raise _proto_error(f"invalid tensor shape {_shape_string(shape)}") from None

    if datatype == _T.DT_STRING:
        if proto.tensor_content:
            raise _proto_error("string tensors must use string_val, not tensor_content")
        values = list(proto.string_val)
        if len(values) > count:
            raise _proto_error(f"{len(values)} values do not fit shape {_shape_string(shape)}")
        charge(budget, shape, datatype, _filled_string_bytes(values, count))
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
        charge(budget, shape, datatype)
        return np.frombuffer(content, dtype=dtype).reshape(shape)

    values = _typed_values(proto, datatype, dtype)
    have = values.shape[0]
    if have > count:
        raise _proto_error(f"{have} values do not fit shape {_shape_string(shape)}")
    charge(budget, shape, datatype)
    if have == count:
        return values.reshape(shape)
    if have == 0:
        return np.zeros(shape, dtype=dtype)
    out = np.empty(count, dtype=dtype)
    out[:have] = values
    out[have:] = values[-1]
    return out.reshape(shape)


def _filled_string_bytes(values: list[bytes], count: int) -> int:
    """The bytes of a string tensor of ``count`` elements once its last value fills the rest."""
    if not values:
        return 0
    return sum(map(len, values)) + (count - len(values)) * len(values[-1])


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
