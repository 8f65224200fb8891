"""The model manager and servables on real SavedModels: versions, policies, swaps, labels, failures."""

from __future__ import annotations

import collections
import os
import shutil
import threading

import numpy as np
import pytest
from tensorflow_serving.config import model_server_config_pb2
from waiting import wait_until

from jupyter_tfserve.core import source
from jupyter_tfserve.core.config import (
    load_model_server_config,
    single_model_config,
    validate_model_server_config,
)
from jupyter_tfserve.core.manager import ModelManager, State
from jupyter_tfserve.core.platforms import SignatureNotFound
from jupyter_tfserve.core.platforms.tensorflow import load_servable
from jupyter_tfserve.core.status import Code, ServingError


def make_manager(**kwargs) -> ModelManager:
    kwargs.setdefault("file_system_poll_wait_seconds", 0)
    kwargs.setdefault("max_num_load_retries", 0)
    return ModelManager(lambda name, version, path: load_servable(name, version, path), **kwargs)


def predict_y(manager, name, x=1.0, **spec):
    with manager.acquire(name, **spec) as handle:
        out = handle.servable.run("serving_default", {"x": np.array([[x]], np.float32)})
        return handle.version, float(out["y"].ravel()[0])


@pytest.fixture
def manager():
    m = make_manager()
    yield m
    m.stop()


def test_version_dirs_parse_as_int64_with_leading_zeros(tmp_path):
    for name in ("1", "007", "abc", "-3", str(2**63)):
        (tmp_path / name).mkdir()
    (tmp_path / "9").write_text("a file, not a version")
    assert sorted(source.list_versions(str(tmp_path))) == [1, 7]


def test_version_policies(tmp_path):
    available = {1: "a", 2: "b", 5: "c"}
    assert source.aspired_versions(available, None) == {5: "c"}
    assert sorted(source.aspired_versions(available, source.parse_policy("latest:2"))) == [2, 5]
    assert sorted(source.aspired_versions(available, source.parse_policy("all"))) == [1, 2, 5]
    assert sorted(source.aspired_versions(available, source.parse_policy("specific:1,5,9"))) == [
        1,
        5,
    ]
    with pytest.raises(ServingError, match="Invalid version policy"):
        source.parse_policy("newest:2")


def test_serves_latest_and_swaps_to_new_version(manager, model_repo, model_store):
    base = model_repo("half_plus_two", versions=(1,))
    manager.reload_config(single_model_config("hpt", base))
    assert predict_y(manager, "hpt") == (1, 2.5)
    shutil.copytree(model_store["half_plus_two"], os.path.join(base, "2"))
    manager.poll()
    assert manager.wait_for(
        lambda: [s.state for s in manager.version_status("hpt")] == [State.AVAILABLE, State.END], 60
    )
    assert predict_y(manager, "hpt")[0] == 2
    with pytest.raises(ServingError, match=r"Servable not found for request: Specific\(hpt, 1\)"):
        manager.acquire("hpt", version=1)


def test_failed_load_keeps_serving_version_and_reports_error(manager, model_repo):
    base = model_repo("half_plus_two", versions=(1,))
    manager.reload_config(single_model_config("hpt", base))
    # Built aside and renamed in, so a background poll never sees a half-written version.
    staging = os.path.join(os.path.dirname(base), "staging-2")
    os.makedirs(staging)
    with open(os.path.join(staging, "saved_model.pb"), "wb") as f:
        f.write(b"\x00not a protobuf at all\xff")
    os.rename(staging, os.path.join(base, "2"))
    manager.poll()
    assert manager.wait_until_settled(["hpt"], 60)
    manager.poll()  # a later poll must not retire the serving version either
    status = {s.version: s for s in manager.version_status("hpt")}
    assert status[2].state == State.END and status[2].error is not None
    assert (
        "saved_model" in status[2].error.message.lower()
        or "parse" in status[2].error.message.lower()
    )
    assert status[1].state == State.AVAILABLE
    assert predict_y(manager, "hpt") == (1, 2.5)


