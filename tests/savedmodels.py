"""Real SavedModels the tests make for themselves: TF2 and TF1 exports, several inputs/outputs, strings, state.

Each writer takes a base path and a version and returns the version directory,
so tests can lay out model repositories (several versions, swaps) as users do.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


def _version_dir(base_path, version: int) -> str:
    path = os.path.join(str(base_path), str(version))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def half_plus_two(base_path, version: int = 1, slope: float = 0.5, offset: float = 2.0) -> str:
    """TF2 export of y = slope * x + offset; input x: float32 [-1, 1], output y."""

    class HalfPlusTwo(tf.Module):
        def __init__(self):
            super().__init__()
            self.a = tf.Variable(slope)
            self.b = tf.Variable(offset)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            return {"y": self.a * x + self.b}

    module = HalfPlusTwo()
    path = _version_dir(base_path, version)
    tf.saved_model.save(module, path, signatures={"serving_default": module.predict})
    return path


def half_plus_two_tf1(base_path, version: int = 1, slope: float = 0.5) -> str:
    """TF1 Builder export with predict, classify and regress signatures over tf.Example input."""
    path = _version_dir(base_path, version)
    graph = tf.Graph()
    with graph.as_default():
        # Reference variables (float_ref), as TF 1.x made them: tf.saved_model.load refuses these.
        a = tf.compat.v1.Variable(slope, name="a", use_resource=False)
        b = tf.compat.v1.Variable(2.0, name="b", use_resource=False)
        x = tf.compat.v1.placeholder(tf.float32, shape=[None], name="x")
        y = tf.add(a * x, b, name="y")
        serialized = tf.compat.v1.placeholder(tf.string, shape=[None], name="tf_example")
        features = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        x_from_example = tf.reshape(features["x"], [-1])
        y_from_example = tf.identity(a * x_from_example + b, name="y_from_example")
        scores = tf.reshape(y_from_example, [-1, 1], name="scores")
        build = tf.compat.v1.saved_model.signature_def_utils
        predict = build.predict_signature_def({"x": x}, {"y": y})
        regress = build.regression_signature_def(serialized, y_from_example)
        classify = build.classification_signature_def(serialized, None, scores)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(
                session,
                [tf.compat.v1.saved_model.SERVING],
                signature_def_map={
                    "serving_default": predict,
                    "regress_x_to_y": regress,
                    "classify_x_to_y": classify,
                },
                strip_default_attrs=True,
            )
            builder.save()
    return path


def half_plus_two_tf2_examples(base_path, version: int = 1) -> str:
    """TF2 export like TF Serving's ``saved_model_half_plus_two_tf2_cpu``: y = 0.5x + 2.

    ``serving_default`` takes x float32 [-1, 1]; ``classify_x_to_y`` (output ``scores``) and
    ``regress_x_to_y`` (output ``outputs``) take serialized tf.Examples with a float ``x``.
    ``tf.saved_model.save`` names all three methods ``tensorflow/serving/predict``.
    """

    class HalfPlusTwo(tf.Module):
        def __init__(self):
            super().__init__()
            self.a = tf.Variable(0.5)
            self.b = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            return {"y": self.a * x + self.b}

        def _from_examples(self, serialized):
            x = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
            return self.a * x + self.b

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            return {"scores": self._from_examples(inputs)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs):
            return {"outputs": self._from_examples(inputs)}

    module = HalfPlusTwo()
    path = _version_dir(base_path, version)
    signatures = {
        "serving_default": module.predict,
        "classify_x_to_y": module.classify,
        "regress_x_to_y": module.regress,
    }
    tf.saved_model.save(module, path, signatures=signatures)
    return path


def half_plus_three_tf1(base_path, version: int = 1) -> str:
    """TF1 Builder export of y = 0.5x + 3 with x a [?, 1] placeholder, like TF Serving's
    ``saved_model_half_plus_three``; reference variables make ``tf.saved_model.load`` refuse it."""
    path = _version_dir(base_path, version)
    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.Variable(0.5, name="a", use_resource=False)
        b = tf.compat.v1.Variable(3.0, name="b", use_resource=False)
        x = tf.compat.v1.placeholder(tf.float32, shape=[None, 1], name="x")
        y = tf.add(a * x, b, name="y")
        predict = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(
            {"x": x}, {"y": y}
        )
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(
                session,
                [tf.compat.v1.saved_model.SERVING],
                signature_def_map={"serving_default": predict},
            )
            builder.save()
    return path


def multi_io(base_path, version: int = 1) -> str:
    """Two inputs (a: float32 [-1, 2], b: int64 [-1]) and two outputs (sum: float32 [-1], doubled_b: int64 [-1])."""

    class MultiIO(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="a"),
                tf.TensorSpec([None], tf.int64, name="b"),
            ]
        )
        def predict(self, a, b):
            return {"sum": tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float32), "doubled_b": b * 2}

    module = MultiIO()
    path = _version_dir(base_path, version)
    tf.saved_model.save(module, path, signatures={"serving_default": module.predict})
    return path


def strings(base_path, version: int = 1) -> str:
    """String in, strings out: ``upper`` (text) and ``raw_bytes`` (the input bytes, returned as b64)."""

    class Strings(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def predict(self, text):
            return {"upper": tf.strings.upper(text), "raw_bytes": tf.identity(text)}

    module = Strings()
    path = _version_dir(base_path, version)
    tf.saved_model.save(module, path, signatures={"serving_default": module.predict})
    return path


def counter(base_path, version: int = 1) -> str:
    """Stateful: ``incr_counter`` adds ``delta`` to a variable and returns the new total."""

    class Counter(tf.Module):
        def __init__(self):
            super().__init__()
            self.total = tf.Variable(0.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="delta")])
        def incr_counter(self, delta):
            self.total.assign_add(tf.reduce_sum(delta))
            return {"output": tf.reshape(self.total.read_value(), [1])}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="unused")])
        def get_counter(self, unused):
            return {"output": tf.reshape(self.total.read_value(), [1])}

    module = Counter()
    path = _version_dir(base_path, version)
    tf.saved_model.save(
        module,
        path,
        signatures={
            "serving_default": module.get_counter,
            "incr_counter": module.incr_counter,
            "get_counter": module.get_counter,
        },
    )
    return path


def sleeper(base_path, version: int = 1, milliseconds: float = 20.0) -> str:
    """y = 2x after sleeping ``milliseconds`` once per run, whatever the batch size; x float32 [-1, 1].

    The sleep is a graph op (``SleepDataset``), so it survives export and the
    loaded model sleeps without Python: a model with a known run time, for
    measuring the measurements. ``get_single_element`` reads twice (the element,
    then the end of the dataset), so each read sleeps half the time. Concurrent
    calls sleep side by side.
    """

    class Sleeper(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def predict(self, x):
            dataset = tf.data.Dataset.from_tensors(x)
            slept = tf.raw_ops.SleepDataset(
                input_dataset=dataset._variant_tensor,
                sleep_microseconds=tf.constant(int(milliseconds * 1000 / 2), tf.int64),
                output_types=[tf.float32],
                output_shapes=[tf.TensorShape([None, 1])],
            )
            y = tf.data.experimental.from_variant(slept, dataset.element_spec).get_single_element()
            return {"y": 2.0 * y}

    module = Sleeper()
    path = _version_dir(base_path, version)
    tf.saved_model.save(module, path, signatures={"serving_default": module.predict})
    return path


def two_heads(base_path, version: int = 1, swap: bool = False) -> str:
    """Two outputs of x float32 [-1, 2]: ``scores`` = x @ W (W swaps its columns when ``swap``), ``shifted`` = x + 1.

    Versions written with and without ``swap`` differ in ``scores`` only, and
    their argmax disagrees exactly on the rows where x0 != x1.
    """
    weights = np.array([[0.0, 1.0], [1.0, 0.0]] if swap else [[1.0, 0.0], [0.0, 1.0]], np.float32)

    class TwoHeads(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def predict(self, x):
            return {"scores": tf.matmul(x, weights), "shifted": x + 1.0}

    module = TwoHeads()
    path = _version_dir(base_path, version)
    tf.saved_model.save(module, path, signatures={"serving_default": module.predict})
    return path
