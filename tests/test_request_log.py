"""Request logging (``ModelConfig.logging_config``): real servers, real files, read back as TF Serving's records."""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from ports import free_port
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from jupyter_tfserve.core import request_log
from jupyter_tfserve.core.config import ModelServerConfig, load_model_server_config
from jupyter_tfserve.core.status import Code, ServingError
from jupyter_tfserve.server import ModelServer, ServerOptions

TIMEOUT = 60.0


def config_for(name, base_path, prefix=None, rate=1.0, collector="tfrecord") -> ModelServerConfig:
    config = ModelServerConfig()
    model = config.model_config_list.config.add(
        name=name, base_path=base_path, model_platform="tensorflow"
    )
    if prefix is not None:
        model.logging_config.log_collector_config.type = collector
        model.logging_config.log_collector_config.filename_prefix = str(prefix)
        model.logging_config.sampling_config.sampling_rate = rate
    return config


def start(config, **options) -> ModelServer:
    options = ServerOptions(
        port=options.pop("port", 0),
        rest_api_port=free_port(),
        file_system_poll_wait_seconds=0,
        max_num_load_retries=0,
        **options,
    )
    return ModelServer(options, config=config).start(timeout=120)


class Rest:
    """One keep-alive connection to the server's REST port."""

    def __init__(self, server: ModelServer):
        self.connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=TIMEOUT)

    def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        self.connection.request(method, path, data, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    def close(self) -> None:
        self.connection.close()


def raw_records(prefix) -> list[prediction_log_pb2.PredictionLog]:
    """The files as TF Serving's own reader sees them: TFRecordDataset + PredictionLog."""
    logs = []
    for path in request_log.log_files(str(prefix)):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            logs.append(prediction_log_pb2.PredictionLog.FromString(raw))
    return logs


def count(server: ModelServer, name: str, status: str) -> int:
    return server.request_log.status(name)["records"][status]


def example(x: float) -> example_pb2.Example:
    value = example_pb2.Example()
    value.features.feature["x"].float_list.value.append(x)
    return value


@pytest.fixture
def hpt(model_repo):
    return model_repo("half_plus_two", "hpt")


# ---------------------------------------------------------------------- records
def test_rest_and_grpc_requests_are_logged_with_their_responses_and_the_answering_version(
    hpt, model_repo, tmp_path
):
    prefix = tmp_path / "logs" / "hpt"
    config = config_for("hpt", hpt, prefix)
    other = config_for("mio", model_repo("multi_io", "mio"), tmp_path / "logs" / "mio")
    config.model_config_list.config.add().CopyFrom(other.model_config_list.config[0])
    server = start(config, port=free_port())
    rest = Rest(server)
    try:
        assert rest.call("POST", "/v1/models/hpt:predict", {"instances": [[1.0], [3.0]]}) == (
            200,
            {"predictions": [[2.5], [3.5]]},
        )
        # Inputs that decode but fail in the model run (2 rows of a, 3 of b: incompatible shapes).
        status, body = rest.call(
            "POST", "/v1/models/mio:predict", {"inputs": {"a": [[1, 2], [3, 4]], "b": [1, 2, 3]}}
        )
        assert status == 400
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "hpt"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[4.0]], np.float32)))
            assert tf.make_ndarray(
                stub.Predict(request, timeout=TIMEOUT).outputs["y"]
            ).tolist() == [[4.0]]
            wrong = predict_pb2.PredictRequest()
            wrong.model_spec.name = "hpt"
            wrong.inputs["nope"].CopyFrom(tf.make_tensor_proto(np.array([[4.0]], np.float32)))
            with pytest.raises(grpc.RpcError) as refused:
                stub.Predict(wrong, timeout=TIMEOUT)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert server.request_log.flush()
    finally:
        rest.close()
        server.stop()

    (failed_rest,) = raw_records(tmp_path / "logs" / "mio")
    assert tf.make_ndarray(failed_rest.predict_log.request.inputs["a"]).tolist() == [[1, 2], [3, 4]]
    logs = raw_records(prefix) + [failed_rest]
    assert len(logs) == 4
    for log in logs:
        assert log.WhichOneof("log_type") == "predict_log"
        assert log.log_metadata.model_spec.name in ("hpt", "mio")
        assert log.log_metadata.model_spec.version.value == 1
        assert log.log_metadata.model_spec.signature_name == "serving_default"
        assert log.log_metadata.sampling_config.sampling_rate == 1.0
        assert list(log.log_metadata.saved_model_tags) == ["serve"]
        assert log.log_metadata.timestamp_secs > 0
    ok_rest, ok_grpc, failed_grpc, failed_rest = logs
    assert tf.make_ndarray(ok_rest.predict_log.request.inputs["x"]).tolist() == [[1.0], [3.0]]
    assert tf.make_ndarray(ok_rest.predict_log.response.outputs["y"]).tolist() == [[2.5], [3.5]]
    assert ok_rest.predict_log.response.model_spec.version.value == 1
    assert tf.make_ndarray(ok_grpc.predict_log.response.outputs["y"]).tolist() == [[4.0]]
    # Errors: the request, no response; the status only in the field TF Serving's parser skips.
    for failed in (failed_rest, failed_grpc):
        assert failed.predict_log.HasField("request") and not failed.predict_log.HasField(
            "response"
        )
    assert list(failed_grpc.predict_log.request.inputs) == ["nope"]

    records = list(request_log.read_records(str(prefix))) + list(
        request_log.read_records(str(tmp_path / "logs" / "mio"))
    )
    assert [r.code for r in records] == [
        Code.OK,
        Code.OK,
        Code.INVALID_ARGUMENT,
        Code.INVALID_ARGUMENT,
    ]
    assert "nope" in records[2].message
    assert records[3].message == body["error"]
    assert all(r.latency > 0 and r.timestamp >= r.log.log_metadata.timestamp_secs for r in records)


