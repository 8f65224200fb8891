"""Request-log records written as bytes parse as TF Serving's ``PredictionLog`` with the values logged.

The writer builds record bytes from cached pieces instead of proto objects;
these tests parse what it writes with the protobuf classes and TensorFlow's own
readers (``tf.make_ndarray``, ``tf.data.TFRecordDataset``) and compare field by
field with the request, over dtypes, shapes, several tensors and failures.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from jupyter_tfserve.core import log_records, request_log, tfrecord
from jupyter_tfserve.core.status import Code, ServingError

SAMPLING = prediction_log_pb2.PredictionLog().log_metadata.sampling_config
SAMPLING.sampling_rate = 0.25
RNG = np.random.default_rng(0)

CASES = {
    "one float row": ({"x": RNG.random((1, 784), dtype=np.float32)}, [], None),
    "batch of several dtypes and a filter": (
        {
            "x": RNG.random((3, 5)).astype(np.float64),
            "ids": np.arange(6, dtype=np.int64).reshape(3, 2),
            "mask": np.array([True, False, True]),
            "small": np.array([[1, 2]], dtype=np.int8),
        },
        ["y"],
        None,
    ),
    "a transposed view": ({"x": np.arange(12, dtype=np.float32).reshape(3, 4).T}, [], None),
    "an empty tensor and a scalar": (
        {"e": np.zeros((0, 3), np.float32), "s": np.array(7, np.int32)},
        [],
        None,
    ),
    "strings": ({"text": np.array([b"a", b"bc"], dtype=object)}, [], None),
    "a failure": (
        {"x": np.ones((1, 2), np.float32)},
        [],
        ServingError(Code.INVALID_ARGUMENT, "bad input"),
    ),
}


def logged(inputs, output_filter, error) -> log_records.Logged:
    outputs = None if error else {"y": np.full((1, 3), 0.5, np.float32), "z": np.arange(2)}
    return log_records.Logged(
        log_records.PREDICT,
        "mlp",
        7,
        "serving_default",
        (inputs, output_filter),
        outputs,
        error,
        1_700_000_000.123456,
        0.0025,
    )


def assert_tensors(protos, arrays) -> None:
    assert set(protos) == set(arrays)
    for alias, array in arrays.items():
        parsed = tf.make_ndarray(protos[alias])
        assert parsed.dtype == array.dtype and parsed.shape == array.shape, alias
        assert parsed.tolist() == array.tolist(), alias


@pytest.mark.parametrize("case", list(CASES))
def test_a_predict_record_parses_to_the_request_response_and_metadata_logged(case):
    item = logged(*CASES[case])
    raw = log_records.serialize(item, log_records.metadata_fields(SAMPLING, ("serve", "gpu")))
    record = request_log.parse_record(raw)
    metadata = record.log.log_metadata
    assert (metadata.model_spec.name, metadata.model_spec.version.value) == ("mlp", 7)
    assert metadata.model_spec.signature_name == "serving_default"
    assert metadata.sampling_config.sampling_rate == 0.25
    assert list(metadata.saved_model_tags) == ["serve", "gpu"]
    assert metadata.timestamp_secs == 1_700_000_000
    request = record.log.predict_log.request
    assert request.model_spec.name == "mlp" and not request.model_spec.HasField("version")
    assert list(request.output_filter) == item.request[1]
    assert_tensors(request.inputs, item.request[0])
    response = record.log.predict_log
    if item.error is None:
        assert response.response.model_spec.version.value == 7
        assert_tensors(response.response.outputs, item.result)
        assert record.code == Code.OK
    else:
        assert not response.HasField("response")
        assert (record.code, record.message) == (Code.INVALID_ARGUMENT, "bad input")
    assert record.latency == pytest.approx(0.0025)
    assert record.timestamp == pytest.approx(1_700_000_000.123456)


def test_classify_and_multi_inference_records_keep_their_log_types():
    example = tf.train.Example()
    example.features.feature["x"].float_list.value.append(1.0)
    item = log_records.Logged(
        log_records.REGRESS,
        "m",
        2,
        "regress",
        [example.SerializeToString()],
        np.array([0.5], np.float32),
        None,
        time.time(),
        0.001,
    )
    record = request_log.parse_record(log_records.serialize(item))
    assert record.kind == "regress_log"
    assert record.log.regress_log.response.result.regressions[0].value == 0.5
    assert record.log.regress_log.request.input.example_list.examples[0] == example


def test_framed_records_read_back_with_tensorflows_tfrecord_reader(tmp_path):
    path = str(tmp_path / "log.tfrecord")
    sink = tfrecord.TFRecordSink(path)
    records = [log_records.serialize(logged(*case)) for case in CASES.values()]
    for raw in records:
        sink.write(raw)
    sink.close()
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == records
