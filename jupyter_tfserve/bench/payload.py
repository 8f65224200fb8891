"""What the benchmark sends: request inputs shaped by the signature, encoded once before the run.

Inputs come from ``"zeros"``, ``"random"`` (values of each input's dtype and
declared shape; unknown non-batch dimensions become 1) or the user's own
sample (an array, a dict of arrays or a DataFrame, mapped onto the inputs as
the notebook client maps them). Each request carries ``rows`` rows along the
batch dimension; a sample is cut into consecutive slices, wrapping around.

A small pool of different bodies is encoded up front with the engine's codec
(REST: TF Serving's columnar JSON; gRPC: a serialized ``PredictRequest``), so
the workers only write bytes and the measurement never includes our encoder.
"""

from __future__ import annotations

import math

import numpy as np

from .options import BenchError

POOL = 16
DATA_KINDS = ("zeros", "random")


def _shape(spec, rows: int) -> tuple[int, ...]:
    if spec.shape is None:
        return (rows,)
    if not spec.shape:
        return ()
    leading = rows if spec.shape[0] == -1 else spec.shape[0]
    return (leading, *(1 if d == -1 else d for d in spec.shape[1:]))


def _generated(spec, shape: tuple[int, ...], kind: str, rng: np.random.Generator) -> np.ndarray:
    from ..core import tensors

    dtype = tensors.numpy_dtype(spec.dtype)
    if dtype == np.dtype(object):
        if kind == "zeros":
            return np.full(shape, b"", dtype=object)
        words = [f"w{int(v):07d}".encode() for v in rng.integers(0, 10**7, size=math.prod(shape))]
        return np.array(words, dtype=object).reshape(shape)
    if kind == "zeros":
        return np.zeros(shape, dtype=dtype)
    if dtype == np.dtype(bool):
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 10, size=shape).astype(dtype)
    return rng.random(shape).astype(dtype)


def request_inputs(
    signature, rows: int, data="random", *, pool: int = POOL, seed: int = 0
) -> list[dict]:
    """``pool`` (or fewer) different input dicts of ``rows`` rows each, for ``signature``."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise BenchError(f"rows per request must be a whole number >= 1, not {rows!r}")
    if isinstance(data, str):
        if data not in DATA_KINDS:
            raise BenchError(
                f"data must be 'zeros', 'random', an array, a dict of arrays or a DataFrame, not {data!r}"
            )
        rng = np.random.default_rng(seed)
        count = 1 if data == "zeros" else pool
        return [
            {
                alias: _generated(spec, _shape(spec, rows), data, rng)
                for alias, spec in signature.inputs.items()
            }
            for _ in range(count)
        ]
    return _sliced(signature, rows, data, pool)


def _sliced(signature, rows: int, data, pool: int) -> list[dict]:
    from ..client import data as data_lib
    from ..core import tensors

    try:
        named = data_lib.named_inputs(data, list(signature.inputs))
    except data_lib.InputMismatch as exc:
        raise BenchError(f"the sample does not fit signature {signature.name!r}: {exc}") from None
    sizes = {len(a) for a in named.values() if np.ndim(a) > 0}
    if len(sizes) != 1 or 0 in sizes:
        raise BenchError(
            f"the sample's inputs must share one non-empty first dimension (got {sorted(sizes)})"
        )
    total = sizes.pop()
    for alias, array in named.items():
        wanted = tensors.numpy_dtype(signature.inputs[alias].dtype)
        if wanted != np.dtype(object) and array.dtype != wanted:
            try:
                named[alias] = array.astype(wanted)
            except (TypeError, ValueError):
                raise BenchError(
                    f"input {alias!r}: cannot use {array.dtype} values as {wanted}"
                ) from None
    count = min(pool, max(1, math.ceil(total / rows)))
    return [
        {alias: array[(np.arange(rows) + k * rows) % total] for alias, array in named.items()}
        for k in range(count)
    ]


def rows_of(inputs: dict) -> int:
    """The rows one request carries (its batch dimension), 1 for scalars."""
    sizes = {np.shape(a)[0] for a in inputs.values() if np.ndim(a) > 0}
    return sizes.pop() if len(sizes) == 1 else 1


def rest_bodies(signature, inputs_pool: list[dict], method: str = "predict") -> list[bytes]:
    """TF Serving columnar JSON: ``{"signature_name": ..., "inputs": ...}``; for classify and
    regress, the pool holds ``examples`` bodies, sent as they are with the signature's name."""
    from ..core import tensors

    if method != "predict":
        return [tensors.dumps({"signature_name": signature.name, **body}) for body in inputs_pool]
    return [tensors.encode_predict_request(inputs, signature.name) for inputs in inputs_pool]


def grpc_bodies(target, signature, inputs_pool: list[dict]) -> list[bytes]:
    """Serialized ``PredictRequest`` messages for the target's model spec."""
    from tensorflow_serving.apis import predict_pb2

    from ..core import tensors

    bodies = []
    for inputs in inputs_pool:
        request = predict_pb2.PredictRequest()
        target.model_spec(request.model_spec)
        for alias, array in inputs.items():
            request.inputs[alias].CopyFrom(
                tensors.ndarray_to_tensor_proto(array, signature.inputs[alias].dtype)
            )
        bodies.append(request.SerializeToString())
    return bodies
