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

With C clients on both sides (``wrk`` for REST, ``h2load`` for gRPC: one
channel carrying 32 calls at once), where both are installed: the ceilings of
the bare uvicorn app, a bare grpcio server and a bare grpclib server (asyncio
HTTP/2 on uvloop, raw bytes in and out), each with a fixed answer, then REST
against gRPC on an unbatched and a batched ``tfserve``, with the server's CPU
per request. ``--server-cores 0,1`` runs those servers on both cores (the
clients still on core 1) for the scaling; ``--c-clients-only`` skips the
Python-client rows.

Target: gRPC throughput >= REST throughput at every C.

Run: ``python benchmarks/bench_grpc.py`` (or ``pytest --bench benchmarks/``).
"""

from __future__ import annotations

import argparse
import importlib.util
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

# The same fixed answer from grpclib (asyncio HTTP/2 in Python, on uvloop), the request unparsed.
BARE_GRPCLIB = r"""
import sys
import uvloop
from grpclib.const import Cardinality, Handler
from grpclib.server import Server
from tensorflow_serving.apis import predict_pb2
answer = predict_pb2.PredictResponse()
answer.model_spec.name = "mlp"
answer.outputs["probabilities"].float_val.extend([0.1] * 10)
ANSWER = answer.SerializeToString()

class Raw:  # bytes in, bytes out: neither side parses a message
    __content_subtype__ = "proto"
    def encode(self, message, message_type):
        return message
    def decode(self, data, message_type):
        return data

class Predict:
    def __mapping__(self):
        return {"/tensorflow.serving.PredictionService/Predict":
                Handler(self.predict, Cardinality.UNARY_UNARY, None, None)}
    async def predict(self, stream):
        await stream.recv_message()
        await stream.send_message(ANSWER)

async def main():
    server = Server([Predict()], codec=Raw())
    await server.start("127.0.0.1", int(sys.argv[1]))
    await server.wait_closed()

uvloop.run(main())
"""

# The server-side cost of one gRPC Predict, phase by phase, through the server's own code.
# argv = model base path, the request (predict_message()) in hex.
COST_SPLIT = r"""
import json, sys, timeit
from concurrent.futures import ThreadPoolExecutor
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
raw = bytes.fromhex(sys.argv[2])  # predict_message()
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
        [*harness.pinned(0), sys.executable, "-c", COST_SPLIT, base_path, predict_message().hex()],
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


PREDICT = "/tensorflow.serving.PredictionService/Predict"


def predict_message() -> bytes:
    """One serialized one-row PredictRequest, as ``tf.make_tensor_proto`` builds it (``tensor_content``)."""
    import numpy as np
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mlp"
    tensor = request.inputs["x"]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=1)
    tensor.tensor_shape.dim.add(size=784)
    tensor.tensor_content = np.random.default_rng(0).random((1, 784), dtype=np.float32).tobytes()
    return request.SerializeToString()


