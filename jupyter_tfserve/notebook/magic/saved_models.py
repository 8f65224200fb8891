"""SavedModels on disk, read for ``%tfserve inspect`` without loading them into a server."""

from __future__ import annotations

import os

from .errors import TFServeError


def saved_model_dir(path: str) -> str:
    """The SavedModel at ``path``, or the newest version directory under it."""
    from ...core import source

    if os.path.exists(os.path.join(path, "saved_model.pb")) or os.path.exists(
        os.path.join(path, "saved_model.pbtxt")
    ):
        return path
    versions = source.list_versions(path)
    if not versions:
        raise TFServeError(f"{path} holds no SavedModel and no version directories")
    return versions[max(versions)]


def local_signatures(directory: str):
    """The serving signatures of the SavedModel in ``directory`` (``__saved_model_init_op`` and friends left out)."""
    from ...core.platforms.tensorflow import read_meta_graph
    from ...core.signatures import SignatureInfo

    meta_graph = read_meta_graph(directory, ["serve"])
    return {
        k: SignatureInfo.from_proto(k, s)
        for k, s in sorted(meta_graph.signature_def.items())
        if not k.startswith("__")
    }
