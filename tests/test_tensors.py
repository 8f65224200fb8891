"""Tests for the tensor codec: dtypes, JSON request/response bodies, TensorProtos, tf.Examples.

TensorFlow's own ``make_tensor_proto``/``make_ndarray`` serve as the reference
for TensorProto conversion; JSON expectations are the bodies and messages
TensorFlow Serving clients see.
"""

from __future__ import annotations

import json
import math
import struct
import time
import tracemalloc

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import input_pb2

from jupyter_tfserve.core import tensors as T
from jupyter_tfserve.core.signatures import SignatureInfo, TensorSpec
from jupyter_tfserve.core.status import Code, ServingError

DT = types_pb2


def sig(**inputs: int) -> SignatureInfo:
    specs = {k: TensorSpec(k, f"{k}:0", dtype, None) for k, dtype in sorted(inputs.items())}
    return SignatureInfo("serving_default", "tensorflow/serving/predict", specs, {})


def decode(body: bytes, signature: SignatureInfo, bool_free: bool | None = None):
    """Decode as the REST layer does (``bool_free`` from the body's bytes unless given)."""
    if bool_free is None:
        bool_free = T.bool_free(body)
    return T.decode_predict_request(T.parse_json(body), signature, bool_free=bool_free)


def error_of(fn, *args) -> ServingError:
    with pytest.raises(ServingError) as info:
        fn(*args)
    return info.value


def outputs_json(outputs, row_format=False):
    return json.loads(T.encode_predict_response(outputs, row_format))


def float_tokens(array) -> list[str]:
    """The number tokens of a 1-D tensor as written in a columnar response."""
    body = T.encode_predict_response({"y": np.asarray(array)}, False).decode()
    assert body.startswith('{"outputs":[') and body.endswith("]}")
    return body[len('{"outputs":[') : -2].split(",")


# ---------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------

ALL_TF_DTYPES = [
    "float32",
    "float64",
    "int32",
    "uint8",
    "int16",
    "int8",
    "string",
    "complex64",
    "int64",
    "bool",
    "qint8",
    "quint8",
    "qint32",
    "bfloat16",
    "qint16",
    "quint16",
    "uint16",
    "complex128",
    "float16",
    "uint32",
    "uint64",
    "float8_e5m2",
    "float8_e4m3fn",
    "int4",
    "uint4",
]


def sample(tf_dtype: tf.DType) -> np.ndarray:
    if tf_dtype == tf.string:
        return np.array([[b"a", b"bc", b""], [b"\xff\x00", b"x" * 40, b"\xc3\xa9"]], dtype=object)
    if tf_dtype.is_quantized:
        return np.array([[1, 2, 3], [4, 5, 6]], dtype=tf_dtype.as_numpy_dtype)
    if tf_dtype == tf.bool:
        return np.array([[True, False, True], [False, False, True]])
    values = np.array([[1, 2, 3], [4, 5, 7]])
    if tf_dtype.is_complex:
        return (values + 1j * values[::-1]).astype(tf_dtype.as_numpy_dtype)
    return values.astype(tf_dtype.as_numpy_dtype)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.fields:  # quantized: compare raw bytes
        return a.tobytes() == b.tobytes()
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("name", ALL_TF_DTYPES)
def test_dtype_mapping_matches_tensorflow(name):
    tf_dtype = tf.dtypes.as_dtype(name)
    enum = tf_dtype.as_datatype_enum
    assert T.numpy_dtype(enum) == np.dtype(tf_dtype.as_numpy_dtype)
    assert T.datatype_of(sample(tf_dtype)) == enum
    assert T.datatype_name(enum) == types_pb2.DataType.Name(enum)


def test_dtype_mapping_specifics():
    assert T.numpy_dtype(DT.DT_STRING) == np.dtype(object)
    assert T.numpy_dtype(DT.DT_BFLOAT16) == np.dtype(ml_dtypes.bfloat16)
    assert T.numpy_dtype(DT.DT_HALF) == np.dtype(np.float16)
    assert T.datatype_of(np.array(["text"])) == DT.DT_STRING
    assert T.datatype_of(np.array([b"raw"])) == DT.DT_STRING
    assert T.datatype_name(DT.DT_FLOAT) == "DT_FLOAT"
    err = error_of(T.numpy_dtype, DT.DT_RESOURCE)
    assert err.code == Code.INVALID_ARGUMENT and "DT_RESOURCE" in err.message


# ---------------------------------------------------------------------------
# TensorProto
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_TF_DTYPES)
def test_proto_round_trip_with_tensorflow(name):
    tf_dtype = tf.dtypes.as_dtype(name)
    array = sample(tf_dtype)
    ours = T.ndarray_to_tensor_proto(array)
    assert ours.dtype == tf_dtype.as_datatype_enum
    assert not ours.tensor_content  # typed *_val fields, like a Predict response
    assert same(tf.make_ndarray(ours), array)
    theirs = tf.make_tensor_proto(array, dtype=tf_dtype)
    assert same(T.tensor_proto_to_ndarray(theirs), array)


@pytest.mark.parametrize(
    "array, field",
    [
        (np.array([1.5, -2.0], np.float32), "float_val"),
        (np.array([1.5, -2.0], np.float64), "double_val"),
        (np.array([1, -2], np.int32), "int_val"),
        (np.array([1, -2], np.int64), "int64_val"),
        (np.array([True, False]), "bool_val"),
        (np.array([1.5, -2.0], np.float16), "half_val"),
        (np.array([1.5, -2.0], ml_dtypes.bfloat16), "half_val"),
        (np.array([b"a", b"b"], dtype=object), "string_val"),
        (np.array([1 + 2j], np.complex64), "scomplex_val"),
        (np.array([7], np.uint32), "uint32_val"),
        (np.array([2**64 - 1], np.uint64), "uint64_val"),
    ],
)
def test_proto_uses_typed_fields(array, field):
    proto = T.ndarray_to_tensor_proto(array)
    fields = {f.name for f, _ in proto.ListFields()}
    assert fields == {"dtype", "tensor_shape", field}


def test_proto_half_val_holds_bit_patterns():
    proto = T.ndarray_to_tensor_proto(np.array([1.0, -2.0], np.float16))
    assert list(proto.half_val) == [0x3C00, 0xC000]
    proto = T.ndarray_to_tensor_proto(np.array([1.0], ml_dtypes.bfloat16))
    assert list(proto.half_val) == [0x3F80]


