"""Servable platforms, served for real: TensorFlow Lite models the tests convert, and a third-party plug-in.

Every model here is a real file (a converted ``model.tflite``, a ``.npz`` read
by the plug-in in ``tests/plugins``), served by a real ModelServer on real
REST and gRPC ports and asked through TF Serving's own client stubs. The
plug-in is found the way an installed one is: ``importlib.metadata`` reads its
``dist-info/entry_points.txt`` once ``tests/plugins`` is on the path.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import requests
import tflitemodels
from ports import free_port
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2
from test_grpc import predict_request, stubs

from jupyter_tfserve.core import platforms
from jupyter_tfserve.core.config import validate_model_server_config
from jupyter_tfserve.core.status import ServingError
from jupyter_tfserve.notebook.export import write_warmup_records
from jupyter_tfserve.server import ModelServer, ServerOptions

PLUGINS = os.path.join(os.path.dirname(__file__), "plugins")
TIMEOUT = 30.0
WARMUP_LATENCY = ":tensorflow:serving:model_warmup_latency"


# ---------------------------------------------------------------------- helpers
def config(*models) -> model_server_config_pb2.ModelServerConfig:
    """``(name, base_path, platform[, {"all": True, "labels": {...}}])`` per model."""
    result = model_server_config_pb2.ModelServerConfig()
    for name, base, platform, *extra in models:
        model = result.model_config_list.config.add(
            name=name, base_path=str(base), model_platform=platform
        )
        extra = extra[0] if extra else {}
        if extra.get("all"):
            model.model_version_policy.all.SetInParent()
        model.version_labels.update(extra.get("labels", {}))
    return result


def serve(model_config, tmp_path, batch: int = 0, **options) -> ModelServer:
    """A server on real ports; ``batch=n`` batches exactly n rows (a batch closes when full, never on time)."""
    if batch:
        parameters = tmp_path / "batching.txt"
        parameters.write_text(
            f"max_batch_size {{ value: {batch} }}\nbatch_timeout_micros {{ value: 60000000 }}\n"
            "num_batch_threads { value: 1 }\n"
        )
        options.update(enable_batching=True, batching_parameters_file=str(parameters))
    server_options = ServerOptions(
        port=free_port(),
        rest_api_port=free_port(),
        file_system_poll_wait_seconds=0,
        max_num_load_retries=0,
        **options,
    )
    return ModelServer(server_options, config=model_config).start(timeout=120)


def rest(server: ModelServer, path: str, body=None) -> requests.Response:
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/{path}"
    return (
        requests.post(url, json=body, timeout=TIMEOUT)
        if body is not None
        else requests.get(url, timeout=TIMEOUT)
    )


def grpc_predict(server: ModelServer, name: str, x, **spec) -> predict_pb2.PredictResponse:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        return stubs(channel)[0].Predict(predict_request(name, x, **spec), timeout=TIMEOUT)


def concurrently(call, arguments: list) -> list:
    """Send every request at once, so the batch scheduler sees them together."""
    with ThreadPoolExecutor(len(arguments)) as pool:
        return list(pool.map(call, arguments))


def batch_sizes(server: ModelServer, name: str) -> dict:
    return server.batcher.stats(name)["signatures"]["serving_default"]["batch_size_histogram"]


def loaded(server: ModelServer, name: str, version: int):
    with server.manager.acquire(name, version) as handle:
        return handle.servable.platform, handle.servable.loader


@pytest.fixture
def plugin_installed(monkeypatch):
    """The plug-in distribution in ``tests/plugins`` on the path, as ``pip install`` would leave it."""
    monkeypatch.syspath_prepend(PLUGINS)


def affine(base, version: int, w, b) -> str:
    """A version folder of the plug-in's platform: y = x @ w + b."""
    path = os.path.join(str(base), str(version))
    os.makedirs(path)
    np.savez(
        os.path.join(path, "affine.npz"), w=np.asarray(w, np.float32), b=np.asarray(b, np.float32)
    )
    return path


# ---------------------------------------------------------------------- registry
def test_platforms_are_named_as_tf_serving_names_them_and_plugins_join_from_entry_points(
    plugin_installed,
):
    assert {"tensorflow", "tflite", "numpy", "broken"} <= set(platforms.names())
    for platform in ("", "tensorflow", "tflite", "numpy"):
        validate_model_server_config(config(("m", "/models/m", platform)))
    with pytest.raises(
        ServingError,
        match=r"Model m requested unsupported platform 'onnx'; known platforms: .*tensorflow",
    ):
        validate_model_server_config(config(("m", "/models/m", "onnx")))


def test_uninstalled_plugin_is_unknown():
    assert "numpy" not in platforms.names()
    with pytest.raises(ServingError, match="unsupported platform 'numpy'"):
        validate_model_server_config(config(("m", "/models/m", "numpy")))


