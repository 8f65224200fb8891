"""What the server reports about its models beyond TF Serving's status: one model's full view, readiness.

The management API (and through it the panel, the magics and probes) shows
these as JSON; they are built here from the manager and the request logger so
the protocol only serializes them. Values are plain dicts, lists and strings.
"""

from __future__ import annotations

from .manager import ModelManager, State
from .status import ServingError
from .tensors import datatype_name


def describe_model(manager: ModelManager, request_log, name: str) -> dict:
    """A model's config, labels, request log and versions (with signatures where loaded)."""
    from google.protobuf import json_format

    config = manager.model_config(name)
    if config.model_version_policy.WhichOneof("policy_choice") is None:
        policy = {"latest": {"num_versions": 1}}
    else:
        policy = json_format.MessageToDict(
            config.model_version_policy,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
    try:
        statuses = manager.version_status(name)
    except ServingError:
        statuses = []
    versions = []
    for status in statuses:
        entry = {
            "version": status.version,
            "state": status.state.value,
            "error_code": status.error.code.name if status.error else "OK",
            "error_message": status.error.message if status.error else "",
            "path": status.path,
        }
        if status.state == State.AVAILABLE:
            entry.update(_describe_servable(manager, name, status.version))
        versions.append(entry)
    return {
        "name": name,
        "base_path": config.base_path,
        "platform": config.model_platform or "tensorflow",
        "policy": policy,
        "labels": manager.labels(name),
        "source_error": manager.source_error(name),
        "logging": request_log.status(name),
        "versions": versions,
    }


def describe_models(manager: ModelManager, request_log) -> list[dict]:
    """Every served model, described; one removed while listing is left out."""
    models = []
    for name in manager.model_names():
        try:
            models.append(describe_model(manager, request_log, name))
        except ServingError:  # removed between listing and describing
            continue
    return models


def _describe_servable(manager: ModelManager, name: str, version: int) -> dict:
    try:
        handle = manager.acquire(name, version)
    except ServingError:  # unloaded since the status was read
        return {}
    with handle:
        servable = handle.servable
        return {
            "platform": servable.platform,
            "loader": servable.loader,
            "signatures": {
                key: describe_signature(sig) for key, sig in servable.signatures.items()
            },
        }


def describe_signature(signature) -> dict:
    def tensors_of(specs) -> dict:
        return {
            alias: {
                "dtype": datatype_name(spec.dtype),
                "shape": list(spec.shape) if spec.shape is not None else None,
            }
            for alias, spec in specs.items()
        }

    return {
        "method_name": signature.method_name,
        "inputs": tensors_of(signature.inputs),
        "outputs": tensors_of(signature.outputs),
    }


def waiting_models(manager: ModelManager) -> list[str]:
    """The models with no AVAILABLE version yet (what a readiness probe waits for)."""
    return [name for name in manager.model_names() if not _has_available(manager, name)]


def _has_available(manager: ModelManager, name: str) -> bool:
    try:
        return any(s.state == State.AVAILABLE for s in manager.version_status(name))
    except ServingError:
        return False
