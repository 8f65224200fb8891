"""Benchmark models: the MLP 784-512-512-10 and a small CNN, exported as real SavedModels.

Plain ``tf.Module``s with the same math a Keras model would run, so exporting
costs a second and the served signature is exactly what we time raw.
"""

from __future__ import annotations

import os

import numpy as np


def mlp(base_path: str, version: int = 1, seed: int = 0, hidden: int = 512) -> str:
    """784-H-H-10 ReLU MLP (H=512) with a softmax output ``probabilities``; input ``x`` float32 [-1, 784].

    ``hidden=2048`` is the compute-heavy variant, where batching's gain is the model's.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    sizes = [784, hidden, hidden, 10]

    class MLP(tf.Module):
        def __init__(self):
            super().__init__()
            self.weights = [
                tf.Variable(rng.normal(0, (2 / a) ** 0.5, (a, b)).astype(np.float32))
                for a, b in zip(sizes, sizes[1:], strict=False)
            ]
            self.biases = [tf.Variable(np.zeros(b, np.float32)) for b in sizes[1:]]

        @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="x")])
        def serve(self, x):
            h = x
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                h = tf.matmul(h, w) + b
                if i < len(self.weights) - 1:
                    h = tf.nn.relu(h)
            return {"probabilities": tf.nn.softmax(h)}

    module = MLP()
    path = os.path.join(base_path, str(version))
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


def small_cnn(base_path: str, version: int = 1, seed: int = 0) -> str:
    """Two 3x3 conv layers (16, 32 channels) on 28x28x1 inputs, then dense to 10; input ``x`` [-1, 28, 28, 1]."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    class CNN(tf.Module):
        def __init__(self):
            super().__init__()
            self.k1 = tf.Variable(rng.normal(0, 0.3, (3, 3, 1, 16)).astype(np.float32))
            self.k2 = tf.Variable(rng.normal(0, 0.1, (3, 3, 16, 32)).astype(np.float32))
            self.w = tf.Variable(rng.normal(0, 0.01, (7 * 7 * 32, 10)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="x")])
        def serve(self, x):
            h = tf.nn.relu(tf.nn.conv2d(x, self.k1, 1, "SAME"))
            h = tf.nn.max_pool2d(h, 2, 2, "VALID")
            h = tf.nn.relu(tf.nn.conv2d(h, self.k2, 1, "SAME"))
            h = tf.nn.max_pool2d(h, 2, 2, "VALID")
            return {"logits": tf.matmul(tf.reshape(h, [-1, 7 * 7 * 32]), self.w)}

    module = CNN()
    path = os.path.join(base_path, str(version))
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path
