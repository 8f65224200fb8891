"""Two TF Serving defaults that its own tests rely on, over REST and gRPC.

1. ``--enable_signature_method_name_check`` is off by default: Classify,
   Regress and MultiInference run on TF2 signatures that ``tf.saved_model.save``
   names ``tensorflow/serving/predict`` (``testClassifyTf2``, ``testRegressTf2``,
   ``testMultiInferenceTf2``). Turned on, the method name must match.
2. TF1 models run with C++ ``Session::Run`` semantics: a fed shape is not
   checked against the placeholder's static shape (``x`` of shape ``[1]`` on a
   ``[?, 1]`` placeholder gives ``y = [4.0]`` on ``saved_model_half_plus_three``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import savedmodels
import tensorflow as tf
from ports import free_port
from tensorflow_serving.apis import classification_pb2, inference_pb2, predict_pb2, regression_pb2
from test_grpc import examples, model_config, stubs

from jupyter_tfserve.cli import build_parser, options_from_args
from jupyter_tfserve.core.platforms.tensorflow import load_servable
from jupyter_tfserve.server import ModelServer, ServerOptions

TIMEOUT = 30.0
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
PREDICT = "tensorflow/serving/predict"


class Served:
    """A ModelServer on REST and gRPC ports, with stubs and a REST caller."""

    def __init__(self, config, **options):
        self.server = ModelServer(
            ServerOptions(
                port=free_port(),
                rest_api_port=free_port(),
                file_system_poll_wait_seconds=0,
                max_num_load_retries=0,
                **options,
            ),
            config=config,
        ).start(timeout=120)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.server.grpc_port}")
        self.prediction, self.models = stubs(self.channel)

    def rest(self, path: str, body) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.server.rest_port}{path}",
            data=json.dumps(body).encode(),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def close(self) -> None:
        self.channel.close()
        self.server.stop()


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("defaults_models")
    savedmodels.half_plus_two_tf2_examples(root / "tf2", 1)
    savedmodels.half_plus_three_tf1(root / "hp3", 1)
    return model_config(tf2=str(root / "tf2"), hp3=str(root / "hp3"))


@pytest.fixture(scope="module")
def default(repository):
    served = Served(repository)
    yield served
    served.close()


@pytest.fixture(scope="module")
def checked(repository):
    served = Served(repository, enable_signature_method_name_check=True)
    yield served
    served.close()


def examples_request(message, signature: str):
    """A Classify or Regress request on the TF2 model, for examples x = 1 and x = 3."""
    request = message()
    request.model_spec.name = "tf2"
    request.model_spec.signature_name = signature
    request.input.example_list.examples.extend(examples(1.0, 3.0))
    return request


def classify_request() -> classification_pb2.ClassificationRequest:
    return examples_request(classification_pb2.ClassificationRequest, "classify_x_to_y")


def regress_request() -> regression_pb2.RegressionRequest:
    return examples_request(regression_pb2.RegressionRequest, "regress_x_to_y")


def multi_inference_request() -> inference_pb2.MultiInferenceRequest:
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("classify_x_to_y", CLASSIFY), ("regress_x_to_y", REGRESS)):
        task = request.tasks.add()
        task.model_spec.name = "tf2"
        task.model_spec.signature_name = signature
        task.method_name = method
    request.input.example_list.examples.extend(examples(1.0, 3.0))
    return request


REST_EXAMPLES = {"examples": [{"x": 1.0}, {"x": 3.0}]}


# ---------------------------------------------------------------------- method names
def test_the_tf2_export_names_every_signature_predict(default):
    """The premise: what TF2 writes, so the tests below exercise the unchecked path."""
    with default.server.manager.acquire("tf2") as handle:
        methods = {key: sig.method_name for key, sig in handle.servable.signatures.items()}
    assert methods == {
        "serving_default": PREDICT,
        "classify_x_to_y": PREDICT,
        "regress_x_to_y": PREDICT,
    }


def test_grpc_classify_regress_and_multi_inference_run_on_tf2_signatures(default):
    classify = default.prediction.Classify(classify_request(), timeout=TIMEOUT)
    scores = [[c.score for c in row.classes] for row in classify.result.classifications]
    assert scores == [[2.5], [3.5]]
    assert [c.label for c in classify.result.classifications[0].classes] == [""]

    regress = default.prediction.Regress(regress_request(), timeout=TIMEOUT)
    assert [r.value for r in regress.result.regressions] == [2.5, 3.5]

    multi = default.prediction.MultiInference(multi_inference_request(), timeout=TIMEOUT)
    classified, regressed = multi.results
    assert [
        [c.score for c in row.classes] for row in classified.classification_result.classifications
    ] == [
        [2.5],
        [3.5],
    ]
    assert [r.value for r in regressed.regression_result.regressions] == [2.5, 3.5]
    assert (regressed.model_spec.signature_name, regressed.model_spec.version.value) == (
        "regress_x_to_y",
        1,
    )


def test_rest_classify_and_regress_run_on_tf2_signatures(default):
    status, body = default.rest(
        "/v1/models/tf2:classify", {"signature_name": "classify_x_to_y", **REST_EXAMPLES}
    )
    assert (status, body) == (200, {"results": [[["", 2.5]], [["", 3.5]]]})
    status, body = default.rest(
        "/v1/models/tf2:regress", {"signature_name": "regress_x_to_y", **REST_EXAMPLES}
    )
    assert (status, body) == (200, {"results": [2.5, 3.5]})


def test_without_the_check_a_signature_must_still_fit_the_call(default):
    """Unchecked is not unchecked-everything: a predict signature has no example input or classes/scores."""
    status, body = default.rest("/v1/models/tf2:classify", REST_EXAMPLES)
    assert status == 400
    assert (
        body["error"]
        == "Expected classification signature outputs to contain at least one of classes or scores."
    )


def test_the_check_turned_on_refuses_with_tf_serving_wording(checked):
    classify_error = (
        f"Expected classification signature method_name to be {CLASSIFY}. Was: {PREDICT}"
    )
    regress_error = f"Expected regression signature method_name to be {REGRESS}. Was: {PREDICT}"
    for call, request, message in (
        (checked.prediction.Classify, classify_request(), classify_error),
        (checked.prediction.Regress, regress_request(), regress_error),
        (checked.prediction.MultiInference, multi_inference_request(), classify_error),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=TIMEOUT)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == message

    status, body = checked.rest(
        "/v1/models/tf2:classify", {"signature_name": "classify_x_to_y", **REST_EXAMPLES}
    )
    assert (status, body) == (400, {"error": classify_error})
    status, body = checked.rest(
        "/v1/models/tf2:regress", {"signature_name": "regress_x_to_y", **REST_EXAMPLES}
    )
    assert (status, body) == (400, {"error": regress_error})


def test_the_flag_and_its_default_on_the_command_line():
    parse = build_parser().parse_args
    assert options_from_args(parse([])).enable_signature_method_name_check is False
    assert options_from_args(
        parse(["--enable_signature_method_name_check=true"])
    ).enable_signature_method_name_check


# ---------------------------------------------------------------------- TF1 feed shapes
def test_the_session_loader_feeds_with_cpp_semantics(repository, model_store):
    """The TF1 loader's callables skip Python's feed-shape check, strings and state included.

    TensorFlow 2.21 loads these exports with ``tf.saved_model.load`` too; the session loader
    serves what it refuses, so it is exercised here directly on the same real exports.
    """
    hp3 = load_servable("hp3", 1, repository.model_config_list.config[1].base_path + "/1", tf1=True)
    try:
        assert hp3.loader == "tf1"
        assert hp3.run("serving_default", {"x": np.array([2.0], np.float32)})["y"].tolist() == [4.0]
        assert hp3.run("serving_default", {"x": np.array([[2.0], [4.0]], np.float32)})[
            "y"
        ].tolist() == [
            [4.0],
            [5.0],
        ]
    finally:
        hp3.close()
    tf1 = load_servable("tf1", 1, model_store["half_plus_two_tf1"], tf1=True)
    try:
        serialized = np.array([e.SerializeToString() for e in examples(1.0, 3.0)], dtype=object)
        out = tf1.run("regress_x_to_y", {"inputs": serialized})
        assert out["outputs"].tolist() == [2.5, 3.5]
    finally:
        tf1.close()


def test_grpc_predict_feeds_a_shape_the_placeholder_does_not_declare(default):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp3"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([2.0], np.float32)))
    response = default.prediction.Predict(request, timeout=TIMEOUT)
    y = tf.make_ndarray(response.outputs["y"])
    assert y.shape == (1,) and y.tolist() == [4.0]


def test_rest_predict_feeds_rows_of_either_shape(default):
    assert default.rest("/v1/models/hp3:predict", {"instances": [2.0]}) == (
        200,
        {"predictions": [4.0]},
    )
    assert default.rest("/v1/models/hp3:predict", {"instances": [[2.0], [4.0]]}) == (
        200,
        {"predictions": [[4.0], [5.0]]},
    )
