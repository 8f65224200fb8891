"""Tensors -> REST response bodies (predict, classify, regress) and the JSON writer for everything else."""

from __future__ import annotations

import base64
import json

import numpy as np
import orjson

from ..status import invalid_argument
from .dtypes import (
    _DATATYPES,
    _FLOAT8_TYPES,
    _INT_VAL_TYPES,
    _QUANTIZED_BASE,
    _T,
    _dtype_string,
    _shape_string,
    _to_bytes,
)
from .float_text import (
    _M_F32,
    _SMALL,
    _TOKEN_WIDTH,
    _float_mode,
    _float_tokens_small,
    _layout,
    _write_float_tokens,
)

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


# A batch's one output is written whole for its requests up to this many elements (larger
# ones are written per request, where the caller decides whether to leave its loop for it).
BATCH_WRITE_ELEMENTS = 16 * 1024


def encode_predict_response(outputs: dict[str, np.ndarray], row_format: bool) -> bytes:
    """The REST predict body: ``{"predictions": ...}`` (row) or ``{"outputs": ...}`` (columnar)."""
    key = b'{"predictions":' if row_format else b'{"outputs":'
    return key + (_cut_from_batch(outputs) or encode_tensor_map(outputs, row_format)) + b"}"


def _cut_from_batch(outputs) -> bytes | None:
    """A one-output answer's JSON cut from its batch's rows, each row written once per batch.

    ``outputs`` is a batcher's ``BatchAnswer`` (``batch``, ``start``, shared
    ``memo``); anything else, several outputs or a big batch answer None. With
    one output, row and columnar layouts write the same text.
    """
    batch = getattr(outputs, "batch", None)
    if batch is None or len(outputs) != 1:
        return None
    ((name, mine),) = outputs.items()
    whole = batch.get(name)
    if whole is None or whole.size > BATCH_WRITE_ELEMENTS or whole.ndim == 0:
        return None
    rows = outputs.memo.get(name)
    if rows is None:
        arr = np.asarray(whole)
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        rows = outputs.memo[name] = _tensor_rows_json(arr, _is_bytes_output(name, arr))
    start = outputs.start
    return b"[" + b",".join(rows[start : start + len(mine)]) + b"]"


def encode_tensor_map(outputs: dict[str, np.ndarray], row_format: bool) -> bytes:
    """Named tensors in TF Serving's JSON layout: the value of ``predictions``/``outputs`` or ``instances``/``inputs``.

    One tensor is written bare; several become per-row objects (row format,
    which needs a common batch dimension) or one object keyed by alias.
    Requests and answers share the layout, so this writes both.
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
            return body
        keys = [orjson.dumps(name) + b":" for name in names]
        columns = [
            _tensor_rows_json(arrays[name], _is_bytes_output(name, arrays[name])) for name in names
        ]
        rows = [
            b"{" + b",".join(key + col[i] for key, col in zip(keys, columns, strict=True)) + b"}"
            for i in range(batch)
        ]
        return b"[" + b",".join(rows) + b"]"
    if len(names) == 1:
        name = names[0]
        body = _tensor_json(arrays[name], _is_bytes_output(name, arrays[name]))
        return body
    fields = [
        orjson.dumps(name) + b":" + _tensor_json(arrays[name], _is_bytes_output(name, arrays[name]))
        for name in names
    ]
    return b"{" + b",".join(fields) + b"}"


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