def test_classify_regress_and_multi_inference_are_logged_as_their_own_log_types(
    model_repo, tmp_path
):
    base = model_repo("half_plus_two_tf1", "tf1")
    prefix = tmp_path / "logs" / "tf1"
    server = start(config_for("tf1", base, prefix), port=free_port())
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            classify = classification_pb2.ClassificationRequest()
            classify.model_spec.name, classify.model_spec.signature_name = "tf1", "classify_x_to_y"
            classify.input.example_list.examples.add().CopyFrom(example(2.0))
            stub.Classify(classify, timeout=TIMEOUT)
            regress = regression_pb2.RegressionRequest()
            regress.model_spec.name, regress.model_spec.signature_name = "tf1", "regress_x_to_y"
            regress.input.example_list.examples.add().CopyFrom(example(4.0))
            stub.Regress(regress, timeout=TIMEOUT)
            multi = inference_pb2.MultiInferenceRequest()
            task = multi.tasks.add()
            task.model_spec.name, task.model_spec.signature_name = "tf1", "regress_x_to_y"
            task.method_name = "tensorflow/serving/regress"
            multi.input.example_list.examples.add().CopyFrom(example(6.0))
            stub.MultiInference(multi, timeout=TIMEOUT)
        assert server.request_log.flush()
    finally:
        server.stop()

    classified, regressed, multied = raw_records(prefix)
    assert classified.classify_log.request.input.example_list.examples[0] == example(2.0)
    assert classified.classify_log.response.result.classifications[0].classes[
        0
    ].score == pytest.approx(3.0)
    assert regressed.regress_log.request.model_spec.signature_name == "regress_x_to_y"
    assert regressed.regress_log.response.result.regressions[0].value == pytest.approx(4.0)
    assert multied.multi_inference_log.request == multi
    regression = multied.multi_inference_log.response.results[0].regression_result
    assert regression.regressions[0].value == pytest.approx(5.0)
    assert multied.log_metadata.model_spec.version.value == 1


