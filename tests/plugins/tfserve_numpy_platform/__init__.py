"""A third-party platform plug-in, as a user would write one: y = x @ w + b, weights from ``affine.npz``.

Installed for the tests by putting ``tests/plugins`` on the path: its
``tfserve_numpy_platform-1.0.dist-info/entry_points.txt`` registers it in the
``jupyter_tfserve.platforms`` group as ``numpy``, next to ``broken``, whose
module does not exist.
"""

import os

import numpy as np

from jupyter_tfserve.core.platforms import Platform, Servable, signature_def


class NumpyPlatform(Platform):
    def recognizes(self, path):
        return os.path.isfile(os.path.join(path, "affine.npz"))

    def load(self, name, version, path, options):
        with np.load(os.path.join(path, "affine.npz")) as weights:
            w, b = weights["w"].astype(np.float32), weights["b"].astype(np.float32)
        signature = signature_def(
            {"x": ("float32", [-1, w.shape[0]])}, {"y": ("float32", [-1, w.shape[1]])}
        )
        return Servable(name, version, path, {"serving_default": signature}, AffineRunner(w, b))


class AffineRunner:
    kind = "numpy-affine"

    def __init__(self, w, b):
        self.w, self.b = w, b

    def run(self, signature, inputs, aliases):
        return {"y": inputs["x"] @ self.w + self.b}

    def close(self):
        self.w = self.b = None
