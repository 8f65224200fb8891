"""Real model servers for the notebook-layer tests: ephemeral ports, a given set of models, no discovery leaks."""

from __future__ import annotations

import os

from jupyter_tfserve.ports import free_port
from jupyter_tfserve.server import ModelServer, ServerOptions

DISCOVERY_ENV = ("TFSERVE_URL", "TFSERVE_TOKEN", "TFSERVE_INJECTED_URL", "JPY_PARENT_PID")


def isolate_discovery(monkeypatch, tmp_path) -> None:
    """No server found by accident: an empty runtime dir, no injected address, exports under tmp_path."""
    for name in DISCOVERY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("TFSERVE_MODELS_ROOT", str(tmp_path / "models_root"))


def model_config_text(models: dict[str, str], policies: dict[str, str] | None = None) -> str:
    """``models.config`` text for ``{name: base_path}`` (policies as raw text-proto fragments)."""
    entries = []
    for name, base_path in models.items():
        policy = (policies or {}).get(name, "")
        entries.append(
            f'  config {{ name: "{name}" base_path: "{base_path}" model_platform: "tensorflow" {policy} }}'
        )
    return "model_config_list {\n" + "\n".join(entries) + "\n}\n"


def start_server(
    tmp_path, models: dict[str, str], policies: dict[str, str] | None = None, **options
) -> ModelServer:
    """A ModelServer with REST and gRPC on free ports, serving ``models``; the caller stops it."""
    config = os.path.join(str(tmp_path), "models.config")
    with open(config, "w") as f:
        f.write(model_config_text(models, policies))
    options.setdefault("file_system_poll_wait_seconds", 0.2)
    options.setdefault("max_num_load_retries", 0)
    options.setdefault(
        "enable_management_api", True
    )  # the notebook manages it, as it does its embedded server
    server = ModelServer(
        ServerOptions(
            port=free_port(), rest_api_port=free_port(), model_config_file=config, **options
        )
    )
    return server.start()


def url_of(server: ModelServer) -> str:
    return f"http://127.0.0.1:{server.rest_port}"