def test_sampling_at_one_half_logs_about_half_of_2000_requests(hpt, tmp_path):
    prefix = tmp_path / "logs" / "hpt"
    server = start(config_for("hpt", hpt, prefix, rate=0.5))
    rest = Rest(server)
    try:
        for _ in range(2000):
            assert rest.call("POST", "/v1/models/hpt:predict", {"instances": [[1.0]]})[0] == 200
        assert server.request_log.flush()
        written = count(server, "hpt", "written")
    finally:
        rest.close()
        server.stop()
    # Binomial(2000, 0.5): mean 1000, sd 22.4; five sd either side fails once in ~3.5 million runs.
    assert 888 <= written <= 1112
    assert len(raw_records(prefix)) == written


# ---------------------------------------------------------------------- rotation and failures
def test_files_rotate_by_size_and_by_age(hpt, tmp_path):
    by_size, by_age = tmp_path / "size" / "hpt", tmp_path / "age" / "hpt"
    for prefix, options in (
        (by_size, {"request_log_max_file_bytes": 1000}),
        (
            by_age,
            {"request_log_max_file_seconds": 0},
        ),  # every record is older than 0 s: one file each
    ):
        server = start(config_for("hpt", hpt, prefix), **options)
        rest = Rest(server)
        try:
            for i in range(20):
                assert (
                    rest.call("POST", "/v1/models/hpt:predict", {"instances": [[float(i)]]})[0]
                    == 200
                )
            assert server.request_log.flush()
        finally:
            rest.close()
            server.stop()
        files = request_log.log_files(str(prefix))
        assert all(os.path.getsize(f) <= 1000 for f in files)
        sent = [
            tf.make_ndarray(r.predict_log.request.inputs["x"]).item() for r in raw_records(prefix)
        ]
        assert sent == [float(i) for i in range(20)]  # nothing lost or reordered across files
        if prefix == by_age:
            assert len(files) == 20
        else:
            assert 2 < len(files) < 20


class BlockingSink(request_log.TFRecordSink):
    """A real TFRecord file behind a disk that stalls until ``released`` is set."""

    released = threading.Event()
    entered = threading.Event()

    def write(self, record: bytes) -> None:
        BlockingSink.entered.set()
        BlockingSink.released.wait(TIMEOUT)
        super().write(record)


def test_a_stalled_writer_drops_and_counts_records_while_requests_keep_succeeding(hpt, tmp_path):
    request_log.register_collector("stalling_disk", BlockingSink)
    BlockingSink.released.clear()
    BlockingSink.entered.clear()
    prefix = tmp_path / "logs" / "hpt"
    server = ModelServer(
        ServerOptions(port=0, rest_api_port=free_port(), file_system_poll_wait_seconds=0),
        config=config_for("hpt", hpt, prefix, collector="stalling_disk"),
    )
    server.request_log.queue_size = 4
    server.start(timeout=120)
    rest = Rest(server)
    try:
        assert rest.call("POST", "/v1/models/hpt:predict", {"instances": [[0.0]]})[0] == 200
        assert BlockingSink.entered.wait(TIMEOUT)  # the writer holds record 1 and waits on the disk
        for i in range(1, 50):
            assert rest.call("POST", "/v1/models/hpt:predict", {"instances": [[float(i)]]}) == (
                200,
                {"predictions": [[0.5 * i + 2.0]]},
            )
        assert count(server, "hpt", "written") == 0
        assert count(server, "hpt", "dropped") == 50 - 1 - 4  # one being written, four queued
        page = server.metrics.render().decode()
        assert (
            ':tensorflow:serving:request_log_count{model_name="hpt",status="dropped"} 45.0' in page
        )
        BlockingSink.released.set()
        assert server.request_log.flush()
        assert count(server, "hpt", "written") == 5
    finally:
        BlockingSink.released.set()
        rest.close()
        server.stop()
    assert len(raw_records(prefix)) == 5


