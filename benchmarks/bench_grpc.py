"""gRPC vs REST on the same server: one-row Predict on the MLP 784-512-512-10.

In one run, against one ``tfserve`` process pinned to core 0 (TF threads 1/1):

* REST: the shared HTTP load generator (``"instances"`` JSON rows), C = 1, 8, 32;
* gRPC: a closed-loop ``grpc.aio`` client (one channel, C concurrent calls,
  pre-serialized ``PredictRequest``s with ``tensor_content``, as
  ``tf.make_tensor_proto`` builds them), pinned to core 1 like the HTTP one;
* the two stacks' own ceilings at C=32, with no model and the same clients: a
  grpcio thread-pool server whose Predict returns a fixed answer, and the
  bare ASGI app on uvicorn; gRPC can only beat REST where its stack costs less;
* the cost split of one gRPC Predict inside the server: parse + decode, model
  run (alone, and through the inference service as a handler thread runs it),
  encode + serialize, each timed in-process on core 0.

Target: gRPC throughput >= REST throughput at every C.

Run: ``python benchmarks/bench_grpc.py`` (or ``pytest --bench benchmarks/``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import models  # noqa: E402
from bench_batching import BARE_ASGI  # noqa: E402

BODY = '{"instances": [{{ROW}}]}'
CONCURRENCY = (1, 8, 32)

# Closed-loop gRPC client: argv = port, concurrency, duration, warmup.
GRPC_LOADGEN = r"""
import asyncio, collections, json, resource, sys, time
import numpy as np
import grpc
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

port, concurrency, duration, warmup = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rng = np.random.default_rng(0)
bodies = []
for _ in range(64):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mlp"
    tensor = request.inputs["x"]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=1)
    tensor.tensor_shape.dim.add(size=784)
    tensor.tensor_content = rng.random((1, 784), dtype=np.float32).tobytes()
    bodies.append(request.SerializeToString())