def test_unload_waits_for_in_flight_handles(manager, model_repo):
    base = model_repo("half_plus_two", versions=(1,))
    manager.reload_config(single_model_config("hpt", base))
    handle = manager.acquire("hpt")
    done = threading.Event()
    threading.Thread(target=lambda: (manager.remove_model("hpt"), done.set()), daemon=True).start()
    assert manager.wait_for(lambda: manager.model_names() == [], 10)
    # No new requests reach it, but the in-flight one still runs on a loaded servable.
    with pytest.raises(ServingError) as err:
        manager.acquire("hpt")
    assert err.value.code == Code.NOT_FOUND
    out = handle.servable.run("serving_default", {"x": np.array([[2.0]], np.float32)})
    assert float(out["y"][0][0]) == 3.0
    handle.release()
    assert done.wait(10)


def test_labels_only_on_available_versions(manager, model_repo):
    base = model_repo("half_plus_two", versions=(1, 2))
    config = single_model_config("hpt", base)
    config.model_config_list.config[0].model_version_policy.all.SetInParent()
    manager.reload_config(config)
    manager.set_label("hpt", "stable", 1)
    manager.set_label("hpt", "canary", 2)
    assert predict_y(manager, "hpt", label="stable")[0] == 1
    assert predict_y(manager, "hpt", label="canary")[0] == 2
    with pytest.raises(ServingError, match="which is not currently available for inference") as err:
        manager.set_label("hpt", "broken", 7)
    assert err.value.code == Code.FAILED_PRECONDITION
    with pytest.raises(ServingError, match="Unrecognized servable version label: nope") as err:
        manager.acquire("hpt", label="nope")
    assert err.value.code == Code.INVALID_ARGUMENT
    assert manager.config.model_config_list.config[0].version_labels == {"stable": 1, "canary": 2}


def test_reload_realizes_exactly_the_new_set(manager, model_repo):
    a = model_repo("half_plus_two", name="a")
    b = model_repo("half_plus_two", name="b")
    config = model_server_config_pb2.ModelServerConfig()
    for name, base in (("a", a), ("b", b)):
        model = config.model_config_list.config.add(
            name=name, base_path=base, model_platform="tensorflow"
        )
        del model
    manager.reload_config(config)
    assert manager.model_names() == ["a", "b"]
    del config.model_config_list.config[0]
    manager.reload_config(config)
    assert manager.wait_for(lambda: manager.model_names() == ["b"], 30)
    assert predict_y(manager, "b")[1] == 2.5


def test_config_errors_use_tf_serving_wording(tmp_path):
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="m", base_path="/abs")
    config.model_config_list.config.add(name="m", base_path="/abs")
    with pytest.raises(ServingError, match="Illegal to list model m multiple times in config list"):
        validate_model_server_config(config)
    with pytest.raises(
        ServingError,
        match=r"Expected model r to have an absolute path or URI; got base_path\(\)=rel",
    ):
        single_model_config("r", "rel")
    bad = tmp_path / "models.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(
        ServingError, match="Error parsing text-format tensorflow.serving.ModelServerConfig"
    ):
        load_model_server_config(bad)


def test_servable_signatures_and_tf1_loader(model_store):
    tf2 = load_servable("hpt", 1, model_store["half_plus_two_tf1"])
    tf1 = load_servable("hpt", 1, model_store["half_plus_two_tf1"], tf1=True)
    assert (tf2.loader, tf1.loader) == ("tf2", "tf1")
    for servable in (tf2, tf1):
        assert set(servable.signatures) == {"serving_default", "classify_x_to_y", "regress_x_to_y"}
        # TF Serving does not check request shapes against the declared one.
        out = servable.run("serving_default", {"x": np.array([1.0, 2.0, 5.0], np.float32)})
        assert out["y"].tolist() == [2.5, 3.0, 4.5]
        with pytest.raises(SignatureNotFound):
            servable.run("nope", {})
        servable.close()