def test_a_removed_log_folder_is_a_logged_error_and_a_metric_not_a_failed_request(
    hpt, tmp_path, caplog
):
    folder = tmp_path / "logs"
    prefix = folder / "hpt"
    server = start(
        config_for("hpt", hpt, prefix), request_log_max_file_seconds=0
    )  # a new file per record
    rest = Rest(server)
    try:
        assert rest.call("POST", "/v1/models/hpt:predict", {"instances": [[1.0]]})[0] == 200
        assert server.request_log.flush()
        shutil.rmtree(folder)
        with caplog.at_level(logging.ERROR, logger="jupyter_tfserve.core.request_log"):
            for _ in range(3):
                assert rest.call("POST", "/v1/models/hpt:predict", {"instances": [[1.0]]})[0] == 200
            assert server.request_log.flush()
        assert count(server, "hpt", "failed") == 3
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert (
            len(errors) == 1 and str(prefix) in errors[0].getMessage()
        )  # once per run of failures
        folder.mkdir()
        assert rest.call("POST", "/v1/models/hpt:predict", {"instances": [[1.0]]})[0] == 200
        assert server.request_log.flush()
        assert count(server, "hpt", "written") == 2
    finally:
        rest.close()
        server.stop()


# ---------------------------------------------------------------------- config and management
def test_an_unknown_collector_type_is_a_config_error_naming_the_known_types(hpt, tmp_path):
    path = tmp_path / "models.config"
    path.write_text(
        f"model_config_list {{ config {{ name: 'hpt' base_path: '{hpt}' model_platform: 'tensorflow'\n"
        "  logging_config { log_collector_config { type: 'kafka' filename_prefix: '/tmp/x' }\n"
        "                   sampling_config { sampling_rate: 0.1 } } } }"
    )
    with pytest.raises(ServingError) as refused:
        load_model_server_config(path)
    assert refused.value.code == Code.INVALID_ARGUMENT
    assert "unknown log collector type 'kafka'" in refused.value.message
    assert "known types:" in refused.value.message and "tfrecord" in refused.value.message


def test_the_management_api_turns_logging_on_off_and_changes_the_rate_live(hpt, tmp_path):
    prefix = tmp_path / "logs" / "hpt"
    server = start(config_for("hpt", hpt), enable_management_api=True)
    rest = Rest(server)
    predict = ("POST", "/v1/models/hpt:predict", {"instances": [[1.0]]})
    try:
        assert rest.call("GET", "/tfserve/api/models/hpt/logging")[1]["enabled"] is False
        status, body = rest.call(
            "PUT",
            "/tfserve/api/models/hpt/logging",
            {"filename_prefix": str(prefix), "sampling_rate": 1.0},
        )
        assert status == 200 and body["enabled"] and body["type"] == "tfrecord"
        assert rest.call(*predict)[0] == 200
        rest.call("PUT", "/tfserve/api/models/hpt/logging", {"sampling_rate": 0.0})
        assert rest.call(*predict)[0] == 200
        assert (
            rest.call("PUT", "/tfserve/api/models/hpt/logging", {"sampling_rate": 1.0})[1][
                "sampling_rate"
            ]
            == 1.0
        )
        assert rest.call(*predict)[0] == 200
        assert server.request_log.flush()
        assert rest.call("GET", "/tfserve/api/models/hpt/logging")[1]["records"]["written"] == 2
        assert "logging_config" in rest.call("GET", "/tfserve/api/config")[1]["config"]
        assert rest.call("DELETE", "/tfserve/api/models/hpt/logging")[1]["enabled"] is False
        assert rest.call(*predict)[0] == 200
        status, body = rest.call("PUT", "/tfserve/api/models/hpt/logging", {"sampling_rate": 2})
        assert status == 400 and "sampling_rate" in body["error"]
        assert rest.call("GET", "/tfserve/api/models/nope/logging")[0] == 404
    finally:
        rest.close()
        server.stop()
    assert len(raw_records(prefix)) == 2
