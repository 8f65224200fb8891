"""REST predict bodies -> tensors, with TF Serving's JSON tensor rules and error wording.

The shape comes from the first element of each nesting level, values are
type-checked against the signature's dtype, ``{"b64": ...}`` carries binary
strings. A vectorised path converts well-formed numeric input; anything it
is unsure of takes the exact per-value path, which words the errors.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

import ml_dtypes
import numpy as np

from ..signatures import SignatureInfo
from ..status import QUOTE_LIMIT, Code, ServingError, clip, invalid_argument
from .budget import TensorBudget, charge
from .dtypes import _T, _dtype_string, _shape_string, _to_bytes, numpy_dtype
from .float_text import _FLT_MAX, _INF, _M_F32, _M_F64, _fmt_float, _to_f32
from .json_encode import _encode_str

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


def _pretty_pieces(value) -> Iterator[str]:
    """TF Serving's pretty print of a JSON value (4 spaces a level), as lazy text pieces.

    An explicit stack instead of recursion: a value nested thousands of levels
    deep is printed like any other, and a caller that stops early pays only
    for what it took.
    """
    stack: list[Iterator] = [iter(((value, 0),))]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif type(item) is str:
            yield item
        else:
            value, depth = item
            if type(value) in (list, dict) and value:
                stack.append(_members(value, depth))
            elif type(value) is float:
                yield _nested_double(value)
            else:
                yield _scalar_text(value)


def _members(value: list | dict, depth: int) -> Iterator:
    """A non-empty container's text pieces, with its members as ``(value, depth)`` to print."""
    is_dict = type(value) is dict
    pad = "    " * (depth + 1)
    head = "{\n" if is_dict else "[\n"
    for member in value.items() if is_dict else value:
        if is_dict:
            key, member = member
            yield head + pad + _scalar_text(str(key)) + ": "
        else:
            yield head + pad
        yield (member, depth + 1)
        head = ",\n"
    yield "\n" + "    " * depth + ("}" if is_dict else "]")


def _bounded(pieces: Iterable[str]) -> str:
    """The pieces joined and clipped, taking no more pieces than the clipped text needs."""
    out = []
    size = 0
    for piece in pieces:
        out.append(piece)
        size += len(piece)
        if size > QUOTE_LIMIT:
            break
    return clip("".join(out))


def _scalar_text(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        # Only what a bounded message can show is quoted (+1: the cut stays visible).
        return _quote(value[: QUOTE_LIMIT + 1])
    return str(value)


def _json_value(value) -> str:
    """How TensorFlow Serving prints a JSON value inside an error message, up to QUOTE_LIMIT."""
    if type(value) is float:
        if -_FLOAT_LIMIT <= value <= _FLOAT_LIMIT:
            return _fmt_float(_to_f32(value), _M_F32)
        return _fmt_float(value, _M_F64)
    return _bounded(_pretty_pieces(value))


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


def _fast_tensor(
    value, datatype: int, bool_free: bool = False, exact: bool = True
) -> np.ndarray | None:
    """Vectorised conversion of well-formed numeric input; None means "take the exact path".

    ``bool_free`` says the document holds no JSON ``true``/``false``. numpy then
    tells numbers from everything else by itself (strings, nulls and ragged
    lists give another dtype or an error), so the per-element type check,
    the costliest step for a row of floats, is skipped. Strings always take
    the per-value path: without ``exact``, that raises :class:`ExactPathNeeded`.
    """
    if bool_free and datatype in _NUMERIC_LIMITS:
        arr = _numbers_only(value, datatype)
        if arr is not None:
            return arr
    if datatype == _T.DT_STRING:
        _exact_path(exact)
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


class ExactPathNeeded(Exception):
    """Only the per-value path can decode this request, and the caller said not to take it.

    That path costs about a microsecond per value (it words every error), so an
    event loop decodes a mid-sized body with ``exact=False`` and moves to a
    worker thread on this exception instead of holding the loop.
    """


def _exact_path(exact: bool) -> None:
    if not exact:
        raise ExactPathNeeded


def _to_tensor(
    value,
    datatype: int,
    bool_free: bool = False,
    budget: TensorBudget | None = None,
    exact: bool = True,
) -> np.ndarray:
    shape = tuple(_dense_shape(value))
    charge(budget, shape, datatype)
    arr = _fast_tensor(value, datatype, bool_free, exact)
    if arr is not None and arr.shape == shape:
        return arr
    _exact_path(exact)
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


def _charge_instances(instances: list, inputs: dict, budget: TensorBudget | None) -> None:
    """Charge the tensors the row format will build, sized by its first instance (as decoding does)."""
    first = instances[0]
    if type(first) is dict and not _is_b64(first):
        for name, item in first.items():
            if name in inputs:
                charge(budget, (len(instances), *_dense_shape(item)), inputs[name].dtype)
    else:
        spec = inputs[min(inputs)]
        charge(budget, _dense_shape(instances), spec.dtype)


def _instances(
    instances: list, inputs: dict, bool_free: bool, budget: TensorBudget | None, exact: bool
) -> dict[str, np.ndarray]:
    _charge_instances(instances, inputs, budget)
    first = instances[0]
    names = sorted(inputs)
    if type(first) is dict and not _is_b64(first):
        wanted = set(names)
        if all(type(r) is dict and r.keys() == wanted and not _is_b64(r) for r in instances):
            result = {}
            for name in names:
                column = [r[name] for r in instances]
                arr = _fast_tensor(column, inputs[name].dtype, bool_free, exact)
                if arr is None or arr.shape != tuple(_dense_shape(column)):
                    break
                result[name] = arr
            else:
                return result
    elif len(names) == 1:
        arr = _fast_tensor(instances, inputs[names[0]].dtype, bool_free, exact)
        if arr is not None and arr.shape == tuple(_dense_shape(instances)):
            return {names[0]: arr}
    _exact_path(exact)
    return _instances_exact(instances, inputs)


def decode_predict_request(
    request: object,
    signature: SignatureInfo,
    *,
    bool_free: bool = False,
    budget: TensorBudget | None = None,
    exact: bool = True,
) -> tuple[dict[str, np.ndarray], bool]:
    """Tensors of a REST predict body, by input alias, and whether it used the row format.

    Pass ``bool_free=True`` when the body is known to hold no JSON ``true`` or
    ``false`` (see :func:`bool_free`): numeric tensors then convert without a
    per-element type check. The answer is the same either way.

    ``{"instances": [...]}`` is the row format (one entry per batch element,
    objects when there are several inputs); ``{"inputs": ...}`` is columnar
    (a bare value for a single input, or an object keyed by alias).

    A request's *budget* is charged for each tensor before it is built.
    With ``exact=False``, a request that only the per-value path can decode
    (strings, mixed or malformed values) raises :class:`ExactPathNeeded`.
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
        return _instances(instances, inputs, bool_free, budget, exact), True
    if has_inputs:
        value = request["inputs"]
        names = sorted(inputs)
        if type(value) is not dict or _is_b64(value):
            if len(names) > 1:
                raise invalid_argument(
                    "inputs is a plain value/list, but expecting an object as multiple input "
                    "tensors required as per tensorinfo_map"
                )
            tensor = _to_tensor(value, inputs[names[0]].dtype, bool_free, budget, exact)
            return {names[0]: tensor}, False
        result = {}
        for name in names:
            if name not in value:
                raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
            result[name] = _to_tensor(value[name], inputs[name].dtype, bool_free, budget, exact)
        return result, False
    raise invalid_argument("Missing 'inputs' or 'instances' key")
