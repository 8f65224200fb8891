"""The codec's client side against its server side: a request the client encodes decodes on the
server to the same tensors, and an answer the server encodes decodes on the client to the arrays
it was made from, in row and columnar format, for numbers, NaN, strings and binary strings.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from jupyter_tfserve.core import tensors as T
from jupyter_tfserve.core.signatures import SignatureInfo, TensorSpec

DT = types_pb2


def signature(inputs: dict[str, int], outputs: dict[str, int] | None = None) -> SignatureInfo:
    def specs(named):
        return {k: TensorSpec(k, f"{k}:0", dtype, None) for k, dtype in sorted(named.items())}

    return SignatureInfo(
        "serving_default", "tensorflow/serving/predict", specs(inputs), specs(outputs or {})
    )


def server_decodes(body: bytes, sig: SignatureInfo) -> tuple[dict[str, np.ndarray], bool]:
    return T.decode_predict_request(T.parse_json(body), sig, bool_free=T.bool_free(body))


MIXED = {
    "x": np.array([[1.5, -2.0], [np.nan, np.inf]], dtype=np.float32),
    "ids": np.array([3, 4], dtype=np.int64),
    "words": np.array([b"caf\xc3\xa9", b"\xff\x00raw"], dtype=object),
}
MIXED_TYPES = {"x": DT.DT_FLOAT, "ids": DT.DT_INT64, "words": DT.DT_STRING}


@pytest.mark.parametrize("row_format", [False, True], ids=["columnar", "row"])
def test_a_request_the_client_writes_is_the_tensors_the_server_reads(row_format):
    body = T.encode_predict_request(MIXED, "serving_default", row_format=row_format)
    document = json.loads(body)
    assert document["signature_name"] == "serving_default"
    assert ("instances" in document) == row_format
    decoded, used_rows = server_decodes(body, signature(MIXED_TYPES))
    assert used_rows == row_format
    assert sorted(decoded) == sorted(MIXED)
    np.testing.assert_array_equal(decoded["x"], MIXED["x"])
    np.testing.assert_array_equal(decoded["ids"], MIXED["ids"])
    assert list(decoded["words"].ravel()) == list(MIXED["words"])


def test_plain_finite_inputs_take_the_fast_writer_and_read_back_exactly():
    x = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    body = T.encode_predict_request({"x": x}, "serving_default")
    assert body.startswith(b'{"signature_name":"serving_default","inputs":{"x":[[')
    decoded, _ = server_decodes(body, signature({"x": DT.DT_FLOAT}))
    np.testing.assert_array_equal(decoded["x"], x)


def test_a_request_without_a_signature_name_leaves_the_default_to_the_server():
    body = T.encode_predict_request({"x": np.array([1.0])})
    assert json.loads(body) == {"inputs": {"x": [1.0]}}


@pytest.mark.parametrize("row_format", [False, True], ids=["columnar", "row"])
def test_an_answer_the_server_writes_is_the_arrays_the_client_reads(row_format):
    outputs = {
        "scores": np.array([[0.25, 0.75], [1.0, np.nan]], dtype=np.float32),
        "label": np.array([b"cat", b"\xff\x01"], dtype=object),
    }
    body = T.encode_predict_response(outputs, row_format)
    decoded = T.decode_predict_answer(
        T.parse_json(body), {"scores": DT.DT_FLOAT, "label": DT.DT_STRING}
    )
    assert decoded["scores"].dtype == np.float32
    np.testing.assert_array_equal(decoded["scores"], outputs["scores"])
    assert list(decoded["label"]) == [b"cat", b"\xff\x01"]  # b64 on the wire, bytes again


def test_one_output_is_written_bare_and_named_from_the_signature():
    body = T.encode_predict_response({"y": np.array([[1, 2]], dtype=np.int8)}, False)
    assert body == b'{"outputs":[[1,2]]}'
    decoded = T.decode_predict_answer(T.parse_json(body), {"y": DT.DT_INT8})
    assert list(decoded) == ["y"] and decoded["y"].dtype == np.int8


def test_outputs_a_newer_version_added_still_decode_by_their_names():
    body = T.encode_predict_response({"y": np.array([1.0]), "extra": np.array([2.0])}, False)
    decoded = T.decode_predict_answer(T.parse_json(body), {"y": DT.DT_DOUBLE, "z": DT.DT_DOUBLE})
    assert sorted(decoded) == ["extra", "y"]
    np.testing.assert_array_equal(decoded["extra"], [2.0])
