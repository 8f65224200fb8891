"""Where a model's versions come from, chosen by its base path: the file system, or a plug-in.

A source answers one question at every poll: which versions of a model exist
now, each as a local folder a platform can load (TF Serving's "stream of
aspired versions"; the version policy then picks among them). A plain absolute
base path, or ``file://...``, is read by the file-system source
(:mod:`.source`). A base path ``scheme://...`` is read by the plug-in that the
``jupyter_tfserve.sources`` entry-point group names ``scheme``, found the way
platforms are::

    [project.entry-points."jupyter_tfserve.sources"]
    archive = "my_package.archives:ArchiveSource"

The entry point is a class (or factory) whose instances have
``list_versions(base_path) -> {version: local_folder}``; a source that fetches
from elsewhere materializes versions in a local folder of its choice. It runs
on the manager's poll thread, never on an event loop. A source that cannot be
imported, or fails, is an error on that model's status naming the plug-in; the
versions already served stay served.

Every folder a source returns is resolved and passed through ``admit``, the
same model-roots check the file-system source applies, so a plug-in cannot
widen what the host allows.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from importlib.metadata import entry_points

from . import source
from .status import Code, ServingError

ENTRY_POINT_GROUP = "jupyter_tfserve.sources"
FILE_SCHEME = "file"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

_instances: dict[str, object] = {}
_lock = threading.Lock()


def scheme_of(base_path: str) -> str:
    """``file`` for plain paths and ``file://``; the URI scheme otherwise (``s3://b/m`` -> ``s3``)."""
    match = _SCHEME.match(base_path)
    return match.group(1).lower() if match else FILE_SCHEME


def is_local(base_path: str) -> bool:
    return scheme_of(base_path) == FILE_SCHEME


def local_path(base_path: str) -> str:
    """The folder a ``file://`` or plain base path names."""
    return base_path[len("file://") :] if base_path.startswith("file://") else base_path


def names() -> list[str]:
    """The schemes a base path may use now: ``file`` and every installed source plug-in."""
    return sorted({FILE_SCHEME, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def plugin(scheme: str):
    """The source plug-in for ``scheme``, imported on first use; a clear error when there is none."""
    with _lock:
        instance = _instances.get(scheme)
        if instance is not None:
            return instance
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == scheme]
        if not found:
            raise ServingError(
                Code.UNIMPLEMENTED,
                f"No source plug-in reads {scheme}:// base paths (installed sources: {', '.join(names())}); "
                f"install a package with a '{scheme}' entry point in {ENTRY_POINT_GROUP}",
            )
        try:
            instance = found[0].load()()
        except Exception as exc:
            raise ServingError(
                Code.FAILED_PRECONDITION,
                f"Source plug-in {scheme!r} ({found[0].value}) failed to import: {type(exc).__name__}: {exc}",
            ) from exc
        _instances[scheme] = instance
        return instance


def list_versions(base_path: str, admit: Callable[[str], bool] | None = None) -> dict[int, str]:
    """Version -> local folder, from the source the base path names (see the module docstring).

    The file system raises ``OSError`` for a missing base path, as before; a
    plug-in's failure is a ``ServingError`` naming the plug-in.
    """
    scheme = scheme_of(base_path)
    if scheme == FILE_SCHEME:
        return source.list_versions(local_path(base_path), admit)
    reader = plugin(scheme)
    try:
        found = {int(v): os.path.realpath(p) for v, p in reader.list_versions(base_path).items()}
    except ServingError:
        raise
    except Exception as exc:
        raise ServingError(
            Code.UNAVAILABLE,
            f"Source plug-in {scheme!r} failed to list {base_path}: {type(exc).__name__}: {exc}",
        ) from exc
    return {v: p for v, p in found.items() if admit is None or admit(p)}
