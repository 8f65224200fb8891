"""Exporting live models: Keras (Sequential, functional multi-in/out, subclassed), tf.Module, concrete functions.

Every round trip loads the written version with the engine's own loader and
runs it, so "exported" means "servable, with the same answers".
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from jupyter_tfserve.core.platforms.tensorflow import load_servable
from jupyter_tfserve.core.tensors import max_abs_diff
from jupyter_tfserve.core.warmup import read_warmup_records, warmup, warmup_path
from jupyter_tfserve.notebook.export import ExportError, ParityError, export

RNG = np.random.default_rng(0)


def sequential():
    return keras.Sequential(
        [keras.Input((4,), name="features"), keras.layers.Dense(3, name="probs")]
    )


def functional():
    a = keras.Input((2,), name="a")
    b = keras.Input((1,), name="b", dtype="int32")
    hidden = keras.layers.Concatenate()([a, keras.ops.cast(b, "float32")])
    return keras.Model(
        [a, b],
        [keras.layers.Dense(1, name="score")(hidden), keras.layers.Dense(2, name="logits")(hidden)],
    )


class Affine(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable([[2.0], [-1.0]])

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def predict(self, x):
        return {"y": tf.matmul(x, self.w)}

    @tf.function
    def scale(self, x):  # no input_signature: traced from the sample
        return {"scaled": x * 10.0}


def run(path: str, inputs: dict, signature: str = "serving_default") -> dict:
    servable = load_servable("m", 1, path)
    try:
        return servable.run(signature, inputs)
    finally:
        servable.close()


def test_keras_sequential_round_trip_with_warmup_and_parity(tmp_path):
    model = sequential()
    x = RNG.random((6, 4))
    result = export(model, "seq", sample=x, models_root=str(tmp_path))

    assert (result.version, result.path) == (1, str(tmp_path / "seq" / "1"))
    signature = result.signatures["serving_default"]
    assert list(signature.inputs) == ["features"] and list(signature.outputs) == ["probs"]
    assert signature.inputs["features"].shape == (-1, 4)
    assert result.parity is not None and result.max_abs_diff <= 1e-6
    assert "parity check on the sample passed" in repr(result) and "<table>" in result._repr_html_()

    served = run(result.path, {"features": x.astype(np.float32)})["probs"]
    np.testing.assert_allclose(served, model(x.astype(np.float32)).numpy(), atol=1e-6)

    # The warmup file is TF Serving's format, and the engine replays it at load.
    logs = read_warmup_records(warmup_path(result.path))
    assert len(logs) == 1 and logs[0].predict_log.request.model_spec.name == "seq"
    assert list(logs[0].predict_log.request.inputs) == ["features"]
    servable = load_servable("seq", 1, result.path)
    try:
        assert warmup(servable) == 1
    finally:
        servable.close()
    assert not [n for n in os.listdir(tmp_path / "seq") if n.startswith(".")], "staging left behind"


def test_functional_multi_input_multi_output_keeps_names_and_dtypes(tmp_path):
    model = functional()
    sample = pd.DataFrame({"a": list(RNG.random((3, 2))), "b": list(np.array([[1], [2], [3]]))})
    result = export(model, "multi", sample=sample, models_root=str(tmp_path))

    signature = result.signatures["serving_default"]
    assert sorted(signature.inputs) == ["a", "b"]
    assert sorted(signature.outputs) == ["logits", "score"]
    assert result.table().column("dtype")[:2] == ["DT_FLOAT", "DT_INT32"]
    assert set(result.parity) == {"logits", "score"}

    inputs = {"a": np.ones((2, 2), np.float32), "b": np.array([[1], [5]], np.int32)}
    served = run(result.path, inputs)
    expected = model([inputs["a"], inputs["b"]])
    np.testing.assert_allclose(served["score"], expected[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(served["logits"], expected[1].numpy(), atol=1e-6)


def test_subclassed_keras_model_takes_its_signature_from_the_sample(tmp_path):
    class Doubler(keras.Model):
        def call(self, inputs):
            return inputs * 2.0

    with pytest.raises(ExportError, match="pass a sample"):
        export(Doubler(), "sub", models_root=str(tmp_path))
    assert not (tmp_path / "sub").exists()
    result = export(Doubler(), "sub", sample=np.ones((2, 3)), models_root=str(tmp_path))
    assert list(result.signatures["serving_default"].inputs) == ["inputs"]
    out = run(result.path, {"inputs": np.full((1, 3), 4.0, np.float32)})
    np.testing.assert_allclose(next(iter(out.values())), [[8.0, 8.0, 8.0]])


def test_tf_module_functions_under_chosen_signature_keys(tmp_path):
    module = Affine()
    x = np.array([[1.0, 1.0], [3.0, 0.0]])
    result = export(
        module,
        "affine",
        signatures=["predict", "times_ten=scale"],
        sample=x,
        models_root=str(tmp_path),
    )

    assert sorted(result.signatures) == ["predict", "serving_default", "times_ten"]
    assert result.max_abs_diff == 0.0
    np.testing.assert_allclose(run(result.path, {"x": x.astype(np.float32)})["y"], [[1.0], [6.0]])
    np.testing.assert_allclose(
        run(result.path, {"x": x.astype(np.float32)}, "times_ten")["scaled"], x * 10
    )

    with pytest.raises(ExportError, match="Several tf.functions"):
        export(module, "affine", models_root=str(tmp_path))
    with pytest.raises(ExportError, match="no tf.function 'nope'"):
        export(module, "affine", signatures=["nope"], models_root=str(tmp_path))


def test_concrete_function_with_captured_variables(tmp_path):
    weight = tf.Variable(3.0)

    @tf.function
    def triple(x):
        return {"y": x * weight}

    concrete = triple.get_concrete_function(tf.TensorSpec([None], tf.float32, name="x"))
    result = export(concrete, "triple", sample=[1.0, 2.0], models_root=str(tmp_path))
    np.testing.assert_allclose(run(result.path, {"x": np.array([2.0], np.float32)})["y"], [6.0])


def test_versions_auto_increment_and_explicit_versions_never_overwrite(tmp_path):
    module = Affine()
    root = str(tmp_path)
    assert [
        export(module, "m", signatures=["predict"], models_root=root).version for _ in range(2)
    ] == [1, 2]
    assert export(module, "m", signatures=["predict"], version=7, models_root=root).version == 7
    assert export(module, "m", signatures=["predict"], models_root=root).version == 8
    with pytest.raises(ExportError, match="version 7 already exists"):
        export(module, "m", signatures=["predict"], version=7, models_root=root)
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2", "7", "8"]


def test_parity_failure_is_loud_and_writes_nothing(tmp_path):
    class Noisy(tf.Module):
        """Random noise left on at serving time: the export cannot match the live model."""

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x + tf.random.uniform(tf.shape(x), 0.0, 1.0)}

    with pytest.raises(
        ParityError, match=r"output 'y'.*differs.*tolerance 0.0001.*nothing was written"
    ) as info:
        export(Noisy(), "noisy", sample=np.zeros((50, 3)), models_root=str(tmp_path))
    assert info.value.differences["y"] > 1e-4
    assert not (tmp_path / "noisy").exists()
    with pytest.raises(ParityError):  # without a sample, synthetic rows catch it too
        export(Noisy(), "noisy", models_root=str(tmp_path))
    assert not (tmp_path / "noisy").exists()
    # A generous tolerance lets the same model through, and reports the difference.
    result = export(
        Noisy(), "noisy", sample=np.zeros((50, 3)), tolerance=2.0, models_root=str(tmp_path)
    )
    assert 1e-4 < result.max_abs_diff <= 1.0


def test_without_a_sample_parity_runs_on_synthetic_rows_when_it_can(tmp_path):
    result = export(sequential(), "seq", models_root=str(tmp_path))
    assert result.parity_input == "2 synthetic rows" and result.max_abs_diff <= 1e-6
    assert result.warmup_records == 0 and not os.path.exists(warmup_path(result.path))

    class Text(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"length": tf.strings.length(text)}

    class PositiveIds(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="ids")])
        def serve(self, ids):
            with tf.control_dependencies([tf.debugging.assert_positive(ids)]):
                return {"ids": tf.identity(ids)}

    skipped = export(Text(), "text", models_root=str(tmp_path))
    assert skipped.parity is None and "unknown dimensions or strings" in repr(skipped)
    refused = export(PositiveIds(), "ids", models_root=str(tmp_path))
    assert refused.parity is None and "did not run on synthetic input" in repr(refused)
    assert refused.version == 1  # a model that refuses made-up input is still exported


@pytest.mark.parametrize(
    "thing, message",
    [
        ({"weights": [1, 2]}, "Cannot export a builtins.dict: expected a Keras model"),
        ("model", "Cannot export a builtins.str"),
        (tf.function(lambda x: x), "Cannot export a bare tf.function"),
        (tf.Module(), "has no tf.function methods"),
    ],
)
def test_objects_that_are_not_models_are_refused(tmp_path, thing, message):
    with pytest.raises(ExportError, match=message):
        export(thing, "m", models_root=str(tmp_path))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", ".hidden", "", "x" * 200, "sp ace"])
def test_names_with_path_characters_are_refused(tmp_path, name):
    with pytest.raises(ExportError, match="Invalid model name"):
        export(Affine(), name, signatures=["predict"], models_root=str(tmp_path / "root"))
    assert not (tmp_path / "root").exists() and not (tmp_path / "escape").exists()


def test_a_sample_that_does_not_fit_the_signature(tmp_path):
    with pytest.raises(ExportError, match=r"Sample does not fit.*\['a', 'b'\]"):
        export(functional(), "multi", sample={"a": np.ones((1, 2))}, models_root=str(tmp_path))
    assert not (tmp_path / "multi").exists()


def test_max_abs_diff_handles_shapes_nans_and_strings():
    assert max_abs_diff([1.0, np.nan], [1.5, np.nan]) == 0.5
    assert max_abs_diff([1.0], [1.0, 2.0]) == float("inf")
    assert max_abs_diff(np.array([b"a"], object), np.array([b"a"], object)) == 0.0
    assert max_abs_diff(np.array([b"a"], object), np.array([b"b"], object)) == float("inf")
