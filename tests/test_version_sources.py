"""Sources of versions as plug-ins: a base path ``scheme://...`` is read by the plug-in named ``scheme``.

The plug-in is the third-party package in ``tests/plugins`` (``archive://``:
versions shipped as tar files), found through its real ``dist-info``
entry points; the models are real SavedModels served by a real ModelServer.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time

import numpy as np
import pytest
from ports import free_port
from tensorflow_serving.config import model_server_config_pb2

from jupyter_tfserve.core import version_sources
from jupyter_tfserve.core.admin import Caller, ChangePolicy, ModelRoots
from jupyter_tfserve.core.manager import State
from jupyter_tfserve.core.status import ServingError
from jupyter_tfserve.server import HostSettings, ModelServer, ServerOptions

PLUGINS = os.path.join(os.path.dirname(__file__), "plugins")
TIMEOUT = 60.0


@pytest.fixture
def plugin_installed(monkeypatch):
    """The plug-in distributions in ``tests/plugins`` on the path, as ``pip install`` would leave them."""
    monkeypatch.syspath_prepend(PLUGINS)


def publish(folder, model_store, version: int, kind: str = "half_plus_two") -> None:
    """Ship a SavedModel as ``<version>.tar`` into ``folder`` (written aside, then moved in whole)."""
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, f".{version}.tar.partial")
    with tarfile.open(partial, "w") as archive:
        archive.add(model_store[kind], arcname=".")
    os.replace(partial, os.path.join(folder, f"{version}.tar"))


def config_of(**models: str) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in models.items():
        config.model_config_list.config.add(
            name=name, base_path=base_path, model_platform="tensorflow"
        )
    model = config.model_config_list.config[0]
    model.model_version_policy.all.SetInParent()
    return config


def start(config, host: HostSettings | None = None) -> ModelServer:
    options = ServerOptions(
        port=0, rest_api_port=free_port(), file_system_poll_wait_seconds=0.1, max_num_load_retries=0
    )
    return ModelServer(options, config=config, host=host).start(timeout=120)


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def available(server: ModelServer, name: str) -> list[int]:
    return sorted(
        s.version for s in server.manager.version_status(name) if s.state == State.AVAILABLE
    )


def predict(server: ModelServer, name: str, version: int) -> list[float]:
    with server.manager.acquire(name, version) as handle:
        return (
            handle.servable.run("serving_default", {"x": np.array([[1.0]], np.float32)})["y"]
            .ravel()
            .tolist()
        )


def test_schemes_name_sources_and_plugins_join_from_entry_points(plugin_installed):
    assert version_sources.scheme_of("/models/m") == "file"
    assert version_sources.scheme_of("file:///models/m") == "file"
    assert version_sources.local_path("file:///models/m") == "/models/m"
    assert version_sources.scheme_of("archive:///x") == "archive"
    assert version_sources.names() == ["archive", "brokensource", "file"]


def test_a_plugin_source_serves_versions_and_new_ones_as_they_appear(
    plugin_installed, tmp_path, model_store
):
    shipped = tmp_path / "shipped"
    publish(shipped, model_store, 1)
    server = start(config_of(hpt=f"archive://{shipped}"))
    try:
        assert available(server, "hpt") == [1]
        assert predict(server, "hpt", 1) == [2.5]
        publish(shipped, model_store, 2)
        wait_until(lambda: available(server, "hpt") == [1, 2], "version 2 from its archive")
        assert predict(server, "hpt", 2) == [2.5]
        assert server.manager.source_error("hpt") == ""
    finally:
        server.stop()


def test_a_missing_or_broken_source_is_an_error_on_its_model_only(
    plugin_installed, tmp_path, model_store
):
    plain = tmp_path / "plain"
    shutil.copytree(model_store["half_plus_two"], plain / "1")
    server = start(
        config_of(hpt=str(plain), remote="s3://bucket/remote", broken="brokensource://x")
    )
    try:
        wait_until(
            lambda: server.manager.source_error("broken") != "", "the broken plug-in's error"
        )
        assert server.manager.source_error("remote").startswith(
            "No source plug-in reads s3:// base paths (installed sources: archive, brokensource, file)"
        )
        assert server.manager.source_error("broken").startswith(
            "Source plug-in 'brokensource' (tfserve_archive_source_missing:Source) failed to import: "
            "ModuleNotFoundError"
        )
        assert available(server, "hpt") == [1] and predict(server, "hpt", 1) == [2.5]
    finally:
        server.stop()


def test_the_model_roots_apply_to_what_a_plugin_yields(plugin_installed, tmp_path, model_store):
    """A plug-in cannot widen what the host allows: its folders outside the roots are never served."""
    roots = tmp_path / "roots"
    inside, outside = roots / "inside", tmp_path / "outside"
    publish(inside, model_store, 1)
    publish(outside, model_store, 1)
    policy = ChangePolicy(
        roots=ModelRoots(str(roots), restricted=True), open_doors=frozenset({"rest"})
    )
    server = start(None, HostSettings(name="jupyter", policy=policy))
    try:
        caller = Caller("rest", "user")
        server.admin.load(caller, "good", f"archive://{inside}")
        wait_until(lambda: available(server, "good") == [1], "the admitted version")
        with pytest.raises(ServingError, match="outside the model roots"):
            server.admin.load(caller, "bad", f"archive://{outside}")
        assert "bad" not in server.manager.model_names()
    finally:
        server.stop()