# ---------------------------------------------------------------------- tflite
def test_tflite_half_plus_two_served_as_tf_serving_serves_it(tmp_path):
    """TF Serving's ``saved_model_half_plus_two_tflite`` layout with --prefer_tflite_model: x = [2.0] gives y = [3.0]."""
    base = tmp_path / "saved_model_half_plus_two_tflite"
    tflitemodels.half_plus_two_tflite(base)
    server = serve(config(("hpt", base, "tensorflow")), tmp_path, prefer_tflite_model=True)
    try:
        assert rest(server, "hpt:predict", {"instances": [2.0]}).json() == {"predictions": [3.0]}
        # The model takes one row per call: a longer request runs row by row.
        assert rest(server, "hpt:predict", {"inputs": {"x": [2.0, 4.0]}}).json() == {
            "outputs": [3.0, 4.0]
        }
        status = rest(server, "hpt").json()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("123", "AVAILABLE")]
        signature = rest(server, "hpt/metadata").json()["metadata"]["signature_def"][
            "signature_def"
        ]
        assert set(signature) == {"serving_default"}
        x = signature["serving_default"]["inputs"]["x"]
        assert (x["dtype"], x["tensor_shape"]["dim"]) == ("DT_FLOAT", [{"size": "-1", "name": ""}])

        response = grpc_predict(server, "hpt", [2.0])
        assert list(response.outputs["y"].float_val) == [3.0]
        assert (response.model_spec.version.value, response.model_spec.signature_name) == (
            123,
            "serving_default",
        )
        assert loaded(server, "hpt", 123) == ("tflite", "tflite")
    finally:
        server.stop()


def test_a_version_with_only_a_model_tflite_is_served_by_tflite_without_the_flag(
    tmp_path, model_store
):
    """Where TF Serving would fail the load (no SavedModel), the tflite platform serves; with both, the SavedModel."""
    base = tmp_path / "hpt"
    tflitemodels.half_plus_two_tflite(base, "1")
    shutil.copytree(model_store["half_plus_two"], base / "2")
    tflitemodels.convert(model_store["half_plus_two"], base, 2)
    server = serve(config(("hpt", base, "tensorflow", {"all": True})), tmp_path)
    try:
        assert loaded(server, "hpt", 1) == ("tflite", "tflite")
        assert loaded(server, "hpt", 2) == ("tensorflow", "tf2")
        assert rest(server, "hpt/versions/1:predict", {"instances": [2.0]}).json() == {
            "predictions": [3.0]
        }
    finally:
        server.stop()


def test_prefer_tflite_model_falls_back_to_the_savedmodel_per_version(tmp_path, model_store):
    """Version 1 has only a SavedModel, version 2 a model.tflite too: each is served by what it has."""
    base = tmp_path / "hpt"
    for version in (1, 2):
        shutil.copytree(model_store["half_plus_two"], base / str(version))
    tflitemodels.convert(model_store["half_plus_two"], base, 2)
    server = serve(
        config(("hpt", base, "tensorflow", {"all": True})), tmp_path, prefer_tflite_model=True
    )
    try:
        assert loaded(server, "hpt", 1) == ("tensorflow", "tf2")
        assert loaded(server, "hpt", 2) == ("tflite", "tflite")
        for version in (1, 2):
            reply = rest(server, f"hpt/versions/{version}:predict", {"instances": [[1.0], [2.0]]})
            assert reply.json() == {"predictions": [[2.5], [3.0]]}
    finally:
        server.stop()


def test_tflite_model_platform_batches_by_resizing_and_warms_up(tmp_path, model_store):
    """A converted model with a free batch dimension: four one-row requests run as one batch of four."""
    base = tmp_path / "hpt"
    version_dir = tflitemodels.convert(model_store["half_plus_two"], base, 1)
    write_warmup_records(
        version_dir, "hpt", "serving_default", {"x": np.array([[1.0]], np.float32)}
    )
    server = serve(config(("hpt", base, "tflite")), tmp_path, batch=4)
    try:
        histogram = server.metrics.histogram(WARMUP_LATENCY, {"model_path": version_dir})
        assert histogram is not None and histogram["count"] == 1
        signature = rest(server, "hpt/metadata").json()["metadata"]["signature_def"][
            "signature_def"
        ]
        assert signature["serving_default"]["inputs"]["x"]["tensor_shape"]["dim"][0]["size"] == "-1"
        replies = concurrently(
            lambda x: rest(server, "hpt:predict", {"instances": [[x]]}).json(), [0.0, 2.0, 4.0, 6.0]
        )
        assert replies == [{"predictions": [[y]]} for y in (2.0, 3.0, 4.0, 5.0)]
        assert batch_sizes(server, "hpt") == {"4": 1}
    finally:
        server.stop()