def test_stateful_signature_keeps_its_variables(model_store):
    counter = load_servable("counter", 1, model_store["counter"])
    first = counter.run("incr_counter", {"delta": np.array([2.0], np.float32)})["output"]
    second = counter.run("incr_counter", {"delta": np.array([3.0], np.float32)})["output"]
    assert (first.tolist(), second.tolist()) == ([2.0], [5.0])
    assert counter.run("get_counter", {"unused": np.array([0.0], np.float32)})[
        "output"
    ].tolist() == [5.0]


def test_missing_saved_model_is_a_clear_error(tmp_path):
    with pytest.raises(ServingError, match="SavedModel not found in export directory") as err:
        load_servable("x", 1, str(tmp_path))
    assert err.value.code == Code.NOT_FOUND


def _broken_version(base) -> str:
    """A version directory whose saved_model.pb is not a protobuf: every load of it fails."""
    os.makedirs(os.path.join(base, "1"))
    with open(os.path.join(base, "1", "saved_model.pb"), "wb") as f:
        f.write(b"\x00not a protobuf at all\xff")
    return str(base)


def test_retries_wait_on_timers_and_hold_up_no_other_load(tmp_path, model_repo):
    """The 2 load threads slept between retries: two broken models held a good one ~60 s."""
    attempts: collections.Counter = collections.Counter()

    def loader(name, version, path):
        attempts[name] += 1
        return load_servable(name, version, path)

    manager = ModelManager(
        loader,
        file_system_poll_wait_seconds=0,
        max_num_load_retries=5,
        load_retry_interval_seconds=600,
        num_load_threads=2,
    )
    config = model_server_config_pb2.ModelServerConfig()
    for name, base in (
        ("broken1", _broken_version(tmp_path / "broken1")),
        ("broken2", _broken_version(tmp_path / "broken2")),
        ("good", model_repo("half_plus_two", name="good")),
    ):
        config.model_config_list.config.add(name=name, base_path=base, model_platform="tensorflow")
    try:
        manager.reload_config(config, wait_timeout=None)
        good_serves = lambda: manager.version_status("good")[0].state == State.AVAILABLE  # noqa: E731
        assert manager.wait_for(good_serves, 60)
        assert predict_y(manager, "good") == (1, 2.5)
        # While it waits for its retry, the status shows the version LOADING with its last error.
        assert manager.wait_for(lambda: manager.version_status("broken1")[0].error is not None, 60)
        (status,) = manager.version_status("broken1")
        assert status.state == State.LOADING and status.error.code != Code.OK
        assert attempts == {"broken1": 1, "broken2": 1, "good": 1}
        # Unloading the model cancels its pending retry.
        manager.remove_model("broken1")
        assert wait_until(
            lambda: not any(t.name == "tfserve-retry-broken1-1" for t in threading.enumerate())
        )
        assert manager.model_names() == ["broken2", "good"] and attempts["broken1"] == 1
    finally:
        manager.stop()
    assert wait_until(
        lambda: not any(t.name.startswith("tfserve-retry-") for t in threading.enumerate())
    )


def test_an_unload_waiting_on_a_hung_request_gives_up_after_its_bound(model_repo):
    """An unload waited forever for a run that hung, and every other unload waited behind it."""
    unloaded: list[tuple[str, int]] = []
    manager = make_manager(unload_wait_seconds=0.5, on_unload=lambda *key: unloaded.append(key))
    config = model_server_config_pb2.ModelServerConfig()
    for name in ("a", "b"):
        base = model_repo("half_plus_two", name=name)
        config.model_config_list.config.add(name=name, base_path=base, model_platform="tensorflow")
    manager.reload_config(config)
    hung = manager.acquire("a")  # a request whose run never returns
    try:
        manager.reload_config(model_server_config_pb2.ModelServerConfig(), wait_timeout=None)
        assert wait_until(lambda: sorted(unloaded) == [("a", 1), ("b", 1)])
        # The hung request still runs on its servable; it closes when that request ends.
        out = hung.servable.run("serving_default", {"x": np.array([[2.0]], np.float32)})
        assert float(out["y"][0][0]) == 3.0
    finally:
        hung.release()
    with pytest.raises(Exception):  # noqa: B017 - closed: whatever the runner raises
        hung.servable.run("serving_default", {"x": np.array([[2.0]], np.float32)})
    manager.stop()