def c_clients(base: str, server_cores: str) -> tuple[list[dict], dict]:
    """REST driven by ``wrk``, gRPC by ``h2load`` (one channel, 32 calls in flight): C clients on both sides.

    The ceilings (no model, core 0): the bare uvicorn app, a grpcio server and,
    where installed, a grpclib one, each with a fixed answer. Then one
    ``tfserve`` per batching mode on ``server_cores`` ("0", or "0,1" for the
    scaling on two cores, the clients still on core 1).
    """
    message = predict_message()
    rows = []

    def row(variant: str, result: dict) -> dict:
        rows.append(
            {
                "variant": variant,
                "C": 32,
                "req/s": result["throughput_rps"],
                "errors": result["errors"],
                "cpu_us/req": result["server_cpu_us"],
                "answer_bytes": result.get("answer_bytes"),
            }
        )
        return rows[-1]

    rest_port, grpcio_port, grpclib_port = (harness.free_port() for _ in range(3))
    url = f"http://127.0.0.1:{rest_port}/v1/models/mlp:predict"
    ready = f"http://127.0.0.1:{rest_port}/ready"
    with harness.process_on_core([sys.executable, "-c", BARE_ASGI, str(rest_port)], ready):
        rest = row("rest ceiling [wrk]", harness.wrk(url, BODY, concurrency=32))
    with harness.process_on_core([sys.executable, "-c", BARE_GRPC, str(grpcio_port)], grpcio_port):
        grpcio = row(
            "grpcio ceiling [h2load]",
            harness.h2load(grpcio_port, PREDICT, message, concurrency=1, streams=32),
        )
    grpclib = None
    if importlib.util.find_spec("grpclib"):
        cmd = [sys.executable, "-c", BARE_GRPCLIB, str(grpclib_port)]
        with harness.process_on_core(cmd, grpclib_port):
            grpclib = row(
                "grpclib ceiling [h2load]",
                harness.h2load(grpclib_port, PREDICT, message, concurrency=1, streams=32),
            )
    else:
        print(
            "grpclib not installed (pip install grpclib): its ceiling is skipped", file=sys.stderr
        )
    summary = {
        "grpcio_ceiling_over_rest_ceiling_c_clients": grpcio["req/s"] / rest["req/s"],
        "grpcio_cpu_us_per_call_no_model": grpcio["cpu_us/req"],
        "uvicorn_cpu_us_per_request_no_model": rest["cpu_us/req"],
    }
    if grpclib is not None:
        summary["grpclib_ceiling_over_grpcio_ceiling"] = grpclib["req/s"] / grpcio["req/s"]
    for batching in (False, True):
        mode = "batched" if batching else "unbatched"
        grpc_port = harness.free_port()
        flags = ["--model_name=mlp", f"--model_base_path={base}", f"--port={grpc_port}"]
        flags += ["--enable_batching"] if batching else []
        with harness.tfserve_process(*flags, core=server_cores) as (port, process):
            harness.PIDS[grpc_port] = process.pid
            served_url = f"http://127.0.0.1:{port}/v1/models/mlp:predict"
            rest = row(f"rest {mode} [wrk]", harness.wrk(served_url, BODY, concurrency=32))
            grpc_row = row(
                f"grpc {mode} [h2load]",
                harness.h2load(grpc_port, PREDICT, message, concurrency=1, streams=32),
            )
            harness.PIDS.pop(grpc_port, None)
        summary[f"grpc_over_rest_{mode}_c_clients"] = grpc_row["req/s"] / rest["req/s"]
    summary["server_cores"] = server_cores
    return rows, summary


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


def run(server_cores: str = "0", c_clients_only: bool = False) -> dict:
    rows, summary = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "mlp")
        models.mlp(base)
        if not c_clients_only:
            rows, summary = python_clients(base)
        if harness.WRK and harness.H2LOAD:
            c_rows, c_summary = c_clients(base, server_cores)
            columns = ["variant", "C", "req/s", "errors", "cpu_us/req", "answer_bytes"]
            print(harness.table(c_rows, columns))
            summary.update(c_summary)
            failed = [
                r for r in c_rows if r["variant"].startswith("grpc") and not r["answer_bytes"]
            ]
            summary["errors"] = summary.get("errors", 0) + sum(r["errors"] for r in c_rows)
            summary["errors"] += len(failed)  # h2load saw HTTP 200s that carried no answer
        else:
            print(
                harness.WRK_MISSING if not harness.WRK else harness.H2LOAD_MISSING, file=sys.stderr
            )
    print(json.dumps(summary, indent=2))
    return summary


def python_clients(base: str) -> tuple[dict, dict]:
    """The Python load generators at C = 1, 8, 32 on an unbatched server, the no-model ceilings, the cost split."""
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
    return rows, summary


@pytest.mark.bench
def test_bench_grpc():
    summary = run()
    assert summary["errors"] == 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server-cores",
        default="0",
        help='cores of the served tfserve in the C-client rows ("0,1": both, clients beside on 1)',
    )
    parser.add_argument("--c-clients-only", action="store_true", help="only the wrk / h2load rows")
    args = parser.parse_args()
    run(args.server_cores, args.c_clients_only)
