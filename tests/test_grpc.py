"""The gRPC API, black-box: TF Serving's own client stubs over real channels to a real ModelServer."""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pki import make_pki
from ports import free_port
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2
from waiting import wait_until

from jupyter_tfserve.core.manager import State
from jupyter_tfserve.core.status import ServingError
from jupyter_tfserve.protocols.grpc import parse_channel_arguments
from jupyter_tfserve.server import ModelServer, ServerOptions

StatusCode = grpc.StatusCode
TIMEOUT = 30.0
TENSOR_LIMIT = 8 * 1024 * 1024  # the shared server's max_request_tensor_bytes


# ---------------------------------------------------------------------- helpers


def model_config(**models) -> model_server_config_pb2.ModelServerConfig:
    """``name=base_path`` or ``name=(base_path, {"all": True, "labels": {...}})``."""
    config = model_server_config_pb2.ModelServerConfig()
    for name, spec in models.items():
        base, extra = spec if isinstance(spec, tuple) else (spec, {})
        model = config.model_config_list.config.add(
            name=name, base_path=base, model_platform="tensorflow"
        )
        if extra.get("all"):
            model.model_version_policy.all.SetInParent()
        model.version_labels.update(extra.get("labels", {}))
    return config


def start_server(config, **options) -> ModelServer:
    options.setdefault("port", free_port())
    options = ServerOptions(
        rest_api_port=0, file_system_poll_wait_seconds=0, max_num_load_retries=0, **options
    )
    return ModelServer(options, config=config).start(timeout=120)


def copy_versions(store_dir: str, base, versions) -> str:
    for version in versions:
        shutil.copytree(store_dir, os.path.join(str(base), str(version)))
    return str(base)


def stubs(channel):
    return (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )


def predict_request(name="hpt", x=((1.0,), (2.0,)), **spec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if "version" in spec:
        request.model_spec.version.value = spec["version"]
    if "label" in spec:
        request.model_spec.version_label = spec["label"]
    request.model_spec.signature_name = spec.get("signature", "")
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array(x, np.float32)))
    return request


def examples(*xs: float) -> list[example_pb2.Example]:
    return [
        example_pb2.Example(
            features=feature_pb2.Features(
                feature={"x": feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[x]))}
            )
        )
        for x in xs
    ]


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=TIMEOUT)
    return info.value


# ---------------------------------------------------------------------- the shared server
@pytest.fixture(scope="module")
def served(tmp_path_factory, model_store):
    """One server with every kind of test model, on TCP and a Unix socket, health service on."""
    root = tmp_path_factory.mktemp("grpc_models")
    config = model_config(
        hpt=(
            copy_versions(model_store["half_plus_two"], root / "hpt", (1, 2)),
            {"all": True, "labels": {"stable": 1, "canary": 2}},
        ),
        tf1=copy_versions(model_store["half_plus_two_tf1"], root / "tf1", (1,)),
        multi=copy_versions(model_store["multi_io"], root / "multi", (1,)),
        strings=copy_versions(model_store["strings"], root / "strings", (1,)),
    )
    socket_path = str(tmp_path_factory.mktemp("sock") / "grpc.sock")
    server = start_server(
        config,
        grpc_socket_path=socket_path,
        enable_grpc_healthcheck_service=True,
        max_request_tensor_bytes=TENSOR_LIMIT,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield server, channel, socket_path
    channel.close()
    server.stop()


@pytest.fixture
def prediction(served):
    return stubs(served[1])[0]


@pytest.fixture
def models(served):
    return stubs(served[1])[1]


# ---------------------------------------------------------------------- PredictionService
def test_predict_answers_with_typed_values_and_echoes_the_resolved_spec(prediction):
    response = prediction.Predict(predict_request(), timeout=TIMEOUT)
    assert response.model_spec.name == "hpt"
    assert response.model_spec.version.value == 2  # latest
    assert response.model_spec.signature_name == "serving_default"
    y = response.outputs["y"]
    assert list(y.float_val) == [2.5, 3.0] and y.tensor_content == b""
    np.testing.assert_array_equal(tf.make_ndarray(y), [[2.5], [3.0]])


@pytest.mark.parametrize(
    "spec, version", [({"version": 1}, 1), ({"label": "stable"}, 1), ({"label": "canary"}, 2)]
)
def test_predict_by_version_and_by_label(prediction, spec, version):
    response = prediction.Predict(predict_request(**spec), timeout=TIMEOUT)
    assert response.model_spec.version.value == version
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[2.5], [3.0]]


