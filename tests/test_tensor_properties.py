"""Property-based tests of the tensor codec (hypothesis): any input decodes to what it says or is a ServingError.

The example-based tests in ``test_tensors.py`` pin TF Serving's wording; these
look for the inputs nobody wrote down: every JSON document and every
TensorProto either decodes, within the request's budget, or is refused with
:class:`ServingError` (never another exception, which a protocol would
answer 500), and encoding then decoding gives the tensor back.
"""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tensorflow.core.framework import tensor_pb2, types_pb2

from jupyter_tfserve.core import tensors as T
from jupyter_tfserve.core.signatures import SignatureInfo, TensorSpec
from jupyter_tfserve.core.status import ServingError

DT = types_pb2
PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DECODED_DTYPES = [DT.DT_FLOAT, DT.DT_DOUBLE, DT.DT_INT32, DT.DT_INT64, DT.DT_BOOL, DT.DT_STRING]


def signature(**inputs: int) -> SignatureInfo:
    specs = {k: TensorSpec(k, f"{k}:0", dtype, None) for k, dtype in sorted(inputs.items())}
    return SignatureInfo("serving_default", "tensorflow/serving/predict", specs, {})


# Any JSON value, with the leaves TF Serving's reader gives: nulls, bools, 64-bit ints,
# doubles including NaN and infinities, strings, b64 objects, nested lists and objects.
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.builds(lambda s: {"b64": s}, st.sampled_from(["", "eA==", "eA", "!!", "YWJj"]))
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["x", "y", "b64", "inputs"]), children, max_size=3)
    ),
    max_leaves=40,
)
bodies = st.one_of(
    st.builds(lambda v: {"instances": v}, json_values),
    st.builds(lambda v: {"inputs": v}, json_values),
    st.builds(lambda v: {"instances": [v, v]}, json_values),
    json_values,
)


def _check_decoded(inputs: dict, sig: SignatureInfo, budget: T.TensorBudget) -> None:
    assert inputs.keys() == sig.inputs.keys()
    for alias, array in inputs.items():
        assert T.datatype_of(array) == sig.inputs[alias].dtype
    assert budget.remaining >= 0


@PROPERTIES
@given(body=bodies, dtypes=st.lists(st.sampled_from(DECODED_DTYPES), min_size=1, max_size=2))
def test_any_json_body_decodes_or_is_a_serving_error(body, dtypes):
    sig = signature(**{name: dtype for name, dtype in zip(("x", "y"), dtypes, strict=False)})
    raw = json.dumps(body, allow_nan=True).encode()
    request = T.parse_json(raw)
    budget = T.TensorBudget(1 << 20)
    try:
        inputs, _ = T.decode_predict_request(
            request, sig, bool_free=T.bool_free(raw), budget=budget
        )
    except ServingError as error:
        assert error.message and len(error.message) <= 2 * len(raw) + 2048
        return
    _check_decoded(inputs, sig, budget)


@PROPERTIES
@given(body=bodies, dtype=st.sampled_from(DECODED_DTYPES))
def test_the_loop_path_agrees_with_the_exact_path(body, dtype):
    """``exact=False`` answers the same, or hands the request to the exact path; never differs."""
    sig = signature(x=dtype)
    raw = json.dumps(body, allow_nan=True).encode()
    request = T.parse_json(raw)

    def decode(exact: bool):
        try:
            inputs, row_format = T.decode_predict_request(
                request, sig, bool_free=T.bool_free(raw), budget=T.TensorBudget(), exact=exact
            )
        except ServingError as error:
            return "error", error.code, error.message
        return "decoded", {k: (v.dtype, v.shape, v.tolist()) for k, v in inputs.items()}, row_format

    exact = decode(True)
    try:
        fast = decode(False)
    except T.ExactPathNeeded:
        return
    assert repr(fast) == repr(exact)  # repr: NaN equals NaN