def test_proto_scalar_and_shapes():
    proto = T.ndarray_to_tensor_proto(np.float32(2.5))
    assert list(proto.tensor_shape.dim) == [] and list(proto.float_val) == [2.5]
    assert T.tensor_proto_to_ndarray(proto).shape == ()
    empty = T.ndarray_to_tensor_proto(np.zeros((0, 3), np.float32))
    assert [d.size for d in empty.tensor_shape.dim] == [0, 3]
    assert T.tensor_proto_to_ndarray(empty).shape == (0, 3)


def test_proto_strings_from_str_arrays_and_datatype_cast():
    proto = T.ndarray_to_tensor_proto(np.array(["é", "x"]))
    assert proto.dtype == DT.DT_STRING and list(proto.string_val) == ["é".encode(), b"x"]
    proto = T.ndarray_to_tensor_proto(np.array([1, 2], np.int64), DT.DT_FLOAT)
    assert proto.dtype == DT.DT_FLOAT and list(proto.float_val) == [1.0, 2.0]
    assert tf.make_ndarray(proto).dtype == np.float32


def test_proto_tensor_content_is_wrapped_without_copy():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    proto = tf.make_tensor_proto(array)
    assert proto.tensor_content
    result = T.tensor_proto_to_ndarray(proto)
    assert np.array_equal(result, array) and result.dtype == np.float32
    assert not result.flags.writeable  # a view over the message bytes
    assert result.base is not None


def test_proto_broadcast_single_value():
    proto = tf.make_tensor_proto(7.0, dtype=tf.float32, shape=[2, 3])
    assert len(proto.float_val) == 1
    result = T.tensor_proto_to_ndarray(proto)
    assert result.shape == (2, 3) and (result == 7.0).all()
    half = tensor_pb2.TensorProto(dtype=DT.DT_HALF, half_val=[0x3C00])
    half.tensor_shape.dim.add(size=3)
    assert T.tensor_proto_to_ndarray(half).tolist() == [1.0, 1.0, 1.0]
    strings = tensor_pb2.TensorProto(dtype=DT.DT_STRING, string_val=[b"s"])
    strings.tensor_shape.dim.add(size=2)
    assert T.tensor_proto_to_ndarray(strings).tolist() == [b"s", b"s"]


def test_proto_partial_and_missing_values():
    proto = tensor_pb2.TensorProto(dtype=DT.DT_INT32, int_val=[1, 2])
    proto.tensor_shape.dim.add(size=4)
    assert T.tensor_proto_to_ndarray(proto).tolist() == [1, 2, 2, 2]  # repeat the last value
    proto = tensor_pb2.TensorProto(dtype=DT.DT_FLOAT)
    proto.tensor_shape.dim.add(size=2)
    assert T.tensor_proto_to_ndarray(proto).tolist() == [0.0, 0.0]


def test_proto_scalar_typed_value():
    proto = tensor_pb2.TensorProto(dtype=DT.DT_INT64, int64_val=[42])
    result = T.tensor_proto_to_ndarray(proto)
    assert result.shape == () and result.dtype == np.int64 and int(result) == 42


def _proto(dtype, shape, **fields):
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


@pytest.mark.parametrize(
    "proto, needle",
    [
        (_proto(DT.DT_FLOAT, [2], float_val=[1, 2, 3]), "3 values do not fit shape [2]"),
        (
            _proto(DT.DT_FLOAT, [2, 2], tensor_content=b"\x00" * 12),
            "tensor_content has 12 bytes but shape [2,2] of float needs 16",
        ),
        (_proto(DT.DT_RESOURCE, [1]), "unsupported dtype DT_RESOURCE"),
        (_proto(DT.DT_FLOAT, [-1]), "invalid tensor shape [-1]"),
        # Empty, but numpy cannot size it: was a ValueError (found by test_tensor_properties).
        (_proto(DT.DT_FLOAT, [0, 1 << 61]), "invalid tensor shape [0,2305843009213693952]"),
        (_proto(DT.DT_COMPLEX64, [1], scomplex_val=[1.0]), "real/imaginary pairs"),
    ],
)
def test_proto_malformed(proto, needle):
    err = error_of(T.tensor_proto_to_ndarray, proto)
    assert err.code == Code.INVALID_ARGUMENT
    assert err.message.startswith("tensor parsing error: ") and needle in err.message


# ---------------------------------------------------------------------------
# Float formatting
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, dtype, expected",
    [
        ([0.1], np.float32, "0.1"),
        ([1 / 3], np.float32, "0.333333343"),
        ([1 / 3], np.float64, "0.33333333333333331"),
        ([0.1], np.float64, "0.1"),
        ([1.0, -2.0, 0.0], np.float32, "1.0,-2.0,0.0"),
        ([-0.0], np.float32, "-0.0"),
        ([float("nan"), float("inf"), float("-inf")], np.float32, "NaN,Infinity,-Infinity"),
        ([float("nan"), float("inf"), float("-inf")], np.float64, "NaN,Infinity,-Infinity"),
        ([1e-7], np.float32, "1e-07"),
        ([1e-7], np.float64, "1e-07"),
        ([9000000, 999999, 0.5], np.float32, "9e+06,999999.0,0.5"),
        ([0.0003, 0.00003, 555557.5], np.float32, "0.0003,3e-05,555557.5"),
        ([123456789.0], np.float32, "123456792.0"),
        ([16777216.0, 1234567.0], np.float32, "16777216.0,1234567.0"),
        ([3.4028235e38], np.float32, "3.40282347e+38"),
        ([1e22, 1e300, 2.5e-300], np.float64, "1e+22,1e+300,2.5e-300"),
        ([123456789.0, 1.2345678901234567], np.float64, "123456789.0,1.2345678901234567"),
        ([0.1, 1 / 3], np.float16, "0.0999756,0.333252"),
        ([0.1, 1.0], ml_dtypes.bfloat16, "0.100098,1.0"),
    ],
)
def test_float_formatting(values, dtype, expected):
    assert ",".join(float_tokens(np.array(values, dtype=dtype))) == expected


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_float32_tokens_round_trip_and_are_minimal_when_possible():
    rng = np.random.default_rng(7)
    values = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = values[np.isfinite(values)]
    tokens = float_tokens(values)
    for value, token in zip(values.tolist(), tokens, strict=True):
        assert _f32(float(token)) == value
        six, nine = f"{value:.6g}", f"{value:.9g}"
        if _f32(float(six)) == value:
            assert "." in token or "e" in token
            assert float(token) == float(six)
        else:
            assert token in (nine, nine + ".0")


def _chunked_tokens(array: np.ndarray) -> list[str]:
    # Short arrays take the per-value path; joining short pieces gives the reference.
    out = []
    for start in range(0, array.size, 100):
        out.extend(float_tokens(array[start : start + 100]))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16])
