"""The simdjson path for numeric predict bodies answers exactly what the general decoder answers.

Property tests (hypothesis): for any body, either the numeric path declines
(None) and the general decoder decides, or it gives the same tensors (dtype,
shape, bytes) and row format as the general decoder; a request over its
tensor budget is refused with the same error either way.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import types_pb2 as DT

from jupyter_tfserve.core import tensors as T
from jupyter_tfserve.core.signatures import SignatureInfo, TensorSpec
from jupyter_tfserve.core.status import ServingError
from jupyter_tfserve.core.tensors.json_numeric import OneRowBody

PROPERTIES = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMERIC_DTYPES = [
    DT.DT_FLOAT,
    DT.DT_DOUBLE,
    DT.DT_HALF,
    DT.DT_BFLOAT16,
    DT.DT_INT8,
    DT.DT_UINT8,
    DT.DT_INT16,
    DT.DT_UINT16,
    DT.DT_INT32,
    DT.DT_UINT32,
    DT.DT_INT64,
    DT.DT_UINT64,
    DT.DT_BOOL,
    DT.DT_STRING,
]


def signature(**inputs: int) -> SignatureInfo:
    specs = {k: TensorSpec(k, f"{k}:0", dtype, None) for k, dtype in sorted(inputs.items())}
    return SignatureInfo("serving_default", "tensorflow/serving/predict", specs, {})


numbers = (
    st.integers(-(2**63), 2**64 - 1)
    | st.integers(-300, 300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(-1e6, 1e6)
)
leaves = numbers | st.none() | st.booleans() | st.text(max_size=3) | st.just({"b64": "eA=="})


@st.composite
def rectangular(draw, leaf=numbers):
    """A dense nesting of lists (rank 1-3) of one kind of leaf."""
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    flat = draw(st.lists(leaf, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.array(flat, dtype=object).reshape(shape).tolist()


tensor_values = (
    rectangular()
    | rectangular(numbers | leaves)
    | st.recursive(leaves, lambda children: st.lists(children, max_size=3), max_leaves=20)
)
bodies = st.one_of(
    st.builds(lambda v: {"instances": v}, tensor_values),
    st.builds(lambda v: {"inputs": v}, tensor_values),
    st.builds(lambda x, y: {"inputs": {"x": x, "y": y}}, tensor_values, tensor_values),
    st.builds(lambda v: {"signature_name": "serving_default", "instances": v}, tensor_values),
    st.builds(lambda v: {"instances": v, "extra": 1}, tensor_values),
)


def general(raw: bytes, sig: SignatureInfo, budget: T.TensorBudget):
    request = T.parse_json(raw)
    return T.decode_predict_request(request, sig, bool_free=T.bool_free(raw), budget=budget)


def outcome(decode):
    try:
        return decode()
    except ServingError as error:
        return error


def assert_same(fast, slow) -> None:
    if isinstance(slow, ServingError):
        assert isinstance(fast, ServingError), fast
        assert (fast.code, fast.message) == (slow.code, slow.message)
        return
    fast_inputs, fast_rows = fast
    slow_inputs, slow_rows = slow
    assert fast_rows == slow_rows
    assert fast_inputs.keys() == slow_inputs.keys()
    for name, array in slow_inputs.items():
        assert fast_inputs[name].dtype == array.dtype
        assert fast_inputs[name].shape == array.shape
        assert fast_inputs[name].tobytes() == array.tobytes()


def check(raw: bytes, sig: SignatureInfo, limit: int = 1 << 20) -> bool:
    """Compare both paths on one body; whether the numeric path took it."""
    slow = outcome(lambda: general(raw, sig, T.TensorBudget(limit)))
    numeric = T.parse_numeric(raw)
    fast = outcome(lambda: numeric and numeric.decode(sig, T.TensorBudget(limit)))
    if fast is None:
        return False
    assert_same(fast, slow)
    return True


@PROPERTIES
@given(
    body=bodies,
    dtypes=st.lists(st.sampled_from(NUMERIC_DTYPES), min_size=1, max_size=2),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]),
)
def test_numeric_path_agrees_with_the_general_decoder(body, dtypes, separators):
    sig = signature(**{name: dtype for name, dtype in zip(("x", "y"), dtypes, strict=False)})
    check(json.dumps(body, separators=separators).encode(), sig)


@PROPERTIES
@given(value=rectangular(), dtype=st.sampled_from(NUMERIC_DTYPES[:12]), limit=st.integers(0, 64))
def test_budget_is_charged_before_building_and_refuses_alike(value, dtype, limit):
    check(json.dumps({"instances": value}).encode(), signature(x=dtype), limit)


@PROPERTIES
@given(
    value=rectangular(st.integers(-300, 300) | st.floats(-1e6, 1e6)),
    dtype=st.sampled_from([DT.DT_FLOAT, DT.DT_DOUBLE]),
    row_format=st.booleans(),
)
def test_in_range_numbers_take_the_numeric_path_with_the_same_tensors(value, dtype, row_format):
    body = {"instances" if row_format else "inputs": value}
    assert check(json.dumps(body).encode(), signature(x=dtype))


@pytest.mark.parametrize(
    "body, dtype",
    [
        ('{"instances": [[0.5, 1, -2.25]]}', DT.DT_FLOAT),
        ('{"instances": [[1, 2], [3, 4]]}', DT.DT_INT32),
        ('{"inputs": [[1.5], [2]]}', DT.DT_DOUBLE),
        ('{"signature_name": "serving_default", "inputs": [18446744073709551615]}', DT.DT_UINT64),
    ],
)
def test_common_numeric_bodies_take_the_numeric_path(body, dtype):
    assert check(body.encode(), signature(x=dtype))


@pytest.mark.parametrize(
    "body",
    [
        '{"instances": [[1, 2], [3]]}',  # ragged
        '{"instances": [[1], [[2]]]}',  # a list among the leaves
        '{"instances": [[1, true]]}',
        '{"instances": [["a"]]}',
        '{"instances": []}',
        '{"instances": [NaN]}',
        '{"instances": [1e400]}',
        '{"instances": [1], "instances": [2]}',
        '{"instances": [1], "inputs": [2]}',
        '{"signature_name": "a\\"b", "instances": [1]}',
        '{"signature_name": 3, "instances": [1]}',
        '{"instances": [1e30]}',  # beyond float32's exact integers: the general path decides
        "[1, 2]",
        '{"instances": [1,',
    ],
)
def test_other_bodies_are_left_to_the_general_decoder(body):
    assert not check(body.encode(), signature(x=DT.DT_FLOAT))


one_row_values = st.lists(
    st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=40,
)


@PROPERTIES
@given(
    row=one_row_values,
    dtype=st.sampled_from(NUMERIC_DTYPES),
    space=st.sampled_from(["", " ", "\n", " \t\r\n "]),
    limit=st.integers(0, 400),
)
def test_one_row_bodies_decode_as_the_general_decoder_does(row, dtype, space, limit):
    text = f'{space}{{{space}"instances"{space}:{space}[{space}[{space}'
    text += f"{space},{space}".join(json.dumps(v) for v in row)
    text += f"{space}]{space}]{space}}}{space}"
    raw = text.encode()
    assert isinstance(T.parse_numeric(raw), OneRowBody)
    check(raw, signature(x=dtype), limit)


@pytest.mark.parametrize(
    "body",
    [
        '{"instances": [[1, 2,]]}',
        '{"instances": [[1 2]]}',
        '{"instances": [[1]]} x',
        '{"instances": [[]]}',
        '{"instances":\u000b[[1]]}',  # a vertical tab: not JSON whitespace
        '{"instances": [[1, 2], [3]]}',
        '{"instances": [[1e400]]}',
        '{"instances": [[-]]}',
        '{"instances": [[1, "2"]]}',
        '{"instances": [[1]], "instances": [[2]]}',
    ],
)
def test_near_one_row_bodies_are_decided_as_the_general_decoder_decides(body):
    raw = json.loads(json.dumps(body)).encode()
    for sig in (signature(x=DT.DT_FLOAT), signature(x=DT.DT_FLOAT, y=DT.DT_FLOAT)):
        check(raw, sig)


def test_a_document_kept_alive_does_not_block_the_next_body():
    kept = T.parse_numeric(b'{"instances": [1]}')
    other = T.parse_numeric(b'{"instances": [[2.5]]}')
    inputs, _ = other.decode(signature(x=DT.DT_FLOAT))
    assert inputs["x"].tolist() == [[2.5]]
    assert kept is not None