def test_predict_several_inputs_and_output_filter(prediction):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "multi"
    request.inputs["a"].CopyFrom(tf.make_tensor_proto(np.array([[1, 2], [3, 4]], np.float32)))
    request.inputs["b"].CopyFrom(tf.make_tensor_proto(np.array([10, 20], np.int64)))
    full = prediction.Predict(request, timeout=TIMEOUT)
    assert sorted(full.outputs) == ["doubled_b", "sum"]
    assert tf.make_ndarray(full.outputs["sum"]).tolist() == [13.0, 27.0]
    request.output_filter.append("doubled_b")
    filtered = prediction.Predict(request, timeout=TIMEOUT)
    assert list(filtered.outputs) == ["doubled_b"]
    assert list(filtered.outputs["doubled_b"].int64_val) == [20, 40]


def test_predict_strings(prediction):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "strings"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto([b"abc", "h\u00e9".encode()]))
    response = prediction.Predict(request, timeout=TIMEOUT)
    assert list(response.outputs["upper"].string_val) == [b"ABC", "H\u00e9".encode()]
    assert list(response.outputs["raw_bytes"].string_val) == [b"abc", "h\u00e9".encode()]


def test_classify(prediction):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tf1"
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.extend(examples(1.0, 4.0))
    response = prediction.Classify(request, timeout=TIMEOUT)
    assert (response.model_spec.name, response.model_spec.version.value) == ("tf1", 1)
    assert response.model_spec.signature_name == "classify_x_to_y"
    scores = [[(c.label, c.score) for c in row.classes] for row in response.result.classifications]
    assert scores == [[("", 2.5)], [("", 4.0)]]


def test_regress(prediction):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "tf1"
    request.model_spec.signature_name = "regress_x_to_y"
    request.input.example_list.examples.extend(examples(2.0, 6.0))
    response = prediction.Regress(request, timeout=TIMEOUT)
    assert response.model_spec.signature_name == "regress_x_to_y"
    assert [r.value for r in response.result.regressions] == [3.0, 5.0]


def test_multi_inference_runs_every_task_on_one_version(prediction):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify_x_to_y", "classify"), ("regress_x_to_y", "regress")):
        task = request.tasks.add(method_name=f"tensorflow/serving/{method}")
        task.model_spec.name = "tf1"
        task.model_spec.signature_name = signature
    request.input.example_list.examples.extend(examples(2.0))
    response = prediction.MultiInference(request, timeout=TIMEOUT)
    classify, regress = response.results
    assert classify.model_spec.signature_name == "classify_x_to_y"
    assert classify.model_spec.version.value == regress.model_spec.version.value == 1
    assert classify.classification_result.classifications[0].classes[0].score == 3.0
    assert regress.regression_result.regressions[0].value == 3.0


def test_get_model_metadata(prediction):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "hpt"
    request.model_spec.version.value = 1
    response = prediction.GetModelMetadata(request, timeout=TIMEOUT)
    assert (response.model_spec.name, response.model_spec.version.value) == ("hpt", 1)
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    serving = signature_defs.signature_def["serving_default"]
    assert serving.method_name == "tensorflow/serving/predict"
    assert serving.inputs["x"].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in serving.inputs["x"].tensor_shape.dim] == [-1, 1]


# ---------------------------------------------------------------------- ModelService
def test_get_model_status(models):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "hpt"
    response = models.GetModelStatus(request, timeout=TIMEOUT)
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == [
        (2, available, 0),
        (1, available, 0),
    ]
    request.model_spec.version.value = 1
    assert [
        s.version for s in models.GetModelStatus(request, timeout=TIMEOUT).model_version_status
    ] == [1]


# ---------------------------------------------------------------------- transports, health, metrics
def test_unix_socket_serves_the_same_api(served):
    _, _, socket_path = served
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        response = stubs(channel)[0].Predict(predict_request(version=1), timeout=TIMEOUT)
    assert response.model_spec.version.value == 1
    assert list(response.outputs["y"].float_val) == [2.5, 3.0]


