"""``deploy()``: from what is served to a directory that ``kubectl apply -k`` accepts.

It plans everything in memory first (options, config, versions, manifests) so
that every bad input is reported before the output directory is touched, then
writes the files and returns a :class:`DeployReport`. Nothing talks to a cluster
or to a running server.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from . import k8s, kserve
from .configfiles import cluster_config, local_config, to_text
from .errors import OutputDirError, StorageError
from .options import DeployOptions, check_storage_uri, make_options
from .report import DeployReport, ModelEntry
from .repository import (
    ConfigLike,
    load_batching,
    load_model_server_config,
    load_monitoring,
    served_models,
)

LOCAL_CONFIG = "models.local.config"


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the config files in the ConfigMap) as readable ``|`` blocks,
    and repeats shared dicts (the probes' ``httpGet``) instead of YAML anchors."""

    def ignore_aliases(self, data):
        return True


def _str(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(obj) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputDirError(f"output {str(out_dir)!r} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise OutputDirError(
            f"output directory {str(out_dir)!r} already holds files; choose an empty directory "
            "or pass force=True (--force) to write over them"
        )


def deploy(
    config: ConfigLike,
    *,
    out_dir: str | os.PathLike,
    models: Iterable[str] | None = None,
    batching=None,
    monitoring=None,
    base_paths: Mapping[str, str | os.PathLike] | None = None,
    served_versions: Mapping[str, Iterable[int]] | None = None,
    sync_target: str | None = None,
    force: bool = False,
    options: DeployOptions | None = None,
    **settings,
) -> DeployReport:
    """Writes manifests that run the served models on Kubernetes; applies nothing.

    ``config`` is what the server reads (a ``ModelServerConfig``, a models.config
    path, or ``{name: base_path}``); ``models`` picks names from it. How the
    cluster runs them is ``options`` (a :class:`DeployOptions`), or the keyword
    ``settings`` of :func:`make_options` it is made from: ``target`` (``k8s`` or
    ``kserve``), where the cluster reads the models (``storage_uri``: ``s3://``,
    ``gs://``, ``hdfs://``, laid out as ``<uri>/<model>/<version>``, or the
    PersistentVolumeClaim ``pvc``, filled by the ``tfserve sync`` command in the
    report), replicas, resources (limits default to the requests;
    ``intra_op_parallelism="auto"`` matches TF's thread pool to the CPU limit),
    ``client_label`` (``key=value``: the pods the NetworkPolicy lets reach the ports).
    ``batching`` and ``monitoring`` are messages or text-format file paths.
    ``served_versions`` ({name: [versions]}) pins what a live server reports.
    """
    if options is not None and settings:
        raise TypeError(f"give options or its settings, not both ({', '.join(sorted(settings))})")
    options = options or make_options(**settings)
    full_config = load_model_server_config(config)
    served = served_models(
        full_config, models, base_paths=base_paths, served_versions=served_versions
    )
    local = [m for m in served if m.versions is not None]
    if local and not (options.storage_uri or options.pvc):
        raise StorageError(
            f"the cluster cannot read the local path {local[0].source}: pass storage_uri="
            "'s3://...|gs://...|hdfs://...' or pvc='<claim name>'"
        )
    for model in served:
        if model.versions is None:  # a URI in the config: the cluster must read it directly
            check_storage_uri(model.source)
    batching_params = load_batching(batching)
    monitoring_config = load_monitoring(monitoring)
    out = Path(out_dir)
    _check_out_dir(out, force)

    texts: dict[str, str] = {}  # file name -> content, in writing order
    notes: list[str] = []
    config_files: dict[str, str] = {}
    if batching_params is not None:
        config_files[k8s.BATCHING_FILE] = to_text(
            batching_params, "BatchingParameters for --batching_parameters_file"
        )
    if options.target == "k8s":
        models_config = cluster_config(served, options)
        config_files = {
            k8s.MODELS_CONFIG: to_text(
                models_config, "ModelServerConfig for --model_config_file (polled every 60 s)"
            ),
            k8s.MONITORING_FILE: to_text(
                monitoring_config, "MonitoringConfig for --monitoring_config_file"
            ),
            **config_files,
        }
        objects = k8s.manifests(
            options,
            models_config=models_config,
            config_files=config_files,
            batching=batching_params,
            monitoring=monitoring_config,
        )
        notes.append(
            "gRPC clients hold one connection, so the Service balances connections, not "
            "requests: balance on the client (headless Service) or through a mesh for gRPC load"
        )
    else:
        objects, notes = kserve.manifests(
            served, options, config_files=config_files, batching=batching_params
        )
    texts.update({file: to_yaml(obj) for file, obj in objects.items()})

    sync_command = None
    if local:
        texts[LOCAL_CONFIG] = to_text(
            local_config(local),
            "Local model repository for `tfserve sync` (not applied to the cluster)",
        )
        destination = sync_target or ("PVC_MOUNT_DIR" if options.pvc else "STAGING_DIR")
        local_path = shlex.quote(str(out / LOCAL_CONFIG))
        sync_command = f"tfserve sync --model_config_file {local_path} {shlex.quote(destination)}"
        if options.pvc:
            notes.append(
                f"run the sync command where claim {options.pvc!r} is mounted "
                f"({destination}); the pods mount it read-only"
            )
        else:
            notes.append(
                f"the sync command fills {destination}; upload {destination}/<model> to "
                f"{options.storage_uri}/<model>, and give the pods credentials to read it"
            )

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file, text in texts.items():
        path = out / file
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return DeployReport(
        target=options.target,
        out_dir=out,
        files=written,
        models=[
            ModelEntry(
                name=m.name,
                versions=tuple(sorted(m.versions)) if m.versions is not None else None,
                labels=dict(m.labels),
                policy=m.policy,
                location=options.model_location(m.name, m.source),
            )
            for m in served
        ],
        image=options.image,
        min_replicas=options.min_replicas,
        max_replicas=options.max_replicas,
        apply_command=f"kubectl apply -k {shlex.quote(str(out))}",
        sync_command=sync_command,
        notes=notes,
    )
