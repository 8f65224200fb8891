"""The Python client against a real server: REST and gRPC, numpy/pandas/lists in, numpy/pandas out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import savedmodels
from notebook_servers import isolate_discovery, start_server, url_of

from jupyter_tfserve.client.client import Client
from jupyter_tfserve.client.endpoints import Endpoint
from jupyter_tfserve.core.status import Code, ServingError
from jupyter_tfserve.ports import free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_store):
    root = tmp_path_factory.mktemp("client")
    savedmodels.half_plus_two(root / "half", 1)
    savedmodels.half_plus_two(root / "half", 2, slope=1.0)  # version 2: y = x + 2
    savedmodels.multi_io(root / "multi", 1)
    savedmodels.strings(root / "strings", 1)
    policies = {"half": 'model_version_policy { all {} } version_labels { key: "stable" value: 1 }'}
    models = {name: str(root / name) for name in ("half", "multi", "strings")}
    server = start_server(root, models, policies)
    yield server
    server.stop()


@pytest.fixture
def client(server):
    c = Client(url_of(server), grpc_target=f"127.0.0.1:{server.grpc_port}")
    yield c
    c.close()


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_ndarray_in_ndarray_out_by_latest_version_and_label(client, grpc):
    x = np.array([[1.0], [2.0], [5.0]])
    latest = client.predict("half", x, grpc=grpc)
    assert latest.dtype == np.float32 and latest.shape == (3, 1)
    np.testing.assert_allclose(latest, [[3.0], [4.0], [7.0]])
    np.testing.assert_allclose(
        client.predict("half", x, version=1, grpc=grpc), [[2.5], [3.0], [4.5]]
    )
    np.testing.assert_allclose(
        client.predict("half", x, label="stable", grpc=grpc), [[2.5], [3.0], [4.5]]
    )
    np.testing.assert_allclose(client.predict("half", [[1.0]], grpc=grpc), [[3.0]])  # lists too
    special = client.predict(
        "half", np.array([[np.nan], [np.inf], [-np.inf]], np.float32), version=1, grpc=grpc
    )
    assert np.isnan(special[0, 0]) and special[1:, 0].tolist() == [np.inf, -np.inf]


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_dataframe_columns_are_named_inputs_and_outputs_come_back_as_columns(client, grpc):
    frame = pd.DataFrame({"a": [[1.0, 2.0], [3.0, 4.0]], "b": [10, 20]}, index=["r1", "r2"])
    out = client.predict("multi", frame, grpc=grpc)
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == ["r1", "r2"] and sorted(out.columns) == ["doubled_b", "sum"]
    assert out["sum"].tolist() == [13.0, 27.0] and out["doubled_b"].tolist() == [20, 40]
    assert out["doubled_b"].dtype == np.int64

    as_dict = client.predict("multi", {"a": np.ones((1, 2)), "b": [4]}, grpc=grpc)
    assert set(as_dict) == {"doubled_b", "sum"} and as_dict["sum"].tolist() == [6.0]


def test_dataframe_whose_columns_do_not_match_the_signature(client):
    with pytest.raises(ServingError) as info:
        client.predict("multi", pd.DataFrame({"a": [[1.0, 2.0]], "c": [1]}))
    assert info.value.code == Code.INVALID_ARGUMENT
    assert (
        "DataFrame columns ['a', 'c'] do not match the signature's inputs ['a', 'b']"
        in info.value.message
    )
    with pytest.raises(ServingError, match="pass a dict or a DataFrame"):
        client.predict("multi", np.ones((1, 2)))


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_strings_and_binary_outputs_come_back_as_bytes(client, grpc):
    out = client.predict("strings", ["abc", "héllo"], grpc=grpc)
    assert out["upper"].tolist() == [b"ABC", "HéLLO".encode()]
    assert out["raw_bytes"].tolist() == [b"abc", "héllo".encode()]


def test_errors_carry_the_servers_code_and_words(client):
    with pytest.raises(ServingError) as info:
        client.predict("nope", [1.0])
    assert info.value.code == Code.NOT_FOUND
    # The server's words first; the client adds what is served (the issue's "name the fix").
    assert (
        info.value.message
        == "Servable not found for request: Latest(nope) (served: half, multi, strings)"
    )
    with pytest.raises(ServingError, match="Incompatible shapes") as info:
        client.predict("multi", {"a": np.ones((3, 2)), "b": [1, 2]})
    assert info.value.code == Code.INVALID_ARGUMENT
    with pytest.raises(ServingError, match='signature name: "other" not found'):
        client.predict("half", [[1.0]], signature="other")
    with pytest.raises(ServingError, match="a version or a label, not both"):
        client.predict("half", [[1.0]], version=1, label="stable")


def test_grpc_errors_map_to_the_same_codes(client):
    with pytest.raises(ServingError) as info:
        client.predict("half", [[1.0]], version=9, grpc=True)
    assert info.value.code == Code.NOT_FOUND


def test_a_dead_server_is_one_clear_unavailable_error():
    port = free_port()  # nothing listens here
    client = Client(
        endpoint=Endpoint.from_url(f"http://127.0.0.1:{port}", grpc_target=f"127.0.0.1:{port}"),
        timeout=5,
    )
    with pytest.raises(ServingError) as info:
        client.predict("half", [[1.0]])
    assert info.value.code == Code.UNAVAILABLE
    assert f"Cannot reach the tfserve server at http://127.0.0.1:{port}" in info.value.message
    with pytest.raises(ServingError) as info:
        client.models()
    assert info.value.code == Code.UNAVAILABLE


def test_json_bodies_in_row_and_columnar_form(client):
    rows = client.predict_json(
        "multi", {"instances": [{"a": [1.0, 1.0], "b": 1}, {"a": [0.0, 0.0], "b": 2}]}
    )
    assert rows["sum"].tolist() == [3.0, 2.0] and rows["doubled_b"].tolist() == [2, 4]
    columns = client.predict_json("half", {"inputs": [[1.0], [2.0]]}, version=1)
    assert columns.dtype == np.float32 and columns.tolist() == [[2.5], [3.0]]


def test_status_and_metadata(client):
    states = {s["version"]: s["state"] for s in client.status("half")}
    assert states == {"2": "AVAILABLE", "1": "AVAILABLE"}
    version, signatures = client.metadata("half", label="stable")
    assert version == 1 and list(signatures) == ["serving_default"]
    assert list(signatures["serving_default"].inputs) == ["x"]
    names = [m["name"] for m in client.models()]
    assert names == ["half", "multi", "strings"]


def test_client_finds_its_server_through_discovery(server, monkeypatch, tmp_path):
    isolate_discovery(monkeypatch, tmp_path)
    with pytest.raises(ServingError, match="No tfserve server found"):
        Client()
    monkeypatch.setenv("TFSERVE_URL", url_of(server))
    client = Client()
    assert client.url == url_of(server)
    assert client.endpoint.api_url == f"{url_of(server)}/tfserve/api"
    np.testing.assert_allclose(client.predict("half", [[0.0]], version=1), [[2.0]])


def test_endpoints_inside_jupyter_and_on_standalone_ports():
    inside = Endpoint.from_url("http://localhost:8888/lab/base/tfserve/")
    assert (inside.url, inside.api_url) == (
        "http://localhost:8888/lab/base/tfserve",
        "http://localhost:8888/lab/base/tfserve/api",
    )
    standalone = Endpoint.from_url("http://localhost:8501")
    assert standalone.api_url == "http://localhost:8501/tfserve/api"


def test_load_label_rollback_unload_through_the_management_api(client, tmp_path):
    base = tmp_path / "managed"
    savedmodels.half_plus_two(base, 1)
    savedmodels.half_plus_two(base, 2, slope=1.0)
    client.load("managed", str(base), "all")
    assert client.wait_for("managed", timeout=60) == 2
    assert sorted(v["version"] for v in client.model("managed")["versions"]) == [1, 2]

    client.set_label("managed", "stable", 1)
    np.testing.assert_allclose(client.predict("managed", [[2.0]], label="stable"), [[3.0]])
    assert client.model("managed")["labels"] == {"stable": 1}

    answer = client.rollback("managed")
    assert (answer["version"], answer["from_version"]) == (1, 2)
    assert client.wait_for("managed", 1, latest=True, timeout=60) == 1
    np.testing.assert_allclose(client.predict("managed", [[2.0]]), [[3.0]])  # latest is 1 again

    client.remove_label("managed", "stable")
    with pytest.raises(ServingError, match="Unrecognized servable version label: stable"):
        client.predict("managed", [[2.0]], label="stable")
    client.unload("managed")
    assert "managed" not in [m["name"] for m in client.models()]
    with pytest.raises(ServingError) as info:
        client.model("managed")
    assert info.value.code == Code.NOT_FOUND


def test_bad_loads_are_refused_with_the_servers_message(client, tmp_path):
    with pytest.raises(ServingError, match="Invalid version policy 'newest'"):
        client.load("x", str(tmp_path), "newest")
    with pytest.raises(ServingError) as info:
        client.load("x", str(tmp_path / "missing"))
    assert info.value.code in (Code.NOT_FOUND, Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION)
    assert "missing" in info.value.message
    assert "x" not in [m["name"] for m in client.models()]


def test_waiting_for_a_version_that_fails_to_load_raises_its_error(client, tmp_path):
    base = tmp_path / "broken"
    (base / "1").mkdir(parents=True)
    (base / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    client.load("broken", str(base))
    with pytest.raises(ServingError, match="broken version 1 failed to load"):
        client.wait_for("broken", timeout=60)
    client.unload("broken")


def test_the_package_level_python_api_mirrors_the_magic(monkeypatch, tmp_path):
    import tensorflow as tf

    import jupyter_tfserve
    from jupyter_tfserve.notebook import embedded

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": 2.0 * x}

    isolate_discovery(monkeypatch, tmp_path)
    result = jupyter_tfserve.export(Doubler(), "api", sample=[1.0, 2.0])
    assert result.path == str(tmp_path / "models_root" / "api" / "1")
    embedded.start(
        rest_port=0, grpc_port=0, models_root=str(tmp_path / "models_root")
    )  # free ports, not 8501
    try:
        assert jupyter_tfserve.serve("api") == 1
        client = jupyter_tfserve.Client()  # finds the embedded server
        assert client.endpoint.source == "embedded"
        np.testing.assert_allclose(client.predict("api", [1.5]), [3.0])
        with pytest.raises(ServingError, match="No model 'ghost'"):
            jupyter_tfserve.serve("ghost")
    finally:
        embedded.stop()
    assert embedded.current() is None


def test_exports_go_where_the_server_looks_for_models(monkeypatch, tmp_path):
    import json
    import os

    from jupyter_tfserve.client.endpoints import models_root_for

    isolate_discovery(monkeypatch, tmp_path)
    default = str(tmp_path / "models_root")
    assert models_root_for() == default  # nothing running: the default
    assert models_root_for("~/elsewhere") == os.path.expanduser("~/elsewhere")
    assert (
        models_root_for(None, Endpoint.from_url("http://h:1", models_root="/srv/models"))
        == "/srv/models"
    )
    assert (
        models_root_for(None, Endpoint.from_url("http://h:1")) == default
    )  # a URL that does not say
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / f"tfserve-{os.getpid()}.json").write_text(
        json.dumps(
            {
                "url": "http://127.0.0.1:1/tfserve",
                "pid": os.getpid(),
                "models_root": "/srv/jupyter-models",
            }
        )
    )
    assert (
        models_root_for() == "/srv/jupyter-models"
    )  # a Jupyter server with the extension: its models_root
