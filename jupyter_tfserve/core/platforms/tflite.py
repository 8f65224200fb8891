"""The built-in ``tflite`` platform: a version folder's ``model.tflite`` on the LiteRT interpreter.

LiteRT (``ai-edge-litert``) rather than ``tf.lite.Interpreter``: measured on the
MLP of the benchmarks both run a signature in the same time (117 vs 109 us at
batch 1, 652 vs 658 us at batch 32, one thread), but LiteRT imports in 0.2 s
without TensorFlow (TensorFlow takes about 3 s) and ``tf.lite.Interpreter`` is
deprecated in favour of it.

Each signature runner is served under its signature name; a model without
signatures (TF Serving's ``saved_model_half_plus_two_tflite``) is served as
``serving_default`` with its tensor names as aliases, as TF Serving does.

An interpreter runs one call at a time, so a version keeps a pool of them,
grown on demand to the number of concurrent requests, each with
``num_threads`` threads (1 unless ``--tensorflow_intra_op_parallelism`` says
otherwise: concurrency comes from the pool). A batch runs in one call when
the model's inputs have a free leading dimension (the input tensors are
resized to the batch; resizing to a new row count costs a re-allocation), and
in slices of the fixed leading dimension otherwise.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ..signatures import DEFAULT_SIGNATURE
from ..status import failed_precondition, invalid_argument
from .base import LoadOptions, Platform, Servable, normalize, signature_def

MODEL_FILE = "model.tflite"


def interpreter_class():
    """LiteRT's interpreter, imported on the first tflite load (never on the server's start path).

    Without it only tflite models fail, each with this in its status.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise failed_precondition(
            f"The tflite platform needs LiteRT: pip install ai-edge-litert ({exc})"
        ) from exc
    return Interpreter


class TfLitePlatform(Platform):
    """Serves ``<version>/model.tflite``."""

    def recognizes(self, path: str) -> bool:
        return os.path.isfile(os.path.join(path, MODEL_FILE))

    def load(self, name: str, version: int, path: str, options: LoadOptions) -> Servable:
        model_path = os.path.join(path, MODEL_FILE)
        if not os.path.isfile(model_path):
            raise invalid_argument(f"No {MODEL_FILE} in {path}")
        pool = _InterpreterPool(model_path, options.num_threads or 1)
        first = pool.take()
        try:
            runners = _describe(first.interpreter)
        finally:
            pool.give(first)
        signature_defs = {key: runner.signature_def for key, runner in runners.items()}
        return Servable(name, version, path, signature_defs, _Runner(pool, runners))


class _SignatureLayout:
    """One signature of the model: its tensors, and the ``SignatureDef`` it is served with.

    A model converted with a fixed leading dimension of 1 (batch size one) is run row
    by row, so it is served with that dimension free (-1): clients and the batch
    scheduler may send any number of rows, as to a SavedModel.
    """

    def __init__(self, key: str | None, inputs: dict, outputs: dict):
        self.key = key  # the signature key in the model; None when served from tensor names
        self.inputs = inputs  # alias -> interpreter details
        self.outputs = outputs
        shapes = [list(d["shape_signature"]) for d in (*inputs.values(), *outputs.values())]
        self.row_by_row = bool(inputs) and all(shape[:1] == [1] for shape in shapes)

        def spec(details):
            shape = [int(d) for d in details["shape_signature"]]
            return np.dtype(details["dtype"]).name, [-1, *shape[1:]] if self.row_by_row else shape

        self.signature_def = signature_def(
            {a: spec(d) for a, d in inputs.items()}, {a: spec(d) for a, d in outputs.items()}
        )


def _describe(interpreter) -> dict[str, _SignatureLayout]:
    signatures = interpreter.get_signature_list()
    if not signatures:
        by_name = {d["name"]: d for d in interpreter.get_input_details()}
        out_by_name = {d["name"]: d for d in interpreter.get_output_details()}
        return {DEFAULT_SIGNATURE: _SignatureLayout(None, by_name, out_by_name)}
    layouts = {}
    for key in signatures:
        runner = interpreter.get_signature_runner(key)
        layouts[key] = _SignatureLayout(
            key, runner.get_input_details(), runner.get_output_details()
        )
    return layouts


class _Interpreter:
    """One interpreter and its signature runners (made once: a runner costs a signature lookup to build)."""

    def __init__(self, interpreter):
        self.interpreter = interpreter
        self._runners: dict[str, object] = {}

    def __call__(
        self, layout: _SignatureLayout, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """One call; outputs are copies (the interpreter's buffers are reused by the next call).

        Input tensors are resized to the request's shapes, as the signature runner does; the
        runtime skips a resize to the current shape and an allocation nothing invalidated.
        """
        missing = set(layout.inputs) - set(inputs)
        if missing:
            raise invalid_argument(f"Missing input(s): {', '.join(sorted(missing))}")
        if layout.key is not None:
            runner = self._runners.get(layout.key)
            if runner is None:
                runner = self._runners[layout.key] = self.interpreter.get_signature_runner(
                    layout.key
                )
            return runner(**{alias: inputs[alias] for alias in layout.inputs})
        interpreter = self.interpreter
        for alias, details in layout.inputs.items():
            interpreter.resize_tensor_input(details["index"], inputs[alias].shape)
        interpreter.allocate_tensors()
        for alias, details in layout.inputs.items():
            interpreter.set_tensor(details["index"], inputs[alias])
        interpreter.invoke()
        return {
            alias: interpreter.get_tensor(details["index"])
            for alias, details in layout.outputs.items()
        }


class _InterpreterPool:
    """Interpreters of one model, each used by one call at a time, created when all are busy."""

    def __init__(self, model_path: str, num_threads: int):
        self._model_path = model_path
        self._num_threads = num_threads
        self._idle: list[_Interpreter] = []
        self._lock = threading.Lock()
        self._cls = interpreter_class()

    def take(self) -> _Interpreter:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        interpreter = self._cls(model_path=self._model_path, num_threads=self._num_threads)
        interpreter.allocate_tensors()
        return _Interpreter(interpreter)

    def give(self, interpreter: _Interpreter) -> None:
        with self._lock:
            self._idle.append(interpreter)

    def close(self) -> None:
        with self._lock:
            self._idle.clear()


class _Runner:
    kind = "tflite"

    def __init__(self, pool: _InterpreterPool, layouts: dict[str, _SignatureLayout]):
        self._pool = pool
        self._layouts = layouts

    def run(self, signature, inputs, aliases):
        layout = self._layouts[signature.name]
        call = self._pool.take()
        try:
            rows = _rows(inputs) if layout.row_by_row else None
            if rows is None or rows == 1:
                outputs = call(layout, inputs)
            else:
                parts = [
                    call(layout, {a: v[i : i + 1] for a, v in inputs.items()}) for i in range(rows)
                ]
                outputs = {a: np.concatenate([p[a] for p in parts]) for a in layout.outputs}
        finally:
            self._pool.give(call)
        return {alias: normalize(outputs[alias]) for alias in aliases}

    def close(self):
        self._pool.close()


def _rows(inputs: dict[str, np.ndarray]) -> int | None:
    sizes = {v.shape[0] for v in inputs.values() if v.ndim}
    return sizes.pop() if len(sizes) == 1 else None
