"""Loaded models' objects are kept out of the collector's full passes, and unloaded ones are still freed."""

from __future__ import annotations

import gc
import shutil
import weakref

from waiting import wait_until

from jupyter_tfserve.core.manager import State
from jupyter_tfserve.server import HostSettings, ModelServer, ServerOptions


def _server(base: str, host: HostSettings | None = None) -> ModelServer:
    options = ServerOptions(
        port=0, rest_api_port=0, model_name="hpt", model_base_path=base,
        file_system_poll_wait_seconds=0.2, enable_model_warmup=False,
    )  # fmt: skip
    return ModelServer(options, host=host).start(timeout=120)


class _Cycle:
    """Garbage only the cyclic collector can free: it refers to itself."""

    def __init__(self):
        self.me = self


def _tie_cycle_to(server: ModelServer, version: int) -> weakref.ref:
    """A reference cycle the served version alone keeps alive, like the object graph of a model."""
    cycle = _Cycle()
    with server.manager.acquire("hpt", version) as handle:
        handle.servable.held = cycle
    return weakref.ref(cycle)


def test_a_loaded_model_is_frozen_and_an_unloaded_one_is_still_collected(model_store, tmp_path):
    base = tmp_path / "hpt"
    shutil.copytree(model_store["half_plus_two"], base / "1")
    server = _server(str(base))
    try:
        assert gc.get_freeze_count() > 10_000  # the model's objects, out of every full pass
        first = _tie_cycle_to(server, 1)
        # Version 2 loads (which freezes every object alive, the cycle too), version 1 unloads.
        shutil.copytree(model_store["half_plus_two"], base / "2")
        assert wait_until(
            lambda: (
                [s.state for s in server.manager.version_status("hpt")]
                == [
                    State.AVAILABLE,
                    State.END,
                ]
            ),
            60,
        )
        # Frozen objects are never collected: the unload itself must have collected the cycle.
        assert first() is None
    finally:
        server.stop()
    assert gc.get_freeze_count() == 0  # the last server to stop unfreezes


def test_the_in_kernel_host_does_not_freeze_the_users_objects(model_store, tmp_path):
    shutil.copytree(model_store["half_plus_two"], tmp_path / "hpt" / "1")
    server = _server(str(tmp_path / "hpt"), HostSettings(name="kernel", freeze_loaded_models=False))
    try:
        assert server.manager.version_status("hpt")[0].state == State.AVAILABLE
        assert gc.get_freeze_count() == 0
    finally:
        server.stop()