def test_health_check(served):
    health = health_pb2_grpc.HealthStub(served[1])
    for service in ("", "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    error = rpc_error(health.Check, health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert error.code() == StatusCode.NOT_FOUND


def test_requests_count_in_the_shared_metrics_with_entrypoint_grpc(served, prediction):
    metrics = served[0].metrics
    latency = {"model_name": "hpt", "API": "Predict", "entrypoint": "GRPC"}
    ok = {"model_name": "hpt", "status": "OK"}
    failed = {"model_name": "hpt", "status": "FAILED_PRECONDITION"}
    before = (
        (metrics.histogram(":tensorflow:serving:request_latency", latency) or {"count": 0})[
            "count"
        ],
        metrics.counter_value(":tensorflow:serving:request_count", ok),
        metrics.counter_value(":tensorflow:serving:request_count", failed),
    )
    for _ in range(3):
        prediction.Predict(predict_request(), timeout=TIMEOUT)
    rpc_error(prediction.Predict, predict_request(signature="nope"))
    after = (
        metrics.histogram(":tensorflow:serving:request_latency", latency)["count"],
        metrics.counter_value(":tensorflow:serving:request_count", ok),
        metrics.counter_value(":tensorflow:serving:request_count", failed),
    )
    assert after[1] - before[1] == 3
    assert after[2] - before[2] == 1
    assert after[0] - before[0] >= 3
    assert b'entrypoint="GRPC"' in served[0].metrics.render()


# ---------------------------------------------------------------------- bad input
def _no_spec():
    request = predict_pb2.PredictRequest()
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0]]))
    return request


def _wrong_dtype():
    request = predict_request()
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1]], np.int32)))
    return request


def _missing_input():
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "multi"
    request.inputs["a"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 2), np.float32)))
    return request


def _wrong_rank():
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "multi"
    request.inputs["a"].CopyFrom(
        tf.make_tensor_proto(np.zeros(2, np.float32))
    )  # the signature says [?, 2]
    request.inputs["b"].CopyFrom(tf.make_tensor_proto(np.zeros(1, np.int64)))
    return request


def _output_filter(*aliases):
    request = predict_request()
    request.output_filter.extend(aliases)
    return request


def _bad_tensor():
    request = predict_request()
    request.inputs["x"].tensor_content = b"\x00" * 5  # 5 bytes for a [2, 1] float tensor
    return request


def _classify_predict_signature():
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tf1"
    request.input.example_list.examples.extend(examples(1.0))
    return request


def _classify_without_examples():
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tf1"
    request.model_spec.signature_name = "classify_x_to_y"
    return request


def _metadata(*fields):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    request.model_spec.name = "hpt"
    return request


def _multi(*tasks):
    request = inference_pb2.MultiInferenceRequest()
    for name, signature, method in tasks:
        task = request.tasks.add(method_name=method)
        task.model_spec.name = name
        task.model_spec.signature_name = signature
    request.input.example_list.examples.extend(examples(1.0))
    return request


CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"