@PROPERTIES
@given(text=st.text(alphabet='[]{}",:0123456789.eE-+ tnrufalsNIiy\\', max_size=60))
def test_any_text_parses_or_is_a_parse_error(text):
    try:
        T.parse_json(text.encode())
    except ServingError as error:
        assert error.message.startswith("JSON Parse error: ")


def _elements(dtype):
    """Any value of ``dtype``; float32 within 1e38: the 9-digit text of its largest values reads
    back as a double just over FLT_MAX, which the decoder refuses as lossy (TF Serving's check)."""
    if dtype == np.float32:
        limit = float(np.float32(1e38))
        return st.floats(-limit, limit, width=32) | st.sampled_from([np.nan, np.inf, -np.inf])
    return hnp.from_dtype(np.dtype(dtype))


numeric_arrays = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_]).flatmap(
    lambda dtype: hnp.arrays(
        dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), elements=_elements(dtype)
    )
)


@PROPERTIES
@given(array=numeric_arrays, row_format=st.booleans())
def test_json_round_trip(array, row_format):
    """What the server writes for a tensor, a client reading it back as input decodes to the same tensor."""
    body = T.encode_predict_response({"x": array}, row_format)
    document = T.parse_json(body)
    request = {"instances" if row_format else "inputs": next(iter(document.values()))}
    decoded, _ = T.decode_predict_request(
        request, signature(x=T.datatype_of(array)), budget=T.TensorBudget()
    )
    np.testing.assert_array_equal(decoded["x"], array)
    assert decoded["x"].dtype == array.dtype


@PROPERTIES
@given(array=numeric_arrays)
def test_tensor_proto_round_trip(array):
    decoded = T.tensor_proto_to_ndarray(T.ndarray_to_tensor_proto(array), T.TensorBudget())
    np.testing.assert_array_equal(decoded, array)
    assert decoded.dtype == array.dtype and decoded.shape == array.shape


PROTO_DTYPES = [
    DT.DT_FLOAT,
    DT.DT_DOUBLE,
    DT.DT_INT32,
    DT.DT_INT64,
    DT.DT_BOOL,
    DT.DT_STRING,
    DT.DT_HALF,
    DT.DT_UINT8,
    DT.DT_COMPLEX64,
    DT.DT_RESOURCE,
]


@st.composite
def tensor_protos(draw) -> tensor_pb2.TensorProto:
    """TensorProtos as a client may send them: any dtype, any dims (huge ones too), few values."""
    proto = tensor_pb2.TensorProto(dtype=draw(st.sampled_from(PROTO_DTYPES)))
    for size in draw(st.lists(st.integers(-1, 1 << 62) | st.integers(0, 5), max_size=4)):
        proto.tensor_shape.dim.add(size=size)
    proto.tensor_shape.unknown_rank = draw(st.booleans()) and draw(st.booleans())
    values = draw(st.integers(0, 5))
    proto.float_val.extend([1.5] * values)
    proto.double_val.extend([2.5] * values)
    proto.int_val.extend([7] * values)
    proto.int64_val.extend([8] * values)
    proto.bool_val.extend([True] * values)
    proto.string_val.extend([b"s" * draw(st.integers(0, 64))] * values)
    proto.half_val.extend([0x3C00] * values)
    proto.scomplex_val.extend([1.0] * draw(st.integers(0, 5)))
    if draw(st.booleans()):
        proto.tensor_content = b"\x00" * draw(st.integers(0, 64))
    return proto


@PROPERTIES
@given(proto=tensor_protos())
def test_any_tensor_proto_decodes_within_its_budget_or_is_a_serving_error(proto):
    budget = T.TensorBudget(1 << 16)
    try:
        array = T.tensor_proto_to_ndarray(proto, budget)
    except ServingError:
        return
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    assert array.shape == shape and T.datatype_of(array) == proto.dtype
    assert math.prod(shape) * array.dtype.itemsize <= (1 << 16)