def test_large_arrays_format_like_small_ones(dtype):
    rng = np.random.default_rng(3)
    itemsize = np.dtype(dtype).itemsize
    bits = rng.integers(0, 2 ** (8 * itemsize), 30000, dtype=np.uint64)
    raw = bits.astype(f"<u{itemsize}").view(dtype)
    with np.errstate(all="ignore"):
        decimals = (rng.integers(100000, 10**6, 5000) * 10.0 ** rng.integers(-20, 20, 5000)).astype(
            dtype
        )
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 0.1, 1.0, 100.0, 1e-5], dtype=dtype)
    with np.errstate(all="ignore"):
        powers = np.array([10.0**k for k in range(-30, 30)], dtype=np.float64).astype(dtype)
    array = np.concatenate([raw, decimals, specials, powers, np.nextafter(powers, 0)])
    assert float_tokens(array) == _chunked_tokens(array)


def test_encode_small_float_output_is_fast():
    outputs = {"y": np.random.default_rng(0).random((1, 10)).astype(np.float32)}
    T.encode_predict_response(outputs, True)
    best = math.inf
    for _ in range(200):
        start = time.perf_counter()
        T.encode_predict_response(outputs, True)
        best = min(best, time.perf_counter() - start)
    assert best < 50e-6


# ---------------------------------------------------------------------------
# Predict responses
# ---------------------------------------------------------------------------


def test_encode_single_output_omits_name():
    y = np.array([[1.5], [2.0]], np.float32)
    assert T.encode_predict_response({"y": y}, True) == b'{"predictions":[[1.5],[2.0]]}'
    assert T.encode_predict_response({"y": y}, False) == b'{"outputs":[[1.5],[2.0]]}'
    assert T.encode_predict_response({"s": np.float32(3)}, False) == b'{"outputs":3.0}'


def test_encode_ints_bools_strings():
    assert outputs_json({"y": np.array([[1, -2]], np.int64)}) == {"outputs": [[1, -2]]}
    assert outputs_json({"y": np.array([2**64 - 1], np.uint64)}) == {"outputs": [2**64 - 1]}
    assert outputs_json({"y": np.array([True, False])}) == {"outputs": [True, False]}
    strings = np.array([b"caf\xc3\xa9", b'q"'], dtype=object)
    assert outputs_json({"y": strings}) == {"outputs": ["café", 'q"']}


def test_encode_multiple_outputs_row_format():
    outputs = {
        "scores": np.array([[0.5, 0.25], [1.0, 0.0]], np.float32),
        "label": np.array([3, 4]),
        "name_bytes": np.array([b"\x00\x01", b"hi"], dtype=object),
        "text": np.array([b"a", b"\xff"], dtype=object),
    }
    assert outputs_json(outputs, True) == {
        "predictions": [
            {"label": 3, "name_bytes": {"b64": "AAE="}, "scores": [0.5, 0.25], "text": "a"},
            {
                "label": 4,
                "name_bytes": {"b64": "aGk="},
                "scores": [1.0, 0.0],
                "text": {"b64": "/w=="},
            },
        ]
    }


def test_encode_multiple_outputs_columnar():
    outputs = {"a": np.array([1, 2]), "b": np.array([[1.5], [2.5], [3.5]], np.float32)}
    assert outputs_json(outputs) == {"outputs": {"a": [1, 2], "b": [[1.5], [2.5], [3.5]]}}


_RNG = np.random.default_rng(11)


@pytest.mark.parametrize(
    "name,batch",
    [
        ("probabilities", _RNG.random((32, 10), dtype=np.float32)),
        ("score", _RNG.random(32)),  # float64, one value per row
        ("wide", _RNG.random((32, 500), dtype=np.float32)),  # the batch: the vectorised writer
        ("huge", _RNG.random((32, 600), dtype=np.float32)),  # past the bound: per request
        ("swapped", _RNG.random((32, 3)).astype(">f4")),
        ("ids", _RNG.integers(-(2**40), 2**40, (32, 3))),
        ("flags", _RNG.random((32, 2)) > 0.5),
        ("words", np.array([f"w{i}".encode() for i in range(32)], dtype=object)),
        ("words_bytes", np.array([bytes([i, 255]) for i in range(32)], dtype=object)),
        ("empty_rows", np.zeros((32, 0), np.float32)),
        ("nans", np.array([[np.nan, np.inf, -0.0, 1.0]] * 32, np.float32)),
    ],
)
def test_a_batch_answer_writes_what_its_own_rows_write(name, batch):
    from jupyter_tfserve.core.batching import BatchAnswer
    from jupyter_tfserve.core.tensors.json_encode import BATCH_WRITE_ELEMENTS

    outputs, memo = {name: batch, "other": np.zeros((32, 1), np.float32)}, {}
    for start, rows in ((0, 1), (5, 3), (31, 1), (7, 1)):
        mine = {name: batch[start : start + rows]}
        answer = BatchAnswer(mine, outputs, start, memo)
        for row_format in (True, False):
            got = T.encode_predict_response(answer, row_format)
            assert got == T.encode_predict_response(dict(mine), row_format)
    # Written once for the batch and cut for each request, up to the bound.
    assert (name in memo) == (batch.size <= BATCH_WRITE_ELEMENTS)
    both = {name: batch[2:4], "other": outputs["other"][2:4]}
    answer = BatchAnswer(both, outputs, 2, memo)  # several outputs: written per request
    assert T.encode_predict_response(answer, True) == T.encode_predict_response(dict(both), True)


def test_encode_non_native_byte_order():
    assert float_tokens(np.array([0.1, 1 / 3], ">f4")) == ["0.1", "0.333333343"]


def test_encode_bytes_suffix_applies_to_strings_only():
    outputs = {"x_bytes": np.array([b"hello"], dtype=object)}
    assert outputs_json(outputs) == {"outputs": [{"b64": "aGVsbG8="}]}
    assert outputs_json({"n_bytes": np.array([1, 2])}) == {"outputs": [1, 2]}


def test_encode_large_multi_output_rows():
    rng = np.random.default_rng(5)
    a = rng.random((300, 4)).astype(np.float32)
    b = rng.random(300)
    body = T.encode_predict_response({"a": a, "b": b}, True)
    rows = json.loads(body)["predictions"]
    assert len(rows) == 300
    assert all(
        np.float32(v) == x
        for row, ref in zip(rows, a, strict=True)
        for v, x in zip(row["a"], ref, strict=True)
    )
    assert [row["b"] for row in rows] == b.tolist()


