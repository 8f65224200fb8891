"""TF Serving's config files, read with the official protos and validated with TF Serving's rules.

Users bring their ``models.config``, ``batching_parameters.txt`` and
``monitoring.config`` from ``tensorflow_model_server``; parsing them with
``google.protobuf.text_format`` into the same messages means a file that works
there works here, and the errors name the same problems.
"""

from __future__ import annotations

import os
from pathlib import Path

from google.protobuf import text_format

from . import platforms, version_sources
from .extra_protos import BatchingParameters, MonitoringConfig, SSLConfig
from .native_logs import filtered_stderr
from .status import Code, ServingError, invalid_argument

with filtered_stderr():  # a TF Serving proto imports TensorFlow
    from tensorflow_serving.config import model_server_config_pb2

from .request_log import validate_logging_config  # noqa: E402 - after TensorFlow's quiet import

ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelConfig = model_server_config_pb2.ModelConfig

__all__ = [
    "BatchingParameters",
    "ModelConfig",
    "ModelServerConfig",
    "MonitoringConfig",
    "SSLConfig",
    "parse_text_file",
    "load_model_server_config",
    "single_model_config",
    "validate_model_server_config",
]


def parse_text_file(path: str | os.PathLike, message_cls):
    """Parse a text-format proto file; errors name the file and the message type, like TF Serving's log."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ServingError(
            Code.NOT_FOUND, f"Could not read config file {path}: {exc.strerror or exc}"
        ) from exc
    try:
        return text_format.Parse(text, message_cls())
    except text_format.ParseError as exc:
        full_name = message_cls.DESCRIPTOR.full_name
        # The message type's full name is in the error, as in TF Serving's log; people grep for it.
        raise invalid_argument(f"Error parsing text-format {full_name}: {exc} (in {path})") from exc


def load_model_server_config(path: str | os.PathLike) -> ModelServerConfig:
    config = parse_text_file(path, ModelServerConfig)
    validate_model_server_config(config)
    return config


def single_model_config(
    name: str, base_path: str, platform: str = "tensorflow"
) -> ModelServerConfig:
    """The config ``--model_name``/``--model_base_path`` stand for."""
    config = ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = platform
    validate_model_server_config(config)
    return config


def validate_model_server_config(config: ModelServerConfig) -> None:
    """Reject what TF Serving rejects, with its wording, before anything is (un)loaded."""
    kind = config.WhichOneof("config")
    if kind == "custom_model_config":
        raise ServingError(
            Code.UNIMPLEMENTED, "custom_model_config is not supported; use model_config_list."
        )
    seen: set[str] = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise invalid_argument("Model name must not be empty in model_config_list.")
        if model.name in seen:
            raise invalid_argument(
                f"Illegal to list model {model.name} multiple times in config list"
            )
        seen.add(model.name)
        base_path = model.base_path
        if version_sources.is_local(base_path) and not os.path.isabs(
            version_sources.local_path(base_path)
        ):
            raise invalid_argument(
                f"Expected model {model.name} to have an absolute path or URI; got base_path()={model.base_path}"
            )
        platforms.validate_name(model.name, model.model_platform)
        policy = model.model_version_policy
        if policy.WhichOneof("policy_choice") == "latest" and policy.latest.num_versions < 0:
            raise invalid_argument(f"Model {model.name}: latest.num_versions must be >= 1")
        for label, version in model.version_labels.items():
            if not label:
                raise invalid_argument(f"Model {model.name}: version label must not be empty")
            if version < 0:
                raise invalid_argument(
                    f"Model {model.name}: label {label} has negative version {version}"
                )
        validate_logging_config(model.name, model.logging_config)
