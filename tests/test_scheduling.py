"""Inference and load threads run as background work: they never preempt the network thread."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from jupyter_tfserve.core.inference import ModelSpec
from jupyter_tfserve.core.scheduling import mark_as_background_work
from jupyter_tfserve.server import ModelServer, ServerOptions

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policy")


def test_marks_only_the_calling_thread():
    seen = {}

    def worker():
        mark_as_background_work()
        seen["worker"] = os.sched_getscheduler(0)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    assert seen["worker"] == os.SCHED_BATCH
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


@pytest.mark.parametrize("batching", [False, True])
def test_model_runs_happen_on_background_threads(model_store, batching):
    base = os.path.dirname(str(model_store["half_plus_two"]))
    options = ServerOptions(
        port=0, rest_api_port=0, model_name="hpt", model_base_path=base, enable_batching=batching
    )
    with ModelServer(options) as server:
        with server.service.resolve(ModelSpec("hpt")) as resolved:
            future = server.service.predict(resolved, {"x": np.array([[1.0]], np.float32)})
        assert float(future.result(30)["y"][0][0]) == 2.5
        policies = {
            t.name: os.sched_getscheduler(t.native_id)
            for t in threading.enumerate()
            if t.name.startswith(("tfserve-infer", "tfserve-batch", "tfserve-load"))
        }
    assert policies and set(policies.values()) == {os.SCHED_BATCH}, policies
    assert any(n.startswith("tfserve-batch" if batching else "tfserve-infer") for n in policies)


def test_grpc_handlers_that_run_models_are_background_threads(model_store):
    import grpc
    from ports import free_port
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    base = os.path.dirname(str(model_store["half_plus_two"]))
    options = ServerOptions(
        port=free_port(), rest_api_port=0, model_name="hpt", model_base_path=base
    )
    with (
        ModelServer(options) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel,
    ):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "hpt"
        request.inputs["x"].dtype = 1  # DT_FLOAT
        request.inputs["x"].tensor_shape.dim.add(size=1)
        request.inputs["x"].tensor_shape.dim.add(size=1)
        request.inputs["x"].float_val.append(1.0)
        answer = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30
        )
        assert list(answer.outputs["y"].float_val) == [2.5]
        policies = {
            t.name: os.sched_getscheduler(t.native_id)
            for t in threading.enumerate()
            if t.name.startswith("tfserve-grpc")
        }
    assert policies and set(policies.values()) == {os.SCHED_BATCH}, policies