def test_encode_empty_batches():
    assert T.encode_predict_response({"y": np.zeros((0, 3), np.float32)}, True) == (
        b'{"predictions":[]}'
    )
    outputs = {"a": np.zeros((2, 0), np.float32), "b": np.array([1, 2])}
    assert outputs_json(outputs, True) == {"predictions": [{"a": [], "b": 1}, {"a": [], "b": 2}]}
    assert outputs_json({"y": np.zeros((2, 0, 3), np.float32)}) == {"outputs": [[], []]}


@pytest.mark.parametrize(
    "outputs, row_format, message",
    [
        ({}, True, "Cannot convert empty tensor map to JSON"),
        ({"y": np.float32(1)}, True, "Tensor name: y has no shape information "),
        (
            {"a": np.array([1, 2]), "b": np.array([1, 2, 3])},
            True,
            "Tensor name: b has inconsistent batch size: 3 expecting: 2",
        ),
        (
            {"c": np.array([1 + 1j], np.complex64)},
            False,
            "Failed to write JSON value for tensor type: complex64",
        ),
    ],
)
def test_encode_errors(outputs, row_format, message):
    err = error_of(T.encode_predict_response, outputs, row_format)
    assert err.code == Code.INVALID_ARGUMENT and err.message == message


def test_encode_nonfinite_output_is_json_with_nan_tokens():
    body = T.encode_predict_response({"y": np.array([np.nan, -np.inf], np.float32)}, True)
    assert body == b'{"predictions":[NaN,-Infinity]}'
    parsed = json.loads(body)["predictions"]
    assert math.isnan(parsed[0]) and parsed[1] == -math.inf


# ---------------------------------------------------------------------------
# JSON parsing
# ---------------------------------------------------------------------------


def test_parse_json_accepts_nonfinite_numbers():
    parsed = T.parse_json(b'{"a": [NaN, Infinity, -Infinity, 1.5, 2]}')
    assert math.isnan(parsed["a"][0]) and parsed["a"][1:3] == [math.inf, -math.inf]
    assert parsed["a"][3:] == [1.5, 2] and type(parsed["a"][4]) is int


def test_parse_json_big_integers_become_doubles():
    parsed = T.parse_json(b"[18446744073709551616, NaN]")
    assert parsed[0] == 2.0**64 and type(parsed[0]) is float


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"  \n\t", "JSON Parse error: The document is empty"),
        (b'{"a":}', "JSON Parse error: Invalid value. at offset: 5"),
        (
            b'{"a" 1}',
            "JSON Parse error: Missing a colon after a name of object member. at offset: 5",
        ),
        (b"[1 2]", "JSON Parse error: Missing a comma or ']' after an array element. at offset: 3"),
        (
            b'{"a":1 "b":2}',
            "JSON Parse error: Missing a comma or '}' after an object member. at offset: 7",
        ),
        (b'{"a":1,}', "JSON Parse error: Missing a name for object member. at offset: 7"),
        (
            b"{} x",
            "JSON Parse error: The document root must not be followed by other values. at offset: 3",
        ),
        (b"[1e400]", "JSON Parse error: Number too big to be stored in double. at offset: 1"),
    ],
)
def test_parse_json_errors(body, message):
    err = error_of(T.parse_json, body)
    assert err.code == Code.INVALID_ARGUMENT and err.message == message


# ---------------------------------------------------------------------------
# Predict requests
# ---------------------------------------------------------------------------


def test_decode_row_format_single_input():
    inputs, row = decode(b'{"instances": [[1.0, 2.0], [3.0, 4.0]]}', sig(x=DT.DT_FLOAT))
    assert row is True
    assert inputs["x"].dtype == np.float32 and inputs["x"].tolist() == [[1, 2], [3, 4]]


def test_decode_bare_value_forms():
    inputs, row = decode(b'{"instances": [1.0, 2.0]}', sig(x=DT.DT_FLOAT))
    assert row and inputs["x"].shape == (2,)
    inputs, row = decode(b'{"inputs": [[1.0]]}', sig(x=DT.DT_FLOAT))
    assert not row and inputs["x"].shape == (1, 1)
    inputs, row = decode(b'{"inputs": 3}', sig(x=DT.DT_INT32))
    assert inputs["x"].shape == () and int(inputs["x"]) == 3
    inputs, _ = decode(b'{"inputs": {"x": [5]}}', sig(x=DT.DT_INT64))
    assert inputs["x"].dtype == np.int64 and inputs["x"].tolist() == [5]


def test_decode_does_not_check_declared_shape():
    declared = SignatureInfo(
        "serving_default",
        "tensorflow/serving/predict",
        {"x": TensorSpec("x", "x:0", DT.DT_FLOAT, (-1, 1))},
        {},
    )
    inputs, _ = decode(b'{"instances": [1.0, 2.0, 5.0]}', declared)
    assert inputs["x"].shape == (3,)


def test_decode_row_format_multiple_inputs():
    signature = sig(a=DT.DT_INT32, s=DT.DT_STRING, f=DT.DT_DOUBLE)
    body = (
        b'{"instances": [{"a": [1, 2], "s": "foo", "f": 0.5},'
        b' {"a": [3, 4], "s": {"b64": "YmFy"}, "f": 1}]}'
    )
    inputs, row = decode(body, signature)
    assert row
    assert inputs["a"].dtype == np.int32 and inputs["a"].tolist() == [[1, 2], [3, 4]]
    assert inputs["s"].dtype == object and inputs["s"].tolist() == [b"foo", b"bar"]
    assert inputs["f"].dtype == np.float64 and inputs["f"].tolist() == [0.5, 1.0]


def test_decode_columnar_multiple_inputs_ignores_extra_keys():
    signature = sig(a=DT.DT_INT32, s=DT.DT_STRING)
    inputs, row = decode(b'{"inputs": {"a": [[1], [2]], "s": ["x", "y"], "zz": 1}}', signature)
    assert not row and set(inputs) == {"a", "s"}
    assert inputs["a"].shape == (2, 1) and inputs["s"].tolist() == [b"x", b"y"]


def test_decode_b64_strings():
    body = b'{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ"}]}'
    inputs, _ = decode(body, sig(x=DT.DT_STRING))
    assert inputs["x"].tolist() == [b"hello", b"world"]
    inputs, _ = decode(b'{"inputs": {"b64": "AAE="}}', sig(x=DT.DT_STRING))
    assert inputs["x"].shape == () and inputs["x"].item() == b"\x00\x01"


