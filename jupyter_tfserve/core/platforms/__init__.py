"""Servable platforms: what turns a version folder into something servable, found by name.

A model picks its platform with ``ModelConfig.model_platform``, spelled as TF
Serving spells it (``tensorflow``, the default when empty). The built-in
platforms are ``tensorflow`` (SavedModel, TF1 fallback included) and
``tflite`` (LiteRT); further ones come from other packages through the
``jupyter_tfserve.platforms`` entry-point group, the way Jupyter finds server
extensions::

    [project.entry-points."jupyter_tfserve.platforms"]
    numpy = "my_package.platform:NumpyPlatform"

A plug-in is imported on the first load that names it, on a load thread: one
that fails to import or to load fails that version's load, with an error in
its status naming the plug-in, and never the server.
"""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points

from ..status import Code, ServingError, from_exception, invalid_argument
from .base import LoadOptions, Platform, Servable, SignatureNotFound, normalize, signature_def

__all__ = [
    "ENTRY_POINT_GROUP",
    "DEFAULT_PLATFORM",
    "LoadOptions",
    "Platform",
    "Servable",
    "SignatureNotFound",
    "load_version",
    "names",
    "normalize",
    "select",
    "signature_def",
    "validate_name",
]

ENTRY_POINT_GROUP = "jupyter_tfserve.platforms"
DEFAULT_PLATFORM = "tensorflow"
TFLITE_PLATFORM = "tflite"

# Built in, so they work from a source checkout too (entry points need an installed distribution).
_BUILTIN = {
    DEFAULT_PLATFORM: "jupyter_tfserve.core.platforms.tensorflow:TensorFlowPlatform",
    TFLITE_PLATFORM: "jupyter_tfserve.core.platforms.tflite:TfLitePlatform",
}

_instances: dict[str, Platform] = {}
_lock = threading.Lock()


def _entry_points() -> dict[str, EntryPoint]:
    """Every platform by name: the built-ins, then plug-ins (which cannot replace a built-in)."""
    found = {name: EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in _BUILTIN.items()}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry_point.name, entry_point)
    return found


def names() -> list[str]:
    """The platform names a model may select (plug-ins installed now included; nothing is imported)."""
    return sorted(_entry_points())


def validate_name(model_name: str, platform: str) -> None:
    """Refuse a config naming a platform nobody provides, before anything loads."""
    known = _entry_points()
    if (platform or DEFAULT_PLATFORM) not in known:
        raise invalid_argument(
            f"Model {model_name} requested unsupported platform {platform!r}; known platforms: {', '.join(sorted(known))}"
        )


def get(platform: str) -> Platform:
    """The platform instance of this name, its plug-in imported on first use."""
    platform = platform or DEFAULT_PLATFORM
    with _lock:
        instance = _instances.get(platform)
        if instance is not None:
            return instance
        entry_point = _entry_points().get(platform)
        if entry_point is None:
            raise ServingError(
                Code.NOT_FOUND, f"No platform plug-in named {platform!r} is installed"
            )
        try:
            factory = entry_point.load()
            instance = factory()
        except Exception as exc:
            raise _plugin_error(platform, entry_point, "failed to import", exc) from exc
        _instances[platform] = instance
        return instance


def select(model_platform: str, path: str, *, prefer_tflite: bool = False) -> str:
    """The platform that serves this version folder.

    ``--prefer_tflite_model``, as in TF Serving: a ``tensorflow`` version folder
    holding a ``model.tflite`` is served by ``tflite``; without one, the SavedModel
    is. Beyond TF Serving, a ``tensorflow`` folder holding a ``model.tflite`` and no
    SavedModel (where TF Serving fails the load) is served by ``tflite`` whatever
    the flag, so a model's optimized versions sit next to its SavedModel versions.
    """
    platform = model_platform or DEFAULT_PLATFORM
    if platform == DEFAULT_PLATFORM and get(TFLITE_PLATFORM).recognizes(path):
        if prefer_tflite or not get(DEFAULT_PLATFORM).recognizes(path):
            return TFLITE_PLATFORM
    return platform


def load_version(
    platform: str, name: str, version: int, path: str, options: LoadOptions
) -> Servable:
    """Load one version with the named platform; a plug-in's failure names the plug-in."""
    instance = get(platform)
    try:
        servable = instance.load(name, version, path, options)
    except Exception as exc:
        if platform in _BUILTIN:
            raise
        raise _plugin_error(
            platform, _entry_points()[platform], "failed to load", exc, path
        ) from exc
    if not isinstance(servable, Servable):
        raise ServingError(
            Code.INTERNAL,
            f"Platform plug-in {platform!r} returned {type(servable).__name__}, not a Servable, for {path}",
        )
    servable.platform = platform
    return servable


def _plugin_error(
    platform: str, entry_point: EntryPoint, what: str, exc: Exception, path: str = ""
) -> ServingError:
    """The status error of a plug-in's failure: names the plug-in and where it comes from, keeps the cause."""
    cause = from_exception(exc)
    detail = (
        cause.message if isinstance(exc, ServingError) else f"{type(exc).__name__}: {cause.message}"
    )
    where = f" {path}" if path else ""
    code = Code.FAILED_PRECONDITION if what == "failed to import" else cause.code
    return ServingError(
        code, f"Platform plug-in {platform!r} ({entry_point.value}) {what}{where}: {detail}"
    )
