"""Warmup: replay ``assets.extra/tf_serving_warmup_requests`` before a version takes traffic.

The file is TF Serving's: a TFRecord of ``PredictionLog``. Replaying it pays
for graph tracing, kernel selection and allocator growth at load time instead
of on the first user's request. As in TF Serving, at most 1000 records are
read, each is replayed ``iterations`` times, and a record that fails fails
the load (so a broken version never replaces a working one).
"""

from __future__ import annotations

import os
import time

from tensorflow_serving.apis import prediction_log_pb2

from . import tensors
from .inference import example_array, example_input_alias, validate_inputs, validate_output_filter
from .platforms import Servable
from .platforms.tensorflow import tensorflow
from .signatures import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD
from .status import Code, ServingError

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000


def warmup_path(version_dir: str) -> str:
    return os.path.join(version_dir, WARMUP_FILE)


def write_warmup_records(version_dir: str, logs) -> int:
    """Write ``PredictionLog``s as the version's warmup file (at most :data:`MAX_WARMUP_RECORDS`)."""
    logs = list(logs)
    if len(logs) > MAX_WARMUP_RECORDS:
        raise ServingError(
            Code.INVALID_ARGUMENT, f"At most {MAX_WARMUP_RECORDS} warmup records, not {len(logs)}"
        )
    path = warmup_path(version_dir)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tensorflow().io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return len(logs)


def read_warmup_records(path: str) -> list:
    """The PredictionLogs in a warmup file (TFRecord)."""
    tf = tensorflow()
    logs = []
    for index, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
        if index >= MAX_WARMUP_RECORDS:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}",
            )
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    return logs


def warmup(
    servable: Servable,
    iterations: int = 1,
    metrics=None,
    *,
    check_signature_method_name: bool = False,
) -> int:
    """Replay the version's warmup records; returns how many were replayed (0 when there is no file).

    Classify and regress records follow the server's ``--enable_signature_method_name_check``.
    """
    path = warmup_path(servable.path)
    if not os.path.exists(path):
        return 0
    started = time.perf_counter()
    try:
        logs = read_warmup_records(path)
    except ServingError:
        raise
    except Exception as exc:  # a truncated or foreign file: fail this version's load, clearly
        raise ServingError(
            Code.DATA_LOSS, f"Could not read warmup records from {path}: {exc}"
        ) from exc
    for log in logs:
        for _ in range(max(1, iterations)):
            try:
                _replay(servable, log, check_signature_method_name)
            except ServingError as exc:
                raise ServingError(
                    exc.code,
                    f"Warmup failed for {servable.name} version {servable.version}: {exc.message}",
                ) from exc
    if metrics is not None:
        metrics.observe(
            ":tensorflow:serving:model_warmup_latency",
            {"model_path": servable.path},
            (time.perf_counter() - started) * 1e6,
            doc="Distribution of wall time (in microseconds) for warming up the model.",
        )
    return len(logs)


def _replay(servable: Servable, log, check_method_name: bool) -> None:
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = log.predict_log.request
        signature = servable.signature(request.model_spec.signature_name or DEFAULT_SIGNATURE)
        inputs = {k: tensors.tensor_proto_to_ndarray(v) for k, v in request.inputs.items()}
        validate_inputs(signature, inputs)
        servable.run(
            signature.name, inputs, validate_output_filter(signature, list(request.output_filter))
        )
    elif kind in ("classify_log", "regress_log"):
        request = getattr(log, kind).request
        method = CLASSIFY_METHOD if kind == "classify_log" else REGRESS_METHOD
        _run_examples(
            servable, request.model_spec.signature_name, request.input, method, check_method_name
        )
    elif kind == "multi_inference_log":
        request = log.multi_inference_log.request
        for task in request.tasks:
            method = CLASSIFY_METHOD if task.method_name == CLASSIFY_METHOD else REGRESS_METHOD
            _run_examples(
                servable, task.model_spec.signature_name, request.input, method, check_method_name
            )
    else:
        raise ServingError(Code.UNIMPLEMENTED, f"Unsupported log_type for warmup: {kind}")


def _run_examples(
    servable: Servable, signature_name: str, input_proto, method: str, check_method_name: bool
) -> None:
    signature = servable.signature(signature_name or DEFAULT_SIGNATURE)
    alias = example_input_alias(signature, method, check_method_name=check_method_name)
    servable.run(
        signature.name, {alias: example_array(tensors.input_to_serialized_examples(input_proto))}
    )