def test_decode_raw_bytes_inside_json_strings_are_kept():
    inputs, _ = decode(b'{"instances": ["\xff\xfe", "ok"]}', sig(x=DT.DT_STRING))
    assert inputs["x"].tolist() == [b"\xff\xfe", b"ok"]


def test_decode_numbers():
    inputs, _ = decode(b'{"instances": [NaN, Infinity, -Infinity, 1, 2.5]}', sig(x=DT.DT_FLOAT))
    x = inputs["x"]
    assert math.isnan(x[0]) and x[1] == np.inf and x[2] == -np.inf and x[3:].tolist() == [1, 2.5]
    inputs, _ = decode(b'{"instances": [[true, false]]}', sig(x=DT.DT_BOOL))
    assert inputs["x"].dtype == np.bool_ and inputs["x"].tolist() == [[True, False]]
    inputs, _ = decode(b'{"instances": [18446744073709551615]}', sig(x=DT.DT_UINT64))
    assert inputs["x"].tolist() == [2**64 - 1]
    inputs, _ = decode(b'{"instances": [[1.0, 2.0]]}', sig(x=DT.DT_HALF))
    assert inputs["x"].dtype == np.float16 and inputs["x"].tolist() == [[1.0, 2.0]]
    inputs, _ = decode(b'{"instances": [[0.5]]}', sig(x=DT.DT_BFLOAT16))
    assert inputs["x"].dtype == ml_dtypes.bfloat16 and inputs["x"].tolist() == [[0.5]]


def test_decode_empty_and_nested_lists():
    inputs, _ = decode(b'{"instances": [[], []]}', sig(x=DT.DT_FLOAT))
    assert inputs["x"].shape == (2, 0)
    inputs, _ = decode(b'{"instances": [{"x": [[1, 2]]}, {"x": [[3, 4]]}]}', sig(x=DT.DT_FLOAT))
    assert inputs["x"].shape == (2, 1, 2)


def _element(index: int, message: str) -> str:
    return f"Failed to process element: {index} of 'instances' list. Error: INVALID_ARGUMENT: {message}"