BAD_REQUESTS = {
    "missing ModelSpec": ("Predict", _no_spec, StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
    "empty model name": (
        "Predict",
        lambda: predict_request(name=""),
        StatusCode.INVALID_ARGUMENT,
        "ModelSpec has no name specified.",
    ),
    "unknown model": (
        "Predict",
        lambda: predict_request(name="nope"),
        StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    "unknown version": (
        "Predict",
        lambda: predict_request(version=99),
        StatusCode.NOT_FOUND,
        "Servable not found for request: Specific(hpt, 99)",
    ),
    "unknown label": (
        "Predict",
        lambda: predict_request(label="beta"),
        StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: beta",
    ),
    "unknown signature": (
        "Predict",
        lambda: predict_request(signature="nope"),
        StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    ),
    "wrong dtype": (
        "Predict",
        _wrong_dtype,
        StatusCode.INVALID_ARGUMENT,
        "Expects arg[0] (x) to be float but int32 is provided",
    ),
    "missing input": (
        "Predict",
        _missing_input,
        StatusCode.INVALID_ARGUMENT,
        "input size does not match signature: 1!=2 len({a}) != len({a,b}). "
        "Sent extra: {}. Missing but required: {b}.",
    ),
    "a shape the model cannot run": (
        "Predict",
        _wrong_rank,
        StatusCode.INVALID_ARGUMENT,
        "Expects arg[0] (a) to have shape [?,2] but [2] is provided",
    ),
    "unknown output alias": (
        "Predict",
        lambda: _output_filter("z"),
        StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: z Outputs expected to be in the set {y}.",
    ),
    "duplicate output alias": (
        "Predict",
        lambda: _output_filter("y", "y"),
        StatusCode.INVALID_ARGUMENT,
        "duplicate output tensor alias: y",
    ),
    "tensor_content of the wrong size": (
        "Predict",
        _bad_tensor,
        StatusCode.INVALID_ARGUMENT,
        "tensor_content",
    ),
    "classify without ModelSpec": (
        "Classify",
        classification_pb2.ClassificationRequest,
        StatusCode.INVALID_ARGUMENT,
        "Missing ModelSpec",
    ),
    "classify without examples": (
        "Classify",
        _classify_without_examples,
        StatusCode.INVALID_ARGUMENT,
        "Input is empty.",
    ),
    "classify on a predict signature": (
        "Classify",
        _classify_predict_signature,
        StatusCode.INVALID_ARGUMENT,
        "Expected classification signature outputs to contain at least one of classes or scores.",
    ),
    "metadata without field": (
        "GetModelMetadata",
        _metadata,
        StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field",
    ),
    "metadata unsupported field": (
        "GetModelMetadata",
        lambda: _metadata("signature_def", "graph"),
        StatusCode.INVALID_ARGUMENT,
        "Metadata field graph is not supported",
    ),
    "multi inference without tasks": (
        "MultiInference",
        _multi,
        StatusCode.INVALID_ARGUMENT,
        "ModelSpec has no name specified.",
    ),
    "multi inference across models": (
        "MultiInference",
        lambda: _multi(("tf1", "classify_x_to_y", CLASSIFY), ("hpt", "", REGRESS)),
        StatusCode.INVALID_ARGUMENT,
        "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
    ),
    "multi inference duplicate signature": (
        "MultiInference",
        lambda: _multi(("tf1", "regress_x_to_y", REGRESS), ("tf1", "regress_x_to_y", REGRESS)),
        StatusCode.INVALID_ARGUMENT,
        "Duplicate evaluation of signature: regress_x_to_y",
    ),
    "multi inference unknown signature": (
        "MultiInference",
        lambda: _multi(("tf1", "nope", REGRESS)),
        StatusCode.INVALID_ARGUMENT,
        "Requested signature not found in model graph: nope",
    ),
    "multi inference predict method": (
        "MultiInference",
        lambda: _multi(("tf1", "regress_x_to_y", "tensorflow/serving/predict")),
        StatusCode.UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_tf_serving_codes_and_messages(prediction, case):
    method, make, code, message = BAD_REQUESTS[case]
    error = rpc_error(getattr(prediction, method), make())
    assert error.code() == code, error.details()
    if message == "tensor_content":  # the codec's own wording, naming the field at fault
        assert "tensor_content" in error.details()
    else:
        assert error.details() == message


def test_status_and_reload_without_model_spec_or_model_list(models):
    error = rpc_error(models.GetModelStatus, get_model_status_pb2.GetModelStatusRequest())
    assert (error.code(), error.details()) == (StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "nope"
    error = rpc_error(models.GetModelStatus, request)
    assert (error.code(), error.details()) == (
        StatusCode.NOT_FOUND,
        "Could not find any versions of model nope",
    )
    error = rpc_error(models.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest())
    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(
        "ServerModelConfig type not supported by HandleReloadConfigRequest."
    )


def test_long_messages_are_truncated_like_tf_serving(prediction):
    signature = "s" * 2000
    error = rpc_error(prediction.Predict, predict_request(signature=signature))
    expected = f'Serving signature key "{signature}" not found.'[:1024] + "...TRUNCATED"
    assert (error.code(), error.details()) == (StatusCode.FAILED_PRECONDITION, expected)


def _filled_request(model: str, alias: str, dtype, shape, **values) -> predict_pb2.PredictRequest:
    """A Predict whose TensorProto declares ``shape`` but carries a value or two, as a hostile client sends."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    tensor = request.inputs[alias]
    tensor.dtype = dtype
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)
    for field, value in values.items():
        getattr(tensor, field).extend(value)
    return request


@pytest.mark.parametrize(
    "model, alias, dtype, shape, values",
    [
        # The 41-byte request took the server to a 5.1 GB peak; [2^40] was INTERNAL.
        ("hpt", "x", tf.float32.as_datatype_enum, (100_000_000, 1), {"float_val": [1.0]}),
        ("hpt", "x", tf.float32.as_datatype_enum, (1 << 40, 1), {"float_val": [1.0]}),
        ("hpt", "x", tf.float32.as_datatype_enum, (TENSOR_LIMIT // 4 + 1, 1), {}),
        (
            "strings",
            "text",
            tf.string.as_datatype_enum,
            (10_000_000_000,),
            {"string_val": [b"abc"]},
        ),
    ],
)
def test_a_small_request_declaring_a_huge_tensor_is_refused_before_allocating(
    prediction, model, alias, dtype, shape, values
):
    request = _filled_request(model, alias, dtype, shape, **values)
    assert request.ByteSize() < 64
    error = rpc_error(prediction.Predict, request)
    assert error.code() == StatusCode.RESOURCE_EXHAUSTED
    assert f"tensor of shape [{','.join(map(str, shape))}]" in error.details()
    assert error.details().endswith(f"limit of {TENSOR_LIMIT} bytes (max_request_tensor_bytes)")


def test_a_filled_tensor_within_the_limit_is_served(prediction):
    request = _filled_request("hpt", "x", tf.float32.as_datatype_enum, (1000, 1), float_val=[2.0])
    assert prediction.Predict(request, timeout=TIMEOUT).outputs["y"].float_val == [3.0] * 1000


def test_unparsable_request_is_refused_and_the_server_keeps_serving(served, prediction):
    raw_predict = served[1].unary_unary(
        "/tensorflow.serving.PredictionService/Predict",
        request_serializer=None,
        response_deserializer=predict_pb2.PredictResponse.FromString,
    )
    error = rpc_error(
        raw_predict, b"\x0a\xff\xff\xff\xff\x0f"
    )  # a length-delimited field past the end
    assert error.code() == StatusCode.INTERNAL
    assert error.details().startswith("Failed to parse request: ")
    assert prediction.Predict(predict_request(), timeout=TIMEOUT).outputs["y"].float_val == [
        2.5,
        3.0,
    ]


def test_version_and_label_on_the_wire_last_one_wins(served):
    """ModelSpec's version and version_label are a oneof: a request carrying both means the last one."""
    raw_predict = served[1].unary_unary(
        "/tensorflow.serving.PredictionService/Predict",
        request_serializer=None,
        response_deserializer=predict_pb2.PredictResponse.FromString,
    )
    by_version = predict_request(version=2).SerializeToString()
    by_label = predict_request(label="stable").SerializeToString()
    assert raw_predict(by_version + by_label, timeout=TIMEOUT).model_spec.version.value == 1
    assert raw_predict(by_label + by_version, timeout=TIMEOUT).model_spec.version.value == 2


def test_messages_up_to_int32_max(served):
    """Requests and answers far over gRPC's 4 MB default go through, as with TF Serving."""
    x = np.arange(1_500_000, dtype=np.float32).reshape(-1, 1)  # 6 MB each way
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(f"127.0.0.1:{served[0].grpc_port}", options=options) as channel:
        response = stubs(channel)[0].Predict(predict_request(x=x), timeout=TIMEOUT)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), x * 0.5 + 2)


# ---------------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def pki():
    return make_pki()


def _ssl_config_file(path, pki, client_verify: bool) -> str:
    key, cert = pki["server"]
    text = (
        f"server_key: {key.decode()!r}\nserver_cert: {cert.decode()!r}\n"
        f"custom_ca: {pki['ca'].decode()!r}\nclient_verify: {str(client_verify).lower()}\n"
    )
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("client_verify", [False, True], ids=["tls", "mutual-tls"])
def test_tls_from_an_ssl_config_file(tmp_path, model_repo, pki, client_verify):
    base = model_repo("half_plus_two", "hpt")
    ssl_config = _ssl_config_file(tmp_path / "ssl.config", pki, client_verify)
    server = start_server(model_config(hpt=base), ssl_config_file=ssl_config)
    target = f"localhost:{server.grpc_port}"
    try:
        client_key, client_cert = pki["client"]
        with_cert = grpc.ssl_channel_credentials(pki["ca"], client_key, client_cert)
        with grpc.secure_channel(target, with_cert) as channel:
            assert stubs(channel)[0].Predict(predict_request(), timeout=TIMEOUT).outputs[
                "y"
            ].float_val == [2.5, 3.0]
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(pki["ca"])) as channel:
            if client_verify:  # no client certificate: the handshake is refused
                error = rpc_error(stubs(channel)[0].Predict, predict_request())
                assert error.code() == StatusCode.UNAVAILABLE
            else:
                assert (
                    stubs(channel)[0].Predict(predict_request(), timeout=TIMEOUT).model_spec.name
                    == "hpt"
                )
        with grpc.insecure_channel(target) as channel:  # plaintext never reaches the API
            assert (
                rpc_error(stubs(channel)[0].Predict, predict_request()).code()
                == StatusCode.UNAVAILABLE
            )
    finally:
        server.stop()


# ---------------------------------------------------------------------- reload, swaps, shutdown
def test_reload_config_realizes_exactly_the_listed_models(model_repo):
    first = model_repo("half_plus_two", "first")
    second = model_repo("half_plus_two", "second", versions=(3,))
    server = start_server(model_config(first=first))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            prediction, models = stubs(channel)
            request = model_management_pb2.ReloadConfigRequest()
            request.config.CopyFrom(model_config(second=second))
            response = models.HandleReloadConfigRequest(request, timeout=120)
            assert response.status.error_code == 0
            assert (
                prediction.Predict(
                    predict_request("second"), timeout=TIMEOUT
                ).model_spec.version.value
                == 3
            )
            error = rpc_error(prediction.Predict, predict_request("first"))
            assert (error.code(), error.details()) == (
                StatusCode.NOT_FOUND,
                "Servable not found for request: Latest(first)",
            )
            request.config.model_config_list.config[0].base_path = "relative/path"
            error = rpc_error(models.HandleReloadConfigRequest, request)
            assert (error.code(), error.details()) == (
                StatusCode.INVALID_ARGUMENT,
                "Expected model second to have an absolute path or URI; got base_path()=relative/path",
            )
            assert server.manager.model_names() == ["second"]  # a refused config changes nothing
    finally:
        server.stop()


def _swap_to_version_2(server, model_repo) -> None:
    """Add version 2 of "hpt" on disk and wait until it serves and version 1 is unloaded."""
    model_repo("half_plus_two", "hpt", versions=(2,))
    server.manager.poll()
    manager = server.manager
    assert manager.wait_for(
        lambda: (
            [(s.version, s.state) for s in manager.version_status("hpt")]
            == [(2, State.AVAILABLE), (1, State.END)]
        ),
        120,
    ), manager.version_status("hpt")


def test_32_concurrent_streams_across_a_version_swap_never_fail(model_repo):
    base = model_repo("half_plus_two", "hpt")
    server = start_server(model_config(hpt=base))
    channel = grpc.insecure_channel(
        f"127.0.0.1:{server.grpc_port}"
    )  # 32 streams on one HTTP/2 connection
    prediction = stubs(channel)[0]
    streams = 32
    seen: list[list[int]] = [[] for _ in range(streams)]
    failures: list[str] = []
    progress = threading.Condition()
    swapped = threading.Event()

    def stream(index: int) -> None:
        while not (swapped.is_set() and seen[index].count(2) >= 3) and not failures:
            try:
                response = prediction.Predict(predict_request(), timeout=60)
                assert list(response.outputs["y"].float_val) == [2.5, 3.0]
            except (grpc.RpcError, AssertionError) as exc:
                failures.append(repr(exc))
            else:
                seen[index].append(response.model_spec.version.value)
            with progress:
                progress.notify_all()

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(streams)]
    try:
        for thread in threads:
            thread.start()
        with progress:  # every stream is busy on version 1 before version 2 appears
            assert progress.wait_for(lambda: all(seen) or failures, 120)
        _swap_to_version_2(server, model_repo)
        swapped.set()
        for thread in threads:
            thread.join(120)
        assert failures == []
        assert not any(thread.is_alive() for thread in threads)
        for versions in seen:
            assert versions[0] == 1 and versions[-1] == 2 and versions == sorted(versions)
    finally:
        swapped.set()
        channel.close()
        server.stop()


def test_refused_requests_leak_no_version_handle(model_repo):
    """Every kind of failed request releases its claim: the old version still unloads after a swap."""
    base = model_repo("half_plus_two", "hpt")
    server = start_server(model_config(hpt=base))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            prediction = stubs(channel)[0]
            for case in (
                "unknown signature",
                "wrong dtype",
                "unknown output alias",
                "tensor_content of the wrong size",
            ):
                method, make, code, _ = BAD_REQUESTS[case]
                assert rpc_error(getattr(prediction, method), make()).code() == code
            assert (
                rpc_error(prediction.GetModelMetadata, _metadata("graph")).code()
                == StatusCode.INVALID_ARGUMENT
            )
            prediction.Predict(predict_request(), timeout=TIMEOUT)
        _swap_to_version_2(server, model_repo)
    finally:
        server.stop()


def test_stop_lets_in_flight_calls_finish_and_refuses_new_ones(model_repo):
    base = model_repo("half_plus_two", "hpt")
    server = start_server(model_config(hpt=base), num_inference_threads=1, grpc_max_threads=1)
    slot = server.service.run_slots
    slot.acquire()  # the only model-run slot is ours: the admitted call waits for it
    released = False
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    prediction, models = stubs(channel)
    stopper = threading.Thread(target=server.stop, kwargs={"grace": 60}, daemon=True)
    try:
        # --grpc_max_threads=1: of two calls, one gets in (and waits for inference), the other is turned away.
        calls = [prediction.Predict.future(predict_request(), timeout=120) for _ in range(2)]
        finished: queue.Queue = queue.Queue()
        for call in calls:
            call.add_done_callback(finished.put)
        refused = finished.get(timeout=60)
        assert refused.exception().code() == StatusCode.UNAVAILABLE
        assert "max_requests_in_flight=1" in refused.exception().details()
        assert finished.empty()
        # A refusal waits for nothing of the call: not even its message, held back here.
        gate = threading.Event()

        def held_back():
            gate.wait(60)
            yield predict_request().SerializeToString()

        raw_predict = channel.stream_unary("/tensorflow.serving.PredictionService/Predict")
        try:
            with pytest.raises(grpc.RpcError) as early:
                raw_predict(held_back(), timeout=30)
        finally:
            gate.set()
        assert early.value.code() == StatusCode.UNAVAILABLE
        in_flight = calls[1 - calls.index(refused)]
        stopper.start()
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "hpt"
        # Shutting down: calls on the open connection are cancelled, new connections find no listener.
        # (A call that races the shutdown can also wait unserved until its deadline.)
        assert _refusal_besides(busy_or_late, models, status_request) in (
            StatusCode.CANCELLED,
            StatusCode.UNAVAILABLE,
        )
        slot.release()
        released = True
        assert list(in_flight.result(timeout=60).outputs["y"].float_val) == [2.5, 3.0]
        stopper.join(60)
        assert not stopper.is_alive()
    finally:
        if not released:
            slot.release()
        channel.close()
        if stopper.ident is None:
            server.stop()


def busy_or_late(error: grpc.RpcError) -> bool:
    """Refused by the port's bound on calls in flight, or not answered in time."""
    return error.code() == StatusCode.DEADLINE_EXCEEDED or (
        error.code() == StatusCode.UNAVAILABLE and "max_requests_in_flight" in error.details()
    )


def _refusal_besides(tolerated, stub, request, timeout: float = 60.0) -> StatusCode:
    """Call until the server refuses other than as ``tolerated(error)`` says; return that code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stub.GetModelStatus(request, timeout=2)
        except grpc.RpcError as exc:
            if not tolerated(exc):
                return exc.code()
    raise AssertionError(f"the server kept answering for {timeout}s")


def batched_server(tmp_path, model_repo, batch_timeout_micros: int) -> ModelServer:
    """half_plus_two as "hpt" behind --enable_batching, batches of up to 64 rows."""
    base = model_repo("half_plus_two", "hpt")
    parameters = tmp_path / "batching.config"
    parameters.write_text(
        f"max_batch_size {{ value: 64 }}\nbatch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
    )
    return start_server(
        model_config(hpt=base), enable_batching=True, batching_parameters_file=str(parameters)
    )


def batch_runs(server: ModelServer) -> list[dict]:
    """The processed_batch_size series: ``sum`` is rows run, ``count`` is model runs."""
    return server.metrics.snapshot().get(
        ":tensorflow:serving:batching_session:processed_batch_size", []
    )


def test_batched_server_answers_each_grpc_call_with_its_own_rows(tmp_path, model_repo):
    """With --enable_batching, gRPC calls share model runs and still get their own rows back."""
    server = batched_server(tmp_path, model_repo, batch_timeout_micros=100000)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            prediction = stubs(channel)[0]
            calls = [
                prediction.Predict.future(
                    predict_request(x=[[float(i)], [i + 0.5]]), timeout=TIMEOUT
                )
                for i in range(16)
            ]
            for i, call in enumerate(calls):
                assert list(call.result().outputs["y"].float_val) == [
                    i * 0.5 + 2,
                    (i + 0.5) * 0.5 + 2,
                ]
        runs = batch_runs(server)
        assert sum(series["sum"] for series in runs) == 32  # every row ran once
        assert 1 <= sum(series["count"] for series in runs) < 16  # in fewer runs than calls
    finally:
        server.stop()


def test_a_batched_call_whose_client_gives_up_leaves_its_batch(tmp_path, model_repo):
    """A deadline that passes while the call waits in its batch drops its rows: only live calls run."""
    server = batched_server(tmp_path, model_repo, batch_timeout_micros=3000000)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            prediction = stubs(channel)[0]
            with pytest.raises(grpc.RpcError) as gave_up:
                prediction.Predict(predict_request(x=[[1.0], [2.0], [3.0]]), timeout=0.5)
            assert gave_up.value.code() == StatusCode.DEADLINE_EXCEEDED
            answered = prediction.Predict(predict_request(x=[[4.0]]), timeout=TIMEOUT)
            assert list(answered.outputs["y"].float_val) == [4.0]
        assert (
            sum(series["sum"] for series in batch_runs(server)) == 1
        )  # the abandoned call's three rows never ran
    finally:
        server.stop()


def test_calls_past_max_requests_in_flight_are_refused_at_once(tmp_path, model_repo):
    """With --grpc_max_threads=0 nothing bounded the calls queued for a handler."""
    base = model_repo("half_plus_two", "hpt")
    parameters = tmp_path / "batching.config"
    parameters.write_text("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 2000000 }\n")
    server = start_server(
        model_config(hpt=base),
        enable_batching=True,
        batching_parameters_file=str(parameters),
        max_requests_in_flight=2,
    )

    def queued_rows() -> int:
        signatures = server.batcher.stats("hpt")["signatures"]
        return signatures["serving_default"]["queued_rows"] if signatures else 0

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            prediction = stubs(channel)[0]
            waiting = [
                prediction.Predict.future(predict_request(x=[[1.0]]), timeout=TIMEOUT)
                for _ in range(2)
            ]
            assert wait_until(lambda: queued_rows() == 2, TIMEOUT)
            refused = rpc_error(prediction.Predict, predict_request(x=[[3.0]]))
            # TF Serving's answer for a full queue, UNAVAILABLE, and at once: the two calls
            # admitted are still waiting for their batch (2 s) when the third is refused.
            assert refused.code() == StatusCode.UNAVAILABLE
            assert "max_requests_in_flight=2" in refused.details()
            assert not any(call.done() for call in waiting)
            assert [list(call.result().outputs["y"].float_val) for call in waiting] == [
                [2.5],
                [2.5],
            ]
            assert prediction.Predict(predict_request(x=[[4.0]]), timeout=TIMEOUT).outputs[
                "y"
            ].float_val == [4.0]
    finally:
        server.stop()


# ---------------------------------------------------------------------- flags
def test_channel_arguments_override_the_defaults(model_repo):
    base = model_repo("half_plus_two", "hpt")
    server = start_server(
        model_config(hpt=base), grpc_channel_arguments="grpc.max_receive_message_length=512"
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            prediction = stubs(channel)[0]
            assert prediction.Predict(predict_request(), timeout=TIMEOUT).model_spec.name == "hpt"
            big = predict_request(x=np.zeros((200, 1), np.float32))
            assert rpc_error(prediction.Predict, big).code() == StatusCode.RESOURCE_EXHAUSTED
    finally:
        server.stop()


def test_channel_argument_parsing():
    assert parse_channel_arguments("") == []
    assert parse_channel_arguments(
        "grpc.keepalive_time_ms=1000, grpc.primary_user_agent=tfserve,x=9999999999"
    ) == [
        ("grpc.keepalive_time_ms", 1000),
        ("grpc.primary_user_agent", "tfserve"),
        ("x", "9999999999"),  # not an int32: passed as a string, like TF Serving
    ]
    with pytest.raises(Exception, match="expected key=value"):
        parse_channel_arguments("grpc.keepalive_time_ms")


def test_a_taken_port_is_a_startup_error(served, model_repo):
    base = model_repo("half_plus_two", "hpt")
    with pytest.raises(OSError, match=f"127.0.0.1:{served[0].grpc_port}"):
        start_server(model_config(hpt=base), port=served[0].grpc_port)


def test_ssl_config_problems_stop_the_start(tmp_path, model_repo, pki):
    base = model_repo("half_plus_two", "hpt")
    key, cert = pki["server"]
    no_ca = tmp_path / "no_ca.config"
    no_ca.write_text(
        f"server_key: {key.decode()!r}\nserver_cert: {cert.decode()!r}\nclient_verify: true\n"
    )
    with pytest.raises(ServingError, match="client_verify needs custom_ca"):
        start_server(model_config(hpt=base), ssl_config_file=str(no_ca))
    garbage = tmp_path / "garbage.config"
    garbage.write_text("server_key: [unterminated")
    with pytest.raises(ServingError, match="Error parsing text-format .*SSLConfig"):
        start_server(model_config(hpt=base), ssl_config_file=str(garbage))


FORKS_WHILE_SERVING = r"""
import os, sys, time
import jupyter_tfserve  # first, as in a kernel that loaded the extension before anything used gRPC
from jupyter_tfserve.server import ModelServer, ServerOptions

options = ServerOptions(port=int(sys.argv[2]), rest_api_port=0, model_name="hpt",
                        model_base_path=sys.argv[1], enable_model_warmup=False)
server = ModelServer(options).start()
crashed = 0
for _ in range(200):
    pid = os.fork()
    if pid == 0:  # what a shell escape does: close every inherited fd, then exec
        try:
            os.closerange(3, 4096)
            time.sleep(0.001)
            os.execv("/bin/true", ["true"])
        finally:
            os._exit(127)
    crashed += os.waitpid(pid, 0)[1] != 0
server.stop()
print("crashed", crashed)
"""


def test_a_process_serving_grpc_can_fork_and_exec(model_repo):
    """A kernel hosting the server runs `!` commands; gRPC's fork handlers used to kill ~1 child in 3 here."""
    import subprocess
    import sys

    base = model_repo("half_plus_two", "hpt")
    run = subprocess.run(
        [sys.executable, "-c", FORKS_WHILE_SERVING, base, str(free_port())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "crashed 0", run.stderr[-3000:]
    assert "Bad file descriptor" not in run.stderr
