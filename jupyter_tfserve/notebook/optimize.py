"""Optimized exports: a model converted to TensorFlow Lite with post-training quantization, and how it compares.

``export(..., optimize=...)`` writes the model's SavedModel to staging as usual,
converts that SavedModel here, and publishes the ``model.tflite`` as the new
version (served by the ``tflite`` platform; the SavedModel versions stay).
The comparison that comes back is what decides whether the optimized version
should take traffic: size on disk, agreement with the float32 SavedModel on the
sample (max abs error; argmax agreement for class scores), and latency at
batch 1 and batch 32 of both, each run through the engine's own servables.

* ``float16``: weights stored as float16 (half the size), computed in float32;
* ``dynamic-int8``: weights int8, activations quantized on the fly;
* ``int8``: weights and activations int8, calibrated on the sample (the
  representative dataset); ops without int8 kernels stay float.
"""

from __future__ import annotations

import os
import re
import time

import numpy as np

OPTIMIZATIONS = ("float16", "dynamic-int8", "int8")
LATENCY_BATCHES = (1, 32)
LATENCY_SECONDS = 0.25  # per model and batch size: medians, not benchmarks
CALIBRATION_ROWS = 100

_UNSUPPORTED_OP = re.compile(r"'(tf\.\w+)' op is neither a custom op nor a flex op")


class ConversionRefused(ValueError):
    """The TensorFlow Lite converter cannot convert the model; the message is one line naming the op."""


def check_optimization(optimize: str, has_sample: bool) -> None:
    if optimize not in OPTIMIZATIONS:
        raise ValueError(
            f"Unknown optimization {optimize!r}: choose one of {', '.join(OPTIMIZATIONS)}"
        )
    if optimize == "int8" and not has_sample:
        raise ValueError("int8 quantization calibrates on the sample: pass one (--sample)")


def convert(
    saved_model_dir: str,
    signature_keys: list[str],
    optimize: str,
    inputs: dict[str, np.ndarray] | None,
) -> bytes:
    """The SavedModel's signatures as a ``.tflite`` flatbuffer with this optimization."""
    from ..core.native_logs import quiet_python_logs
    from ..core.platforms.tensorflow import tensorflow

    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=signature_keys
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if optimize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif optimize == "int8":

        def representative_dataset():
            rows = min(CALIBRATION_ROWS, *(len(v) for v in inputs.values()))
            for i in range(rows):
                yield {alias: value[i : i + 1] for alias, value in inputs.items()}

        converter.representative_dataset = tf.lite.RepresentativeDataset(representative_dataset)
    try:
        with quiet_python_logs():
            return converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter raises several types; all mean "refused"
        raise ConversionRefused(refusal_line(exc)) from None


def refusal_line(exc: Exception) -> str:
    """The converter's pages of MLIR diagnostics as one line: the ops TensorFlow Lite lacks, else the first line."""
    text = str(exc)
    ops = list(dict.fromkeys(_UNSUPPORTED_OP.findall(text)))
    if ops:
        others = f" (also {', '.join(ops[1:])})" if len(ops) > 1 else ""
        return f"TensorFlow Lite cannot convert this model: op {ops[0]}{others} has no TensorFlow Lite kernel"
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    return f"TensorFlow Lite cannot convert this model: {first}"


def compare(
    saved_model_dir: str,
    tflite_dir: str,
    optimize: str,
    signature_key: str,
    inputs: dict[str, np.ndarray] | None,
):
    """The comparison table (a DataFrame): one row for the float32 SavedModel, one for the optimized model."""
    import pandas as pd

    from ..core.platforms import LoadOptions
    from ..core.platforms.tensorflow import load_servable
    from ..core.platforms.tflite import MODEL_FILE, TfLitePlatform

    reference = load_servable("float32", 0, saved_model_dir)
    optimized = TfLitePlatform().load(optimize, 0, tflite_dir, LoadOptions())
    try:
        rows = {}
        expected = reference.run(signature_key, inputs) if inputs else None
        for label, servable, size in (
            ("float32 SavedModel", reference, _tree_size(saved_model_dir)),
            (
                f"{optimize} TFLite",
                optimized,
                os.path.getsize(os.path.join(tflite_dir, MODEL_FILE)),
            ),
        ):
            row = {"size_kb": size / 1024}
            if expected is not None:
                got = servable.run(signature_key, inputs)
                row["max_abs_error"] = max(
                    float(np.max(np.abs(got[k] - expected[k]), initial=0.0)) for k in expected
                )
                row["argmax_agreement"] = _argmax_agreement(got, expected)
            if inputs:
                for batch in LATENCY_BATCHES:
                    row[f"latency_ms_batch{batch}"] = _median_ms(
                        servable, signature_key, _rows(inputs, batch)
                    )
            rows[label] = row
    finally:
        reference.close()
        optimized.close()
    return pd.DataFrame.from_dict(rows, orient="index")


def _tree_size(path: str) -> int:
    """Bytes of a SavedModel as served (its warmup records are not the model)."""
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != "assets.extra"]
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def _argmax_agreement(got: dict, expected: dict) -> float:
    """Share of rows whose top class agrees, on the first output that holds scores per row; NaN without one."""
    for key, value in expected.items():
        if value.ndim == 2 and value.shape[1] > 1:
            return float(np.mean(np.argmax(got[key], axis=1) == np.argmax(value, axis=1)))
    return float("nan")


def _rows(inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """``batch`` rows of the sample (repeated when it has fewer)."""
    return {k: np.resize(v, (batch, *v.shape[1:])).astype(v.dtype) for k, v in inputs.items()}


def _median_ms(servable, signature_key: str, inputs: dict[str, np.ndarray]) -> float:
    servable.run(signature_key, inputs)  # the first call allocates; not what is measured
    times = []
    deadline = time.perf_counter() + LATENCY_SECONDS
    while time.perf_counter() < deadline or len(times) < 5:
        started = time.perf_counter()
        servable.run(signature_key, inputs)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e3)
