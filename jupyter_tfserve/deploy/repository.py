"""What is being served: the models.config and the version directories it selects.

Deploy and sync both start here. They take the same inputs as the server (a
``ModelServerConfig``, a models.config path, or a plain ``{name: base_path}``
mapping) and need the same answer: which version directories the version policy
selects, so that the cluster serves exactly what the notebook machine serves.
This reads the file system only; no server needs to be running.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tensorflow_serving.config import model_server_config_pb2

from ..core import config as config_lib
from ..core import source as source_lib
from ..core.extra_protos import BatchingParameters, MonitoringConfig
from ..core.names import name_problem
from ..core.status import ServingError
from .errors import ConfigError, DeployError, UnknownModelError

ModelServerConfig = model_server_config_pb2.ModelServerConfig

ConfigLike = ModelServerConfig | str | os.PathLike | Mapping[str, "str | os.PathLike"]


def is_remote(path: str) -> bool:
    """True for a URI (``s3://...``): its versions cannot be listed from here."""
    return "://" in path


def load_model_server_config(config: ConfigLike) -> ModelServerConfig:
    """Accepts what users have at hand and returns a private ``ModelServerConfig`` copy.

    A path is parsed as TF Serving's text format, so a file that the official
    server would refuse is refused here too, with the parser's line and column.
    A ``{name: base_path}`` mapping stands for a config of those models with the
    default policy, like ``--model_name``/``--model_base_path`` does.
    """
    if isinstance(config, ModelServerConfig):
        copy = ModelServerConfig()
        copy.CopyFrom(config)
        result = copy
    elif isinstance(config, (str, os.PathLike)):
        result = parse_text_file(config, ModelServerConfig, "models.config")
    elif isinstance(config, Mapping):
        result = ModelServerConfig()
        for name, base_path in config.items():
            result.model_config_list.config.add(
                name=str(name),
                base_path=str(Path(base_path).absolute()),
                model_platform="tensorflow",
            )
    else:
        raise ConfigError(
            "config must be a ModelServerConfig, a path to a models.config file or a "
            f"{{name: base_path}} mapping, not {type(config).__name__}"
        )
    _check_config(result)
    return result


def parse_text_file(path, message_class, what: str):
    """Parses one of TF Serving's text-format files with the server's own reader, as a deploy error."""
    try:
        return config_lib.parse_text_file(path, message_class)
    except ServingError as exc:
        raise ConfigError(f"{what}: {exc.message}") from exc


def load_batching(batching) -> BatchingParameters | None:
    """``None``, a ``BatchingParameters`` message, or a batching_parameters.txt path."""
    if batching is None or isinstance(batching, BatchingParameters):
        return batching
    if isinstance(batching, (str, os.PathLike)):
        return parse_text_file(batching, BatchingParameters, "batching parameters")
    raise ConfigError(
        f"batching must be BatchingParameters or a file path, not {type(batching).__name__}"
    )


def load_monitoring(monitoring) -> MonitoringConfig:
    """The monitoring config to deploy; Prometheus on TF Serving's default path when unset.

    A cluster without metrics cannot drive anything but CPU autoscaling or show
    latency, so deploying turns Prometheus on unless the user's file says otherwise.
    """
    if monitoring is None:
        result = MonitoringConfig()
        result.prometheus_config.enable = True
        result.prometheus_config.path = DEFAULT_METRICS_PATH
        return result
    if isinstance(monitoring, MonitoringConfig):
        return monitoring
    if isinstance(monitoring, (str, os.PathLike)):
        return parse_text_file(monitoring, MonitoringConfig, "monitoring config")
    raise ConfigError(
        f"monitoring must be MonitoringConfig or a file path, not {type(monitoring).__name__}"
    )


DEFAULT_METRICS_PATH = "/monitoring/prometheus/metrics"


def _check_config(config: ModelServerConfig) -> None:
    """Refuses what the server refuses, and names that cannot become directories."""
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError("only a model_config_list can be deployed (custom_model_config cannot)")
    for model in config.model_config_list.config:
        problem = name_problem(model.name)  # the name becomes <target>/<name> on disk
        if problem:
            raise ConfigError(problem)
    try:
        # Relative base paths are checked per model in served_models, where base_paths may override them.
        relaxed = ModelServerConfig()
        relaxed.CopyFrom(config)
        for model in relaxed.model_config_list.config:
            if not is_remote(model.base_path):
                model.base_path = os.path.abspath(model.base_path or ".")
        config_lib.validate_model_server_config(relaxed)
    except ServingError as exc:
        raise ConfigError(exc.message) from exc


@dataclass(frozen=True)
class ServedModel:
    """One model as served: its config entry and the local version directories it selects.

    ``versions`` maps each served version number to its directory (name kept as
    on disk, leading zeros included). It is ``None`` when the base path is a URI,
    which deploy passes through unchanged and sync cannot copy.
    """

    name: str
    config: model_server_config_pb2.ModelConfig
    source: str
    versions: dict[int, Path] | None
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def policy(self) -> str:
        """The version policy in words, for reports."""
        return describe_policy(self.config)


def describe_policy(model: model_server_config_pb2.ModelConfig) -> str:
    return source_lib.describe_policy(model.model_version_policy)


def list_versions(base_path: Path) -> dict[int, Path]:
    """Version directories under ``base_path``, as the server's file-system source sees them."""
    try:
        return {v: Path(p) for v, p in source_lib.list_versions(str(base_path)).items()}
    except OSError as exc:
        raise DeployError(
            f"cannot list base_path {str(base_path)!r}: {exc.strerror or exc}"
        ) from exc


def select_versions(
    model: model_server_config_pb2.ModelConfig, available: Iterable[int]
) -> list[int]:
    """The version policy applied exactly as the server applies it."""
    chosen = source_lib.aspired_versions(dict.fromkeys(available, ""), model.model_version_policy)
    return sorted(chosen)


def served_models(
    config: ModelServerConfig,
    names: Iterable[str] | None = None,
    *,
    base_paths: Mapping[str, str | os.PathLike] | None = None,
    served_versions: Mapping[str, Iterable[int]] | None = None,
) -> list[ServedModel]:
    """The selected models, in config order, with the versions they serve.

    ``names`` picks a subset (unknown names are an error that lists the known
    ones). ``base_paths`` points at local copies when the config's paths are not
    this machine's. ``served_versions`` pins the versions a live server reports,
    overriding the policy, so a deploy made during a swap copies what is served.
    A label must point at a served version: the official server refuses the
    label otherwise.
    """
    by_name = {model.name: model for model in config.model_config_list.config}
    if names:
        names = list(dict.fromkeys(names))
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise UnknownModelError(
                f"unknown model name(s) {', '.join(map(repr, unknown))}; "
                f"the config lists {', '.join(map(repr, by_name)) or 'no models'}"
            )
        chosen = [model for name, model in by_name.items() if name in names]
    else:
        chosen = list(by_name.values())
    if not chosen:
        raise ConfigError("the config lists no models to deploy")
    for mapping, what in ((base_paths, "base_paths"), (served_versions, "served_versions")):
        stray = set(mapping or ()) - set(by_name)
        if stray:
            raise UnknownModelError(f"{what} names unknown model(s) {sorted(stray)}")

    result = []
    for model in chosen:
        source = str((base_paths or {}).get(model.name, model.base_path))
        labels = dict(model.version_labels)
        if is_remote(source):
            result.append(ServedModel(model.name, model, source, None, labels))
            continue
        if model.name not in (base_paths or {}) and not os.path.isabs(source):
            raise ConfigError(
                f"Expected model {model.name} to have an absolute path or URI; "
                f"got base_path()={source}"
            )
        available = list_versions(Path(source))
        if served_versions and model.name in served_versions:
            wanted = sorted({int(v) for v in served_versions[model.name]})
            missing = [v for v in wanted if v not in available]
            if missing:
                raise DeployError(
                    f"model {model.name}: served version(s) {missing} have no directory under {source}"
                )
        else:
            wanted = select_versions(model, available)
        if not wanted:
            raise DeployError(
                f"model {model.name}: no version directory under {source} matches its policy "
                f"({describe_policy(model)}); found {sorted(available) or 'none'}"
            )
        for label, version in labels.items():
            if version not in wanted:
                raise ConfigError(
                    f"model {model.name}: label {label!r} points at version {version}, "
                    f"which is not served (served: {wanted})"
                )
        result.append(
            ServedModel(model.name, model, source, {v: available[v] for v in wanted}, labels)
        )
    return result
