"""Optimized exports: real conversions to TensorFlow Lite, compared with the float32 SavedModel, then served."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from jupyter_tfserve.core.platforms import LoadOptions
from jupyter_tfserve.core.platforms.tflite import TfLitePlatform
from jupyter_tfserve.notebook.export import ExportError, export

COLUMNS = [
    "size_kb",
    "max_abs_error",
    "argmax_agreement",
    "latency_ms_batch1",
    "latency_ms_batch32",
]


class Classifier(tf.Module):
    """64 features -> 256 hidden -> 10 class scores, fixed random weights (big enough for quantization to show)."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w1 = tf.Variable(rng.normal(0, 0.2, (64, 256)).astype(np.float32))
        self.w2 = tf.Variable(rng.normal(0, 0.2, (256, 10)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="x")])
    def serve(self, x):
        return {"scores": tf.nn.softmax(tf.matmul(tf.nn.relu(tf.matmul(x, self.w1)), self.w2))}


class Determinant(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 3, 3], tf.float32, name="x")])
    def serve(self, x):
        return {"det": tf.linalg.det(x)}


@pytest.fixture(scope="module")
def sample():
    return np.random.default_rng(1).normal(0, 1, (64, 64)).astype(np.float32)


def run_tflite(path: str, x: np.ndarray) -> np.ndarray:
    servable = TfLitePlatform().load("m", 1, path, LoadOptions())
    try:
        return servable.run("serving_default", {"x": x})["scores"]
    finally:
        servable.close()


@pytest.mark.parametrize("optimize", ["float16", "dynamic-int8", "int8"])
def test_optimized_export_is_a_new_tflite_version_with_its_comparison(tmp_path, sample, optimize):
    model = Classifier()
    first = export(model, "clf", models_root=str(tmp_path))
    result = export(model, "clf", models_root=str(tmp_path), sample=sample, optimize=optimize)

    assert (first.version, result.version) == (1, 2)
    assert os.listdir(first.path) != [] and os.path.exists(
        os.path.join(first.path, "saved_model.pb")
    )
    assert sorted(os.listdir(result.path)) == ["assets.extra", "model.tflite"]
    assert sorted(os.listdir(tmp_path / "clf")) == ["1", "2"]  # no staging left behind

    table = result.comparison
    assert list(table.index) == ["float32 SavedModel", f"{optimize} TFLite"]
    assert list(table.columns) == COLUMNS
    reference, optimized = table.iloc[0], table.iloc[1]
    assert optimized.size_kb < reference.size_kb * (0.6 if optimize == "float16" else 0.35)
    assert reference.max_abs_error == 0.0 and reference.argmax_agreement == 1.0
    assert 0.0 < optimized.max_abs_error < 0.05
    assert optimized.argmax_agreement >= 0.9
    assert (table[["latency_ms_batch1", "latency_ms_batch32"]] > 0).all().all()
    assert f"as {optimize} TensorFlow Lite version 2" in repr(
        result
    ) and "argmax_agreement" in repr(result)

    expected = model.serve(tf.constant(sample[:4]))["scores"].numpy()
    np.testing.assert_allclose(run_tflite(result.path, sample[:4]), expected, atol=0.05)


def test_int8_needs_a_sample_and_a_refused_model_names_the_op(tmp_path):
    with pytest.raises(
        ExportError, match=r"int8 quantization calibrates on the sample: pass one \(--sample\)"
    ):
        export(Classifier(), "clf", models_root=str(tmp_path), optimize="int8")
    with pytest.raises(ExportError) as refused:
        export(Determinant(), "det", models_root=str(tmp_path), optimize="float16")
    assert str(refused.value) == (
        "TensorFlow Lite cannot convert this model: op tf.MatrixDeterminant has no TensorFlow Lite kernel"
    )
    assert os.listdir(tmp_path) == []  # nothing written
