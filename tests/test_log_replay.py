"""What a request log is for: reading it in a notebook, replaying it against a new version, warming one up."""

from __future__ import annotations

import http.client
import json

import numpy as np
import pytest
import savedmodels
import tensorflow as tf
from ports import free_port
from tensorflow_serving.apis import prediction_log_pb2

import jupyter_tfserve
from jupyter_tfserve.bench.api import benchmark
from jupyter_tfserve.bench.options import BenchError
from jupyter_tfserve.bench.replay import load_replay
from jupyter_tfserve.core import request_log, tensors
from jupyter_tfserve.core.config import ModelServerConfig
from jupyter_tfserve.core.warmup import read_warmup_records, warmup_path
from jupyter_tfserve.notebook.export import ExportError, export
from jupyter_tfserve.server import ModelServer, ServerOptions

FAST = {"warmup": "0.2s", "window": "0.4s", "max_trials": 2, "progress": None}
XS = [float(i) for i in range(1, 21)]


class HalfPlusTwo(tf.Module):
    """The served model's twin, exported from the notebook: x [-1, 1] -> y."""

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def predict(self, x):
        return {"y": 0.5 * x + 2.0}


def _logging_server(base, prefix) -> ModelServer:
    """A server of every version under ``base`` that logs all its requests to ``prefix``."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add(
        name=base.name, base_path=str(base), model_platform="tensorflow"
    )
    model.model_version_policy.all.SetInParent()
    model.logging_config.log_collector_config.type = "tfrecord"
    model.logging_config.log_collector_config.filename_prefix = str(prefix)
    model.logging_config.sampling_config.sampling_rate = 1.0
    return ModelServer(
        ServerOptions(port=free_port(), rest_api_port=free_port(), file_system_poll_wait_seconds=0),
        config=config,
    ).start(timeout=120)


def _stop_logging(server: ModelServer) -> None:
    """Everything logged is on disk, and the replays that follow do not grow the log."""
    server.service.request_log.flush()
    server.request_log.configure(ModelServerConfig())


def _new_version(server: ModelServer, name: str) -> None:
    server.manager.poll()
    server.manager.wait_until_settled([name], timeout=120)


@pytest.fixture(scope="module")
def logged(tmp_path_factory, model_store):
    """hpt version 1 served with logging on; 20 answered requests and one refused one in its log."""
    root = tmp_path_factory.mktemp("replay")
    base = root / "models" / "hpt"
    savedmodels.half_plus_two(base, 1)
    prefix = root / "logs" / "hpt"
    server = _logging_server(base, prefix)
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
    for x in XS:
        connection.request(
            "POST", "/v1/models/hpt/versions/1:predict", json.dumps({"instances": [[x]]})
        )
        assert connection.getresponse().read()
    # Logging stops before the new version comes: the replays below must not grow the log.
    _stop_logging(server)
    yield server, base, prefix
    connection.close()
    server.stop()


@pytest.fixture(scope="module")
def logged_examples(tmp_path_factory):
    """hpt_ex version 1 (tf.Example signatures) with a mixed log: 20 classify, 20 regress, 1 predict."""
    root = tmp_path_factory.mktemp("replay_examples")
    base = root / "models" / "hpt_ex"
    savedmodels.half_plus_two_tf1(base, 1)
    prefix = root / "logs" / "hpt_ex"
    server = _logging_server(base, prefix)
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
    calls = [("predict", {"instances": [1.0]})]
    for x in XS:
        calls.append(("classify", {"signature_name": "classify_x_to_y", "examples": [{"x": x}]}))
        calls.append(("regress", {"signature_name": "regress_x_to_y", "examples": [{"x": [x]}]}))
    for method, body in calls:
        connection.request("POST", f"/v1/models/hpt_ex/versions/1:{method}", json.dumps(body))
        response = connection.getresponse()
        assert response.status == 200, response.read()
        response.read()
    _stop_logging(server)
    yield server, base, prefix
    connection.close()
    server.stop()


def test_read_logs_is_a_dataframe_of_recent_requests(logged, tmp_path):
    _server, _base, prefix = logged
    frame = jupyter_tfserve.read_logs(str(prefix))
    assert list(frame.columns) == [*jupyter_tfserve.notebook.logs.COLUMNS, "record"]
    assert len(frame) == 20
    assert set(frame["version"]) == {1} and set(frame["status"]) == {"OK"}
    assert set(frame["signature"]) == {"serving_default"} and set(frame["api"]) == {"predict"}
    assert frame["time"].is_monotonic_increasing and (frame["latency_ms"] > 0).all()
    assert frame["inputs"][0] == "x: float32[1, 1] [1]"
    assert frame["outputs"][0] == "y: float32[1, 1] [2.5]"
    last = jupyter_tfserve.read_logs(str(prefix) + "*", limit=3)
    assert last["inputs"].tolist() == [f"x: float32[1, 1] [{x:g}]" for x in XS[-3:]]
    assert len(jupyter_tfserve.read_logs(str(prefix), since="60m")) == 20
    assert len(jupyter_tfserve.read_logs(str(tmp_path / "nothing"))) == 0


def test_replay_against_a_changed_version_reports_the_differing_answers(logged):
    server, base, prefix = logged
    savedmodels.half_plus_two(base, 2, slope=0.6)  # same signature, different answers
    _new_version(server, "hpt")
    url = f"http://127.0.0.1:{server.rest_port}"

    same = benchmark("hpt", url=url, version=1, concurrency=2, replay=str(prefix) + "*", **FAST)
    assert same.levels and same.levels[0]["errors"] == 0
    assert (same.replay.compared, same.replay.differing, same.replay.failed) == (20, 0, 0)
    assert same.replay.logged_versions == [1]

    changed = benchmark(
        "hpt",
        url=url,
        version=2,
        rate="logged",
        replay=str(prefix),
        protocol="grpc",
        grpc=f"127.0.0.1:{server.grpc_port}",
        **FAST,
    )
    assert changed.replay.differing == 20  # 0.1 * x apart for every logged x >= 1
    assert changed.replay.max_abs_diff == pytest.approx(0.1 * max(XS), rel=1e-5)
    assert "20 answers differ" in str(changed)
    assert changed.levels[0]["value"] > 0  # the logged rate, measured from the records' times

    with pytest.raises(BenchError, match="no request log files"):
        benchmark("hpt", url=url, replay=str(prefix) + "-none*", **FAST)


def test_replay_of_classify_and_regress_records_compares_labels_scores_and_values(
    logged_examples,
):
    server, base, prefix = logged_examples
    url = f"http://127.0.0.1:{server.rest_port}"
    pattern = str(prefix) + "*"

    classify = load_replay(pattern, "classify_x_to_y")
    assert (classify.method, len(classify.inputs), classify.skipped) == ("classify", 20, 21)
    # The logged tf.Examples, written as REST examples, read back as the same protos.
    sent = tensors.decode_examples(classify.inputs[0])
    assert tf.train.Example.FromString(sent[0]).features.feature["x"].float_list.value == [1.0]
    assert classify.outputs[0]["classes"].tolist() == [[""]]
    assert classify.outputs[0]["scores"].tolist() == [[2.5]]
    assert load_replay(pattern, "regress_x_to_y").outputs[-1]["values"].tolist() == [12.0]

    for signature in ("classify_x_to_y", "regress_x_to_y"):
        same = benchmark(
            "hpt_ex", url=url, version=1, signature=signature, concurrency=2, replay=pattern, **FAST
        )
        assert same.levels and same.levels[0]["errors"] == 0 and same.levels[0]["requests"] > 0
        assert (same.replay.compared, same.replay.differing, same.replay.failed) == (20, 0, 0)
        assert same.replay.max_abs_diff == 0.0 and same.replay.logged_versions == [1]

    savedmodels.half_plus_two_tf1(base, 2, slope=0.6)  # same signatures, different answers
    _new_version(server, "hpt_ex")
    for signature in ("classify_x_to_y", "regress_x_to_y"):
        changed = benchmark(
            "hpt_ex", url=url, version=2, signature=signature, rate="logged", replay=pattern, **FAST
        )
        assert changed.levels[0]["errors"] == 0 and changed.levels[0]["value"] > 0
        assert (changed.replay.differing, changed.replay.failed) == (20, 0)
        assert changed.replay.max_abs_diff == pytest.approx(0.1 * max(XS), rel=1e-5)
        assert "20 answers differ" in str(changed)

    with pytest.raises(BenchError, match="replayed over REST"):
        benchmark(
            "hpt_ex",
            url=url,
            signature="regress_x_to_y",
            replay=pattern,
            protocol="grpc",
            grpc=f"127.0.0.1:{server.grpc_port}",
            **FAST,
        )


def test_export_warms_up_from_logged_requests_in_tf_servings_format(logged, tmp_path):
    _server, _base, prefix = logged
    result = export(
        HalfPlusTwo(),
        "hpt_next",
        models_root=str(tmp_path),
        warmup_from=str(prefix) + "*",
        warmup_records=8,
    )
    assert result.warmup_records == 8
    path = warmup_path(result.path)
    logs = read_warmup_records(path)  # the server's own reader
    assert len(logs) == 8
    logged_inputs = [[[x]] for x in XS]
    for log in logs:
        assert log.WhichOneof("log_type") == "predict_log" and not log.predict_log.HasField(
            "response"
        )
        assert tf.make_ndarray(log.predict_log.request.inputs["x"]).tolist() in logged_inputs
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():  # the bare record format
        assert prediction_log_pb2.PredictionLog.FromString(raw).SerializeToString() == raw
        assert not request_log.LoggedRecord.FromString(raw).HasField("outcome")


def test_warmup_from_a_log_of_another_signature_fails_the_export_and_writes_nothing(
    logged, tmp_path
):
    _server, _base, prefix = logged

    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="z")])
        def predict(self, z):
            return {"w": z * 2.0}

    with pytest.raises(ExportError, match="do not run on this export"):
        export(Other(), "other", models_root=str(tmp_path), warmup_from=str(prefix))
    assert not (tmp_path / "other").exists()
    np.testing.assert_equal(len(request_log.log_files(str(prefix))) > 0, True)