def test_tflite_runs_row_by_row_in_a_batch_when_its_batch_dimension_is_fixed(tmp_path):
    base = tmp_path / "hpt"
    tflitemodels.half_plus_two_tflite(base, "1")
    server = serve(config(("hpt", base, "tflite")), tmp_path, batch=3)
    try:
        replies = concurrently(
            lambda x: grpc_predict(server, "hpt", [x]).outputs["y"].float_val[:], [0.0, 2.0, 4.0]
        )
        assert replies == [[2.0], [3.0], [4.0]]
        assert batch_sizes(server, "hpt") == {"3": 1}
    finally:
        server.stop()


# ---------------------------------------------------------------------- third-party plug-in
def test_third_party_platform_over_rest_and_grpc_batched_versioned_labelled(
    tmp_path, plugin_installed
):
    base = tmp_path / "affine"
    affine(base, 1, np.eye(2), [1.0, 1.0])
    second = affine(base, 2, 2 * np.eye(2), [0.0, 0.0])
    write_warmup_records(second, "affine", "serving_default", {"x": np.ones((1, 2), np.float32)})
    model = ("affine", base, "numpy", {"all": True, "labels": {"stable": 1, "canary": 2}})
    server = serve(config(model), tmp_path, batch=3)
    try:
        assert loaded(server, "affine", 2) == ("numpy", "numpy-affine")
        assert server.metrics.histogram(WARMUP_LATENCY, {"model_path": second})["count"] == 1

        rows = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
        replies = concurrently(
            lambda row: rest(server, "affine/labels/canary:predict", {"instances": [row]}).json(),
            rows,
        )
        assert replies == [{"predictions": [[2 * a, 2 * b]]} for a, b in rows]
        assert batch_sizes(server, "affine") == {"3": 1}

        # Three rows fill a batch on their own (max_batch_size 3), so these need no company.
        assert rest(server, "affine/labels/stable:predict", {"inputs": {"x": rows}}).json() == {
            "outputs": [[a + 1, b + 1] for a, b in rows]
        }
        stable = grpc_predict(server, "affine", rows, label="stable")
        assert (list(stable.outputs["y"].float_val), stable.model_spec.version.value) == (
            [2, 3, 4, 5, 6, 7],
            1,
        )
        latest = grpc_predict(server, "affine", rows)
        assert (list(latest.outputs["y"].float_val), latest.model_spec.version.value) == (
            [2, 4, 6, 8, 10, 12],
            2,
        )

        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                metadata_field=["signature_def"]
            )
            request.model_spec.name = "affine"
            metadata = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
                request
            )
            signatures = get_model_metadata_pb2.SignatureDefMap()
            metadata.metadata["signature_def"].Unpack(signatures)
            x = signatures.signature_def["serving_default"].inputs["x"]
            assert [d.size for d in x.tensor_shape.dim] == [-1, 2]
            status_request = get_model_status_pb2.GetModelStatusRequest()
            status_request.model_spec.name = "affine"
            status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request)
            assert [v.version for v in status.model_version_status] == [2, 1]
    finally:
        server.stop()


def test_plugins_that_fail_to_import_or_load_are_errors_on_their_models(tmp_path, plugin_installed):
    """The server starts and serves the rest; each failure names its plug-in in that model's status."""
    good = tmp_path / "good"
    affine(good, 1, np.eye(1), [0.0])
    broken = tmp_path / "broken"
    affine(broken, 1, np.eye(1), [0.0])
    empty_version = tmp_path / "empty" / "1"
    empty_version.mkdir(parents=True)
    server = serve(
        config(
            ("good", good, "numpy"),
            ("broken", broken, "broken"),
            ("empty", empty_version.parent, "numpy"),
        ),
        tmp_path,
    )
    try:
        assert rest(server, "good:predict", {"instances": [[3.0]]}).json() == {
            "predictions": [[3.0]]
        }
        errors = {
            name: rest(server, name).json()["model_version_status"][0]
            for name in ("broken", "empty")
        }
        assert errors["broken"]["state"] == "END"
        assert errors["broken"]["status"]["error_code"] == "FAILED_PRECONDITION"
        assert errors["broken"]["status"]["error_message"].startswith(
            "Platform plug-in 'broken' (tfserve_numpy_platform_missing:Platform) failed to import: ModuleNotFoundError"
        )
        assert errors["empty"]["state"] == "END"
        assert errors["empty"]["status"]["error_message"].startswith(
            f"Platform plug-in 'numpy' (tfserve_numpy_platform:NumpyPlatform) failed to load {empty_version}: "
            "FileNotFoundError"
        )
    finally:
        server.stop()