async def main():
    latencies, errors, samples = [], 0, collections.Counter()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        start = time.perf_counter()
        measure_from, end = start + warmup, start + warmup + duration

        async def client(i):
            nonlocal errors
            n = i
            while True:
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                try:
                    ok = b"probabilities" in await predict(bodies[n % len(bodies)], timeout=30)
                except grpc.RpcError as exc:
                    ok = False
                    if len(samples) < 5:
                        samples[f"{exc.code().name}: {exc.details()}"[:160]] += 1
                t1 = time.perf_counter()
                n += concurrency
                if t0 >= measure_from and t1 <= end:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1

        await asyncio.gather(*(client(i) for i in range(concurrency)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    latencies.sort()
    pick = lambda p: latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1e3
    print(json.dumps({"throughput_rps": round(len(latencies) / duration, 1), "p50_ms": pick(0.5),
                      "p99_ms": pick(0.99), "errors": errors, "error_samples": dict(samples),
                      "loadgen_cpu_s": round(cpu, 2)}))

asyncio.run(main())
"""

# grpcio's own ceiling: the same server type and pool size as the unbatched front, no model.
BARE_GRPC = r"""
import sys
from concurrent.futures import ThreadPoolExecutor
import grpc
from tensorflow_serving.apis import predict_pb2
answer = predict_pb2.PredictResponse()
answer.model_spec.name = "mlp"
answer.outputs["probabilities"].float_val.extend([0.1] * 10)
ANSWER = answer.SerializeToString()
handler = grpc.method_handlers_generic_handler(
    "tensorflow.serving.PredictionService",
    {"Predict": grpc.unary_unary_rpc_method_handler(lambda request, context: ANSWER)})
server = grpc.server(ThreadPoolExecutor(16), handlers=[handler])
server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
server.start()
server.wait_for_termination()
"""

# The server-side cost of one gRPC Predict, phase by phase, through the server's own code.
COST_SPLIT = r"""
import json, sys, timeit
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2
from jupyter_tfserve.core.platforms import tensorflow as servable
from jupyter_tfserve.core.config import single_model_config
from jupyter_tfserve.core.inference import InferenceService, ModelSpec, validate_inputs
from jupyter_tfserve.core.manager import ModelManager
from jupyter_tfserve.protocols.grpc import decode_inputs, model_spec, predict_response

servable.configure_tensorflow(1, 1)
manager = ModelManager(lambda name, version, path: servable.load_servable(name, version, path),
                       file_system_poll_wait_seconds=0)
manager.reload_config(single_model_config("mlp", sys.argv[1]))
service = InferenceService(manager, ThreadPoolExecutor(4))
request = predict_pb2.PredictRequest()
request.model_spec.name = "mlp"
tensor = request.inputs["x"]
tensor.dtype = types_pb2.DT_FLOAT
tensor.tensor_shape.dim.add(size=1)
tensor.tensor_shape.dim.add(size=784)
tensor.tensor_content = np.random.default_rng(0).random((1, 784), dtype=np.float32).tobytes()
raw = request.SerializeToString()
target = service.resolve(ModelSpec("mlp"))

def decode():  # parse, resolve (handle + signature), tensors, validation
    parsed = predict_pb2.PredictRequest.FromString(raw)
    with service.resolve(model_spec(parsed)) as resolved:
        inputs = decode_inputs(parsed.inputs)
        validate_inputs(resolved.signature, inputs)
    return inputs

inputs = decode()
outputs = target.servable.run("serving_default", inputs)

def run():  # the model alone, on this thread
    return target.servable.run("serving_default", inputs)

def run_inline():  # the model through the inference service on the calling thread, as a gRPC handler runs it
    return service.predict(target, inputs, inline=True).result()

def encode():  # response proto with typed values, serialized
    return predict_response(target, outputs).SerializeToString()

result = {}
for name, fn in (("decode", decode), ("run", run), ("run_inline", run_inline), ("encode", encode)):
    fn()
    number = 2000
    result[name + "_us"] = min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6
target.release()
manager.stop()
print(json.dumps(result))
"""


def grpc_loadgen(port: int, concurrency: int, duration: float = 8.0, warmup: float = 2.0) -> dict:
    cmd = [
        *harness.pinned(1),
        sys.executable,
        "-c",
        GRPC_LOADGEN,
        str(port),
        str(concurrency),
        str(duration),
        str(warmup),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cost_split(base_path: str) -> dict:
    out = subprocess.run(
        [*harness.pinned(0), sys.executable, "-c", COST_SPLIT, base_path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def ceilings() -> list[dict]:
    """Both stacks with no model at C=32, each measured by the client that measures it served."""
    grpc_port, rest_port = harness.free_port(), harness.free_port()
    with harness.process_on_core([sys.executable, "-c", BARE_GRPC, str(grpc_port)], grpc_port):
        grpc_result = grpc_loadgen(grpc_port, 32)
    with harness.process_on_core(
        [sys.executable, "-c", BARE_ASGI, str(rest_port)], f"http://127.0.0.1:{rest_port}/ready"
    ):
        rest_result = harness.loadgen(
            f"http://127.0.0.1:{rest_port}/v1/models/mlp:predict", BODY, concurrency=32
        )
    return [
        _row(f"{variant} ceiling (no model)", 32, result)
        for variant, result in (("rest", rest_result), ("grpc", grpc_result))
    ]


def _row(variant: str, c: int, result: dict) -> dict:
    if result.get("error_samples"):
        print(f"{variant} C={c} errors: {result['error_samples']}")
    return {
        "variant": variant,
        "C": c,
        "req/s": result["throughput_rps"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "errors": result["errors"],
    }


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "mlp")
        models.mlp(base)
        split = cost_split(base)
        bare = ceilings()
        grpc_port = harness.free_port()
        rows = []
        with harness.tfserve(
            "--model_name=mlp", f"--model_base_path={base}", f"--port={grpc_port}"
        ) as port:
            url = f"http://127.0.0.1:{port}/v1/models/mlp:predict"
            for c in CONCURRENCY:
                results = {
                    "rest": harness.loadgen(url, BODY, concurrency=c, expect="predictions"),
                    "grpc": grpc_loadgen(grpc_port, c),
                }
                rows += [_row(variant, c, result) for variant, result in results.items()]
    rows += bare
    by = {(r["variant"], r["C"]): r for r in rows}
    summary = {
        **{
            f"grpc_over_rest_c{c}": by["grpc", c]["req/s"] / by["rest", c]["req/s"]
            for c in CONCURRENCY
        },
        "grpc_ceiling_over_rest_ceiling": (
            by["grpc ceiling (no model)", 32]["req/s"] / by["rest ceiling (no model)", 32]["req/s"]
        ),
        **{f"grpc_{k}": round(v, 1) for k, v in split.items()},
        "errors": sum(r["errors"] for r in rows),
    }
    print(harness.table(rows, ["variant", "C", "req/s", "p50_ms", "p99_ms", "errors"]))
    print(json.dumps(summary, indent=2))
    return summary


@pytest.mark.bench
def test_bench_grpc():
    summary = run()
    assert summary["errors"] == 0


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    run()
