"""REST predict body -> tensors: simdjson's numeric path against the general decoder (orjson + numpy).

In-process on core 0, per body: ``parse_json`` + ``decode_predict_request``
(what every body took before) and ``parse_numeric`` + ``NumericBody.decode``
(what numeric bodies take now). The two take turns for ``--rounds`` rounds;
it prints the median CPU microseconds per body (the thread's CPU time, so
other work on a shared core does not count), the spread, and general/numeric.

Run: ``python benchmarks/bench_json_decode.py [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

MEASURE = r"""
import json, random, statistics, sys, time
from tensorflow.core.framework import types_pb2 as DT
from jupyter_tfserve.core import tensors as T
from jupyter_tfserve.core.signatures import SignatureInfo, TensorSpec

rounds = int(sys.argv[1])
rng = random.Random(0)
def row(n=784):
    return [round(rng.random(), 6) for _ in range(n)]
def sig(dtype=DT.DT_FLOAT):
    return SignatureInfo("serving_default", "predict", {"x": TensorSpec("x", "x:0", dtype, None)}, {})
cases = {
    "instances 1x784 float": ({"instances": [row()]}, sig()),
    "instances 32x784 float": ({"instances": [row() for _ in range(32)]}, sig()),
    "inputs 1x784 float": ({"inputs": [row()]}, sig()),
    "instances 1x784 int": ({"instances": [[rng.randrange(256) for _ in range(784)]]}, sig(DT.DT_INT32)),
}

def general(body, signature):
    request = T.parse_json(body)
    return T.decode_predict_request(request, signature, bool_free=T.bool_free(body), budget=T.TensorBudget())

def numeric(body, signature):
    return T.parse_numeric(body).decode(signature, T.TensorBudget())

def us_per_call(fn, body, signature):
    # CPU time of this thread: on a shared core, time spent descheduled is not the decoder's.
    calls, start = 0, time.thread_time()
    while time.thread_time() - start < 0.5:
        fn(body, signature)
        calls += 1
    return (time.thread_time() - start) / calls * 1e6

out = {}
for name, (document, signature) in cases.items():
    body = json.dumps(document).encode()
    times = {"general": [], "numeric": []}
    for _ in range(rounds):
        for path, fn in (("general", general), ("numeric", numeric)):
            times[path].append(us_per_call(fn, body, signature))
    out[name] = {
        **{f"{p}_us": statistics.median(t) for p, t in times.items()},
        **{f"{p}_spread_us": [min(t), max(t)] for p, t in times.items()},
        "general/numeric": statistics.median(times["general"]) / statistics.median(times["numeric"]),
    }
print(json.dumps(out))
"""


def run(rounds: int = 5) -> dict:
    out = subprocess.run(
        [*harness.pinned(0), sys.executable, "-c", MEASURE, str(rounds)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    run(parser.parse_args().rounds)