PREDICT_ERRORS = [
    (b'{"foo": 1}', sig(x=DT.DT_FLOAT), "Missing 'inputs' or 'instances' key"),
    (b"[1]", sig(x=DT.DT_FLOAT), "JSON Value: [\n    1\n] Is not object"),
    (
        b'{"instances": [1], "inputs": [1]}',
        sig(x=DT.DT_FLOAT),
        'JSON Value: {\n    "instances": [\n        1\n    ],\n    "inputs": [\n        1\n    ]\n}'
        " Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
    ),
    (
        b'{"instances": 1}',
        sig(x=DT.DT_FLOAT),
        "JSON Value: {\n    \"instances\": 1\n} Excepting 'instances' to be an list/array",
    ),
    (
        b'{"instances": []}',
        sig(x=DT.DT_FLOAT),
        "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array",
    ),
    (
        b'{"instances": ["abc"]}',
        sig(x=DT.DT_FLOAT),
        _element(0, 'JSON Value: "abc" Type: String is not of expected type: float'),
    ),
    (
        b'{"instances": [1, 1.5]}',
        sig(x=DT.DT_INT32),
        _element(1, "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    ),
    (
        b'{"instances": [true]}',
        sig(x=DT.DT_FLOAT),
        _element(0, "JSON Value: true Type: True is not of expected type: float"),
    ),
    (
        b'{"instances": [1]}',
        sig(x=DT.DT_BOOL),
        _element(0, "JSON Value: 1 Type: Number is not of expected type: bool"),
    ),
    (
        b'{"instances": [null]}',
        sig(x=DT.DT_INT64),
        _element(0, "JSON Value: null Type: Null is not of expected type: int64"),
    ),
    (
        b'{"instances": [3000000000]}',
        sig(x=DT.DT_INT32),
        _element(0, "JSON Value: 3000000000 Type: Number is not of expected type: int32"),
    ),
    (
        b'{"instances": [16777217]}',
        sig(x=DT.DT_FLOAT),
        _element(0, "Cannot convert JSON value: 16777217 to float without loss of precision."),
    ),
    (
        b'{"instances": [1e39]}',
        sig(x=DT.DT_FLOAT),
        _element(0, "Cannot convert JSON value: 1e+39 to float without loss of precision."),
    ),
    (
        b'{"instances": [9007199254740993]}',
        sig(x=DT.DT_DOUBLE),
        _element(
            0, "Cannot convert JSON value: 9007199254740993 to double without loss of precision."
        ),
    ),
    (
        b'{"instances": [[1, 2], [3, 4], [5, 6, 7]]}',
        sig(x=DT.DT_INT32),
        _element(2, "Expecting tensor size: 2 but got: 3"),
    ),
    (
        b'{"instances": [[1, 2], [3, 4], [[5, 6]]]}',
        sig(x=DT.DT_INT32),
        _element(2, "Expecting shape [2] but got: [1,2]"),
    ),
    (
        b'{"instances": [1, [1]]}',
        sig(x=DT.DT_INT32),
        _element(1, "Expecting shape [] but got: [1]"),
    ),
    (
        b'{"instances": [[[1, 2], [3]]]}',
        sig(x=DT.DT_INT32),
        _element(0, "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
    ),
    (
        b'{"inputs": [[1, 2], 3]}',
        sig(x=DT.DT_INT32),
        "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2",
    ),
    (
        b'{"inputs": [1, [2]]}',
        sig(x=DT.DT_INT32),
        "Encountered list at unexpected level: 1 expected < 1",
    ),
    (
        b'{"instances": [{"b64": "aGVsbG8="}]}',
        sig(x=DT.DT_FLOAT),
        _element(
            0, 'JSON Value: {\n    "b64": "aGVsbG8="\n} Type: Object is not of expected type: float'
        ),
    ),
    (
        b'{"inputs": [{"b64": 5}]}',
        sig(x=DT.DT_STRING),
        'JSON Value: {\n    "b64": 5\n} not formatted correctly for base64 data',
    ),
    (b'{"inputs": [{"b64": "!!"}]}', sig(x=DT.DT_STRING), "Unable to base64 decode"),
    (
        b'{"instances": [{"a": [1], "s": "x"}, {"a": [2]}]}',
        sig(a=DT.DT_INT32, s=DT.DT_STRING),
        "Failed to process element: 1 of 'instances' list. JSON object: "
        '{\n    "a": [\n        2\n    ]\n} keys must be equal to: a,s',
    ),
    (
        b'{"instances": [{"a": [1], "s": "x", "z": 1}]}',
        sig(a=DT.DT_INT32, s=DT.DT_STRING),
        "Failed to process element: 0 key: z of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON object: does not have named input: z",
    ),
    (
        b'{"instances": [{"a": [1.5], "s": "x"}]}',
        sig(a=DT.DT_INT32, s=DT.DT_STRING),
        "Failed to process element: 0 key: a of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON Value: 1.5 Type: Number is not of expected type: int32",
    ),
    (
        b'{"instances": [{"a": [1], "s": "x"}, [1]]}',
        sig(a=DT.DT_INT32, s=DT.DT_STRING),
        "Expecting object but got list at item 1 of input list",
    ),
    (
        b'{"instances": [["a"], {"s": ["b"]}]}',
        sig(s=DT.DT_STRING),
        "Expecting value/list but got object at item 1 of input list",
    ),
    (
        b'{"instances": [[1]]}',
        sig(a=DT.DT_INT32, s=DT.DT_STRING),
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    (
        b'{"instances": [{"b64": "AA=="}]}',
        sig(a=DT.DT_STRING, s=DT.DT_STRING),
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    (
        b'{"inputs": [1]}',
        sig(a=DT.DT_INT32, s=DT.DT_STRING),
        "inputs is a plain value/list, but expecting an object as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    (
        b'{"inputs": {"a": [1]}}',
        sig(a=DT.DT_INT32, s=DT.DT_STRING),
        "Missing named input: s in 'inputs' object.",
    ),
]


@pytest.mark.parametrize("body, signature, message", PREDICT_ERRORS)
def test_decode_predict_errors(body, signature, message):
    err = error_of(decode, body, signature)
    assert err.code == Code.INVALID_ARGUMENT
    assert err.message == message


def test_decode_unsupported_json_dtype():
    err = error_of(decode, b'{"inputs": [1]}', sig(x=DT.DT_COMPLEX64))
    assert err.code == Code.UNIMPLEMENTED
    assert err.message == "Conversion of JSON Value: 1 to type: complex64"


def test_decode_narrow_ints_wrap_like_a_cast():
    inputs, _ = decode(b'{"instances": [300, -1]}', sig(x=DT.DT_UINT8))
    assert inputs["x"].dtype == np.uint8 and inputs["x"].tolist() == [44, 255]


# ---------------------------------------------------------------------------
# Classify / regress
# ---------------------------------------------------------------------------


def _features(serialized: bytes) -> dict[str, feature_pb2.Feature]:
    return dict(example_pb2.Example.FromString(serialized).features.feature)


def test_decode_examples_with_context():
    body = (
        b'{"signature_name": "s", "context": {"query": "pizza", "age": 5},'
        b' "examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0, NaN], "age": 20},'
        b' {"names": [{"b64": "aGVsbG8="}], "mix": [1, true, false], "one": 6.0}, {}]}'
    )
    first, second, third = T.decode_examples(T.parse_json(body))
    f = _features(first)
    assert list(f["names"].bytes_list.value) == [b"foo", b"bar"]
    ratings = list(f["ratings"].float_list.value)
    assert ratings[:2] == [8.0, 9.0] and math.isnan(ratings[2])
    assert list(f["age"].int64_list.value) == [20]  # the example's own feature wins
    assert list(f["query"].bytes_list.value) == [b"pizza"]
    f = _features(second)
    assert list(f["names"].bytes_list.value) == [b"hello"]
    assert list(f["mix"].int64_list.value) == [1, 1, 0]
    assert list(f["one"].float_list.value) == [6.0]
    assert list(f["age"].int64_list.value) == [5]
    assert set(_features(third)) == {"query", "age"}


def test_decode_examples_without_context_and_empty_feature():
    (serialized,) = T.decode_examples({"examples": [{"a": 1, "e": []}]})
    f = _features(serialized)
    assert list(f["a"].int64_list.value) == [1]
    assert f["e"].WhichOneof("kind") is None


@pytest.mark.parametrize(
    "body, message",
    [
        (
            b'{"x": 1}',
            "JSON Value: {\n    \"x\": 1\n} When method is classify, key 'examples' is expected "
            "and was not found",
        ),
        (
            b'{"examples": {}}',
            "JSON Value: {\n    \"examples\": {}\n} Expecting 'examples' value to be an list/array",
        ),
        (
            b'{"examples": []}',
            "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array",
        ),
        (b'{"context": [1], "examples": [{}]}', "Example must be JSON object but got JSON Array"),
        (b'{"examples": [[1]]}', "Example must be JSON object but got JSON Array"),
        (
            b'{"examples": [{"n": [10, 10.0]}]}',
            "Unexpected element type in feature: n expecting type: int64",
        ),
        (
            b'{"examples": [{"n": ["s", 1]}]}',
            "Unexpected element type in feature: n expecting type: bytes",
        ),
        (
            b'{"examples": [{"n": [10, null]}]}',
            "Feature: n has element with unexpected JSON type: Null",
        ),
        (
            b'{"examples": [{"n": [[10], 20]}]}',
            "Feature: n has element with unexpected JSON type: Array",
        ),
        (
            b'{"examples": [{"n": {"x": 1}}]}',
            "Feature: n has element with unexpected JSON type: Object",
        ),
        (
            b'{"examples": [{"n": [20, 18446744073709551603]}]}',
            "Feature: n has uint64 element. Only int64 is supported.",
        ),
        (
            b'{"examples": [{"n": 1e39}]}',
            "Cannot convert JSON value: 1e+39 to float without loss of precision.",
        ),
    ],
)
def test_decode_examples_errors(body, message):
    err = error_of(T.decode_examples, T.parse_json(body))
    assert err.code == Code.INVALID_ARGUMENT and err.message == message


def _example(**features) -> example_pb2.Example:
    example = example_pb2.Example()
    for name, values in features.items():
        if isinstance(values[0], bytes):
            example.features.feature[name].bytes_list.value.extend(values)
        else:
            example.features.feature[name].float_list.value.extend(values)
    return example


def test_input_to_serialized_examples():
    plain = input_pb2.Input()
    plain.example_list.examples.extend([_example(a=[1.0]), _example(a=[2.0])])
    out = T.input_to_serialized_examples(plain)
    assert [list(_features(s)["a"].float_list.value) for s in out] == [[1.0], [2.0]]

    grouped = input_pb2.Input()
    grouped.example_list_with_context.context.CopyFrom(_example(c=[b"ctx"], a=[9.0]))
    grouped.example_list_with_context.examples.extend([_example(a=[1.0]), _example(b=[2.0])])
    first, second = (_features(s) for s in T.input_to_serialized_examples(grouped))
    assert list(first["a"].float_list.value) == [1.0] and first["c"].bytes_list.value == [b"ctx"]
    assert list(second["a"].float_list.value) == [9.0] and list(second["b"].float_list.value) == [
        2.0
    ]


def test_input_empty():
    for proto in (input_pb2.Input(), input_pb2.Input(example_list=input_pb2.ExampleList())):
        err = error_of(T.input_to_serialized_examples, proto)
        assert err.code == Code.INVALID_ARGUMENT and err.message == "Input is empty."


def test_encode_classify_response():
    classes = np.array([[b"car", b"bike"], [b"bus", b"car"]], dtype=object)
    scores = np.array([[0.2, 0.7], [0.1, 1 / 3]], np.float32)
    assert T.encode_classify_response(classes, scores) == (
        b'{"results":[[["car",0.2],["bike",0.7]],[["bus",0.1],["car",0.333333343]]]}'
    )
    assert json.loads(T.encode_classify_response(None, scores[:1])) == {
        "results": [[["", 0.2], ["", 0.7]]]
    }
    assert json.loads(T.encode_classify_response(classes[:1], None)) == {
        "results": [[["car", 0.0], ["bike", 0.0]]]
    }


def test_encode_classify_errors():
    err = error_of(T.encode_classify_response, np.array([b"a"], dtype=object), None)
    assert err.message == "Expected Tensor shape: [batch_size num_classes] but got [1]"
    err = error_of(T.encode_classify_response, None, np.zeros((0, 2), np.float32))
    assert err.message == "Cannot convert empty ClassificationResults to JSON"
    no_classes = T.encode_classify_response(np.zeros((2, 0), dtype=object), None)
    assert no_classes == b'{"results":[[],[]]}'


def test_encode_regress_response():
    assert T.encode_regress_response(np.array([[0.2], [0.9], [1.0]], np.float32)) == (
        b'{"results":[0.2,0.9,1.0]}'
    )
    assert T.encode_regress_response(np.array([np.inf, np.nan], np.float32)) == (
        b'{"results":[Infinity,NaN]}'
    )
    err = error_of(T.encode_regress_response, np.zeros((2, 2), np.float32))
    assert err.message.startswith("Expected output Tensor shape to be either [batch_size]")
    err = error_of(T.encode_regress_response, np.zeros(0, np.float32))
    assert err.message == "Cannot convert empty RegressionResults to JSON"


def test_dumps_handles_numpy_values():
    body = T.dumps({"v": np.int64(3), "a": np.array([1.5, 2.0]), "b": b"x", "s": "é"})
    assert json.loads(body) == {"v": 3, "a": [1.5, 2.0], "b": "x", "s": "é"}
    assert json.loads(T.dumps({"h": np.array([0.5], np.float16)})) == {"h": [0.5]}


# Bodies without true/false that sit on the edges of the numeric fast path.
BOOL_FREE_CASES = [
    (b'{"instances": [[1.5, 2, -3.25e-3]]}', DT.DT_FLOAT),
    (b'{"instances": [[16777215, 1.0]]}', DT.DT_FLOAT),  # largest exact int in float32
    (b'{"instances": [[16777217, 1.0]]}', DT.DT_FLOAT),  # not exact: the exact path decides
    (b'{"instances": [[1e39]]}', DT.DT_FLOAT),  # out of float32 range
    (b'{"instances": [[NaN, Infinity, -Infinity]]}', DT.DT_FLOAT),
    (b'{"instances": [[1, 2], [3]]}', DT.DT_FLOAT),  # ragged
    (b'{"instances": [[1, "2"]]}', DT.DT_FLOAT),  # a string among numbers
    (b'{"instances": [[1, null]]}', DT.DT_FLOAT),
    (b'{"instances": [1.5, 2]}', DT.DT_INT32),  # a float where ints are expected
    (b'{"instances": [2147483648]}', DT.DT_INT32),  # out of int32 range
    (b'{"instances": [300, -1]}', DT.DT_UINT8),  # narrowed like a C cast
    (b'{"instances": [18446744073709551615]}', DT.DT_UINT64),
    (b'{"instances": [9223372036854775807, -9223372036854775808]}', DT.DT_INT64),
    (b'{"instances": [65504, 70000]}', DT.DT_HALF),
    (b'{"instances": [1.0, 2.5]}', DT.DT_BFLOAT16),
    (b'{"inputs": 3}', DT.DT_DOUBLE),  # a scalar
    (b'{"inputs": [[[1], [2]], [[3], [4]]]}', DT.DT_FLOAT),
    (b'{"inputs": []}', DT.DT_FLOAT),
    (b'{"instances": [{"x": [1, 2]}, {"x": [3, 4]}]}', DT.DT_INT64),
]


@pytest.mark.parametrize(("body", "dtype"), BOOL_FREE_CASES)
def test_bool_free_fast_path_decodes_exactly_like_the_checked_path(body, dtype):
    assert T.bool_free(body)
    signature = sig(x=dtype)
    results = []
    for bool_free in (False, True):
        try:
            inputs, row_format = decode(body, signature, bool_free)
        except ServingError as exc:
            results.append(("error", exc.code, exc.message))
        else:
            x = inputs["x"]
            results.append(("ok", row_format, x.dtype, x.shape, x.tobytes()))
    assert results[0] == results[1]


def test_bool_free_sees_bool_literals_anywhere():
    assert not T.bool_free(b'{"instances": [1.0, true]}')
    assert not T.bool_free(b'{"instances": [false]}')
    assert T.bool_free(b'{"instances": [1.0, 2.0]}')
    assert not T.bool_free(b'{"inputs": {"x": [1], "flag": false}}')
    assert T.bool_free(b'{"inputs": [null, 1.5], "signature_name": "u"}')


# ---------------------------------------------------------------------------
# Bounds: what one request can make the codec allocate, and what its errors cost
# ---------------------------------------------------------------------------

MiB = 1024 * 1024


def _peak_allocated(fn, *args) -> tuple[int, BaseException | None]:
    """Peak bytes traced (numpy's buffers included) while ``fn`` runs, and what it raised."""
    tracemalloc.start()
    try:
        fn(*args)
        raised = None
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        raised = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, raised


@pytest.mark.parametrize(
    "proto, shape_text",
    [
        (_proto(DT.DT_FLOAT, [1 << 40], float_val=[1.0]), "shape [1099511627776] and type float"),
        (_proto(DT.DT_FLOAT, [1 << 20, 1 << 20]), "shape [1048576,1048576] and type float"),
        (_proto(DT.DT_INT64, [100_000_000], int64_val=[1, 2]), "shape [100000000] and type int64"),
        (
            _proto(DT.DT_STRING, [10_000_000], string_val=[b"x" * 100]),
            "shape [10000000] and type string",
        ),
    ],
)
def test_proto_fill_over_the_budget_is_refused_before_allocating(proto, shape_text):
    peak, raised = _peak_allocated(T.tensor_proto_to_ndarray, proto, T.TensorBudget(64 * MiB))
    assert isinstance(raised, ServingError), raised
    assert raised.code == Code.RESOURCE_EXHAUSTED
    assert shape_text in raised.message and "max_request_tensor_bytes" in raised.message
    assert peak < MiB


def test_proto_budget_counts_every_tensor_of_a_request():
    budget = T.TensorBudget(1000)
    first = T.tensor_proto_to_ndarray(_proto(DT.DT_FLOAT, [200], float_val=[1.0]), budget)
    assert first.shape == (200,) and budget.remaining == 200
    wrapped = _proto(DT.DT_FLOAT, [60], tensor_content=b"\x00" * 240)
    err = error_of(T.tensor_proto_to_ndarray, wrapped, budget)
    assert err.code == Code.RESOURCE_EXHAUSTED
    assert "200 left of the request's limit of 1000" in err.message
    last = _proto(DT.DT_FLOAT, [50], tensor_content=b"\x00" * 200)
    assert T.tensor_proto_to_ndarray(last, budget).size == 50 and budget.remaining == 0


def test_proto_string_fill_is_charged_for_its_content():
    strings = _proto(DT.DT_STRING, [1000], string_val=[b"a", b"x" * 1000])
    # 1000 elements: their slots, plus the last value's 1000 bytes 999 times over.
    err = error_of(T.tensor_proto_to_ndarray, strings, T.TensorBudget(1_000_000))
    assert err.code == Code.RESOURCE_EXHAUSTED and "shape [1000] and type string" in err.message
    result = T.tensor_proto_to_ndarray(strings, T.TensorBudget(2 * MiB))
    assert result.tolist() == [b"a"] + [b"x" * 1000] * 999


@pytest.mark.parametrize(
    "body, shape_text",
    [
        (b'{"inputs": [' + b"1," * 99 + b"1]}", "shape [100] and type float"),
        (b'{"instances": [' + b"[1,1]," * 49 + b"[1,1]]}", "shape [50,2] and type float"),
        (
            b'{"instances": [' + b'{"x": [1,1]},' * 49 + b'{"x": [1,1]}]}',
            "shape [50,2] and type float",
        ),
        (
            b'{"inputs": [' + b'{"b64": "eA=="},' * 9 + b'{"b64": "eA=="}]}',
            "shape [10] and type string",
        ),
    ],
)
def test_json_tensors_over_the_budget_are_refused(body, shape_text):
    string = b"b64" in body
    signature = sig(x=DT.DT_STRING if string else DT.DT_FLOAT)
    request = T.parse_json(body)
    limit = 399 if string else 396  # one byte short / one float short of the tensor
    err = error_of(
        lambda: T.decode_predict_request(request, signature, budget=T.TensorBudget(limit))
    )
    assert err.code == Code.RESOURCE_EXHAUSTED and shape_text in err.message
    inputs, _ = T.decode_predict_request(request, signature, budget=T.TensorBudget(400))
    assert inputs["x"].size in (10, 100)


def _nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def test_error_quoting_a_huge_value_is_bounded_and_cheap():
    """The issue's body: quoted in full, this value was an 11 MB message and 0.4 s of printing."""
    body = ('{"inputs": 1, "instances": [' + ",".join([_nested(200)] * 70) + "]}").encode()
    err = error_of(decode, body, sig(x=DT.DT_FLOAT))
    assert err.code == Code.INVALID_ARGUMENT
    assert err.message.startswith(
        'JSON Value: {\n    "inputs": 1,\n    "instances": [\n        [\n'
    )
    assert err.message.endswith(
        "... Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
    )
    assert len(err.message) < 2 * 1024


def test_error_quoting_a_long_string_is_clipped():
    err = error_of(decode, b'{"inputs": ["' + b"s" * 1_000_000 + b'"]}', sig(x=DT.DT_FLOAT))
    assert err.message.startswith('JSON Value: "sss') and "...Type: String" not in err.message
    assert err.message.endswith("... Type: String is not of expected type: float")
    assert len(err.message) < 1100


@pytest.mark.parametrize("depth", [300, 900, 5000])
def test_deep_nesting_is_a_clean_invalid_argument(depth):
    body = ('{"instances": [' + _nested(depth) + ", 1]}").encode()
    err = error_of(decode, body, sig(x=DT.DT_FLOAT))
    assert err.code == Code.INVALID_ARGUMENT
    assert len(err.message) < len(body) + 200


@pytest.mark.parametrize("depth", [300, 600, 900])
def test_deep_value_in_an_error_is_quoted_without_recursion(depth):
    """Quoting a value nested past ~255 levels raised "Recursion limit reached" (a 500)."""
    body = ('{"inputs": 1, "instances": ' + _nested(depth) + "}").encode()
    err = error_of(decode, body, sig(x=DT.DT_FLOAT))
    assert err.code == Code.INVALID_ARGUMENT
    assert err.message.startswith('JSON Value: {\n    "inputs": 1,\n    "instances": [\n')
    assert err.message.endswith(
        "... Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
    )


@pytest.mark.parametrize("digits", [400, 5000, 100_000])
def test_integers_of_thousands_of_digits_are_a_parse_error(digits):
    """Past 4300 digits, int() raised ValueError: a 500 with a traceback."""
    err = error_of(T.parse_json, b'{"inputs": [' + b"7" * digits + b"]}")
    assert err.code == Code.INVALID_ARGUMENT
    assert err.message == "JSON Parse error: Number too big to be stored in double. at offset: 12"


def test_integers_up_to_64_bits_stay_integers():
    parsed = T.parse_json(b"[18446744073709551615, -9223372036854775808]")
    assert parsed == [2**64 - 1, -(2**63)] and all(type(v) is int for v in parsed)
    assert T.parse_json(b"[" + b"7" * 21 + b"]") == [7.777777777777778e20]


def test_a_huge_feature_name_is_clipped_in_errors():
    name = "f" * 100_000
    err = error_of(T.decode_examples, {"examples": [{name: [1, "a"]}]})
    assert err.code == Code.INVALID_ARGUMENT
    assert err.message.startswith("Unexpected element type in feature: fff")
    assert err.message.endswith("... expecting type: int64") and len(err.message) < 1100
