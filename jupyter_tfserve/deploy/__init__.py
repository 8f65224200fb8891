"""Run the served model repository on Kubernetes with the official TensorFlow Serving.

Users who outgrow the notebook machine keep their clients, their models.config
and their tuned batching_parameters.txt: :func:`deploy` writes the manifests
(target ``k8s``: ConfigMap, Deployment, Service, HPA, PodDisruptionBudget and a
kustomization; target ``kserve``: InferenceServices) and :func:`sync` copies the
exact version directories being served to where the cluster reads them. Both
work from config files and directories alone, without a running server, and
check all input before writing anything.
"""

# Loaded on first use: the magic and the CLI parse deploy flags (``.flags``) without the
# manifest writers and the TensorFlow Serving protos they import.
_HOMES = {
    "deploy": ".generate",
    "DeployReport": ".report",
    "ModelEntry": ".report",
    "SyncReport": ".syncing",
    "VersionSync": ".syncing",
    "sync": ".syncing",
    "verify": ".syncing",
}

__all__ = [
    "ConfigError",
    "DeployError",
    "DeployReport",
    "ModelEntry",
    "OutputDirError",
    "ReplicaError",
    "ResourceError",
    "StorageError",
    "SyncReport",
    "UnknownModelError",
    "VersionConflictError",
    "VersionSync",
    "deploy",
    "sync",
    "verify",
]


def __getattr__(name):
    if name in __all__:
        import importlib

        return getattr(importlib.import_module(_HOMES.get(name, ".errors"), __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
