"""Real TensorFlow Lite models the tests convert themselves.

``half_plus_two_tflite`` is laid out as TF Serving's testdata
``saved_model_half_plus_two_tflite/00000123/model.tflite``: a model without
signatures, input ``x`` and output ``y`` of shape [1] (converted from a TF1
session, as TF Serving's generator does). ``convert`` turns one of the tests'
SavedModels into a ``model.tflite`` with its signatures and free batch dimension.
"""

from __future__ import annotations

import os

import tensorflow as tf


def half_plus_two_tflite(base_path, version: str = "00000123") -> str:
    """y = 0.5 * x + 2 on x of shape [1], no SignatureDef: TF Serving serves it as serving_default."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1], name="x")
        y = tf.identity(x * 0.5 + 2.0, name="y")
        with tf.compat.v1.Session() as session:
            blob = tf.compat.v1.lite.TFLiteConverter.from_session(session, [x], [y]).convert()
    return _write(base_path, version, blob)


def convert(saved_model_dir: str, base_path, version) -> str:
    """The SavedModel at ``saved_model_dir`` as ``<base_path>/<version>/model.tflite`` (float32, signatures kept)."""
    return _write(
        base_path, str(version), tf.lite.TFLiteConverter.from_saved_model(saved_model_dir).convert()
    )


def _write(base_path, version: str, blob: bytes) -> str:
    path = os.path.join(str(base_path), version)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "model.tflite"), "wb") as f:
        f.write(blob)
    return path
