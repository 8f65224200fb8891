"""``%tfserve`` in a real IPython shell: every subcommand, every error path, embedded mode.

The shell is IPython's own testing shell; the server is the embedded one the
magic starts (real ports, real loads), or a second real server reached by URL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import savedmodels
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython
from notebook_servers import DISCOVERY_ENV, start_server, url_of
from test_rest import wait_until

from jupyter_tfserve.client.client import Client
from jupyter_tfserve.notebook import embedded
from jupyter_tfserve.notebook.export import ExportError, ExportResult
from jupyter_tfserve.notebook.magic.errors import TFServeError
from jupyter_tfserve.notebook.magic.quoting import split_commands
from jupyter_tfserve.notebook.magics import TFServeMagics
from jupyter_tfserve.ports import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """An IPython shell with the extension loaded, talking to an embedded server on free ports."""
    base = tmp_path_factory.mktemp("magics")
    saved = {k: os.environ.pop(k) for k in DISCOVERY_ENV if k in os.environ}
    saved_runtime = os.environ.get("JUPYTER_RUNTIME_DIR")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(base / "runtime")  # no Jupyter server to find
    ip = start_ipython() or get_ipython()  # one global testing shell per process
    ip.run_line_magic("load_ext", "jupyter_tfserve")
    ip.run_line_magic("config", f"TFServeMagics.models_root = {str(base / 'models')!r}")
    ip.run_line_magic("config", "TFServeMagics.rest_port = 0")
    ip.run_line_magic("config", f"TFServeMagics.grpc_port = {free_port()}")
    ip.run_line_magic("config", "TFServeMagics.poll_seconds = 0.2")
    ip.run_line_magic("config", "TFServeMagics.progress = 'text'")
    ip.run_cell(
        "import numpy as np, pandas as pd, keras\n"
        "model = keras.Sequential([keras.Input((4,), name='features'), keras.layers.Dense(2, name='scores')])\n"
        "x = np.random.default_rng(1).random((6, 4)).astype('float32')\n"
    )
    ip.models_root = str(base / "models")
    yield ip
    ip.run_line_magic("unload_ext", "jupyter_tfserve")
    embedded.stop()
    os.environ.update(saved)
    if saved_runtime is None:
        os.environ.pop("JUPYTER_RUNTIME_DIR", None)
    else:
        os.environ["JUPYTER_RUNTIME_DIR"] = saved_runtime


def run(shell, cell: str):
    """Run a cell; return its value, or raise the exception it ended with."""
    result = shell.run_cell(cell)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    if result.error_before_exec is not None:
        raise result.error_before_exec
    return result.result


def fails(shell, capsys, cell: str) -> str:
    """Run a cell that must fail; return the one line it printed (and check it is only that line)."""
    capsys.readouterr()
    result = shell.run_cell(cell)
    assert isinstance(result.error_in_exec, TFServeError), result.error_in_exec
    out = capsys.readouterr()
    printed = (out.out + out.err).strip()
    line = f"tfserve: {result.error_in_exec}"
    assert "Traceback" not in printed and "\n" not in line
    assert printed.splitlines()[-1] == line, printed
    return line


@pytest.fixture(scope="module")
def served(shell):
    """``seq`` exported (with a sample) and served once for the tests that query it."""
    run(shell, "%tfserve export model --name seq --sample x")
    run(shell, "%tfserve serve seq")
    return "seq"


# ---------------------------------------------------------------------- loading, config, help


def test_extension_registers_a_configurable_line_and_cell_magic(shell):
    magics = shell.magics_manager.registry["TFServeMagics"]
    assert isinstance(magics, TFServeMagics) and magics in shell.configurables
    assert (
        "tfserve" in shell.magics_manager.magics["line"]
        and "tfserve" in shell.magics_manager.magics["cell"]
    )
    assert magics.poll_seconds == 0.2
    run(shell, "%config TFServeMagics.tolerance = 0.001")
    assert magics.tolerance == 0.001
    run(shell, "%config TFServeMagics.tolerance = 0.0001")


def test_listed_in_the_users_config_the_extension_loads_itself(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "ipython_config.py").write_text(
        "c.InteractiveShellApp.extensions = ['jupyter_tfserve']\nc.TFServeMagics.tolerance = 0.25\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO, "IPYTHONDIR": str(tmp_path / "ipython")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "IPython",
            f"--profile-dir={profile}",
            "--no-banner",
            "-c",
            "%tfserve --help\nprint('tolerance', get_ipython().magics_manager.registry['TFServeMagics'].tolerance)",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: %tfserve" in done.stdout and "snippet" in done.stdout
    assert "tolerance 0.25" in done.stdout  # c.TFServeMagics.* in the profile configures the magic


def test_help_for_the_magic_and_each_subcommand(shell, capsys):
    run(shell, "%tfserve --help")
    usage = capsys.readouterr().out
    for sub in (
        "export",
        "serve",
        "list",
        "status",
        "predict",
        "versions",
        "label",
        "rollback",
        "unload",
        "inspect",
        "metrics",
        "snippet",
        "dashboard",
    ):
        assert sub in usage
    assert run(shell, "%tfserve export --help") is None
    assert "--sample DATA_VAR" in capsys.readouterr().out
    run(shell, "%tfserve")
    assert "usage: %tfserve" in capsys.readouterr().out


@pytest.mark.parametrize(
    "cell, message",
    [
        ("%tfserve serv mnist", "unknown command 'serv' — did you mean 'serve'?"),
        ("%tfserve xyzzy", "unknown command 'xyzzy' (commands: export, serve, list,"),
        ("%tfserve export model", "the following arguments are required: --name"),
        ("%tfserve label seq stable one", "argument version: invalid int value: 'one'"),
        ("%tfserve predict seq x --version 1 --label stable", "not allowed with argument"),
        ("%tfserve predict seq", "predict needs DATA"),
        ("%tfserve predict seq x_missing", "cannot evaluate DATA 'x_missing': NameError"),
        ("%tfserve export 'unclosed", "cannot parse the command line"),
    ],
)
def test_bad_arguments_print_one_line(shell, capsys, cell, message):
    assert message in fails(shell, capsys, cell)


def test_commands_chain_with_semicolons():
    assert split_commands("label m a 1 ; %tfserve label m b 2;") == [
        ["label", "m", "a", "1"],
        ["label", "m", "b", "2"],
    ]
    assert split_commands("predict m df[['a', 'b']] --grpc") == [
        ["predict", "m", "df[['a', 'b']]", "--grpc"]
    ]
    assert split_commands("predict m x[:5, :]") == [["predict", "m", "x[:5, :]"]]
    assert split_commands("export m --name 'a b;c'") == [["export", "m", "--name", "'a b;c'"]]


# ---------------------------------------------------------------------- export


def test_export_writes_versions_under_models_root_with_parity(shell, capsys):
    first = run(shell, "%tfserve export model --name exp --sample x")
    second = run(shell, "%tfserve export model --name exp")
    assert isinstance(first, ExportResult) and (first.version, second.version) == (1, 2)
    assert first.path == os.path.join(shell.models_root, "exp", "1")
    assert first.max_abs_diff <= 1e-6 and second.max_abs_diff <= 1e-6
    assert "parity check on the sample passed" in repr(
        first
    ) and "on 2 synthetic rows passed" in repr(second)
    assert "export exp: writing warmup records" in capsys.readouterr().out  # text progress


def test_export_optimize_publishes_a_tflite_version_and_prints_the_comparison(shell, capsys):
    result = run(shell, "%tfserve export model --name opt --optimize float16 --sample x")
    assert result.version == 1 and sorted(os.listdir(result.path)) == [
        "assets.extra",
        "model.tflite",
    ]
    assert list(result.comparison.index) == ["float32 SavedModel", "float16 TFLite"]
    assert result.comparison.loc["float16 TFLite", "max_abs_error"] < 1e-2
    assert "latency_ms_batch32" in repr(result)
    assert "export opt: converting to TensorFlow Lite (float16)" in capsys.readouterr().out
    assert "int8 quantization calibrates on the sample" in fails(
        shell, capsys, "%tfserve export model --name o8 --optimize int8"
    )


def test_export_bad_input_is_one_line_and_writes_nothing(shell, capsys):
    assert "Cannot export a builtins.int" in fails(shell, capsys, "%tfserve export 42 --name bad")
    assert "Invalid model name '../up'" in fails(
        shell, capsys, "%tfserve export model --name ../up"
    )
    assert "Sample does not fit" in fails(
        shell, capsys, "%tfserve export model --name bad --sample {'z': x}"
    )
    assert not os.path.exists(os.path.join(shell.models_root, "bad"))
    assert not os.path.exists(os.path.join(os.path.dirname(shell.models_root), "up"))


def test_debug_shows_the_traceback(shell, capsys):
    result = shell.run_cell("%tfserve --debug export 42 --name bad")
    assert isinstance(result.error_in_exec, ExportError)
    out = capsys.readouterr()
    assert "Traceback" in out.out + out.err or "ExportError" in out.out + out.err


# ---------------------------------------------------------------------- serve, predict


def test_embedded_mode_says_so_once_and_serve_prints_where(shell, served, capsys):
    info = embedded.current()
    assert info is not None
    text = repr(run(shell, "%tfserve serve seq"))
    assert "no Jupyter server with the extension found" not in capsys.readouterr().out
    assert f"REST:  {info.url}/v1/models/seq:predict" in text
    assert f"gRPC:  {info.grpc_target}" in text
    assert "curl -d '{\"instances\": [[0.0, 0.0, 0.0, 0.0]]}' -X POST" in text


def test_serving_a_name_that_does_not_exist(shell, capsys):
    line = fails(shell, capsys, "%tfserve serve ghost")
    assert "No model 'ghost'" in line and "export one first" in line


def test_predict_returns_arrays_and_frames(shell, served):
    expected = run(shell, "model(x[:3]).numpy()")
    np.testing.assert_allclose(run(shell, "%tfserve predict seq x[:3]"), expected, atol=1e-6)
    np.testing.assert_allclose(run(shell, "%tfserve predict seq x[:3] --grpc"), expected, atol=1e-6)
    run(shell, "preds = %tfserve predict seq x[:2, :]")
    np.testing.assert_allclose(shell.user_ns["preds"], expected[:2], atol=1e-6)
    frame = run(shell, "%tfserve predict seq pd.DataFrame({'features': list(x[:3])})")
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["scores"]
    np.testing.assert_allclose(np.stack(frame["scores"]), expected, atol=1e-6)


def test_predict_cell_magic_takes_a_json_body(shell, served):
    value = run(shell, '%%tfserve predict seq\n{"instances": [[1.0, 0.0, 0.0, 0.0]]}')
    expected = run(shell, "model(np.array([[1.0, 0.0, 0.0, 0.0]], 'float32')).numpy()")
    np.testing.assert_allclose(value, expected, atol=1e-6)
    assert value.dtype == np.float32


def test_logs_shows_the_models_logged_requests(shell, served, capsys, tmp_path):
    assert "does not log its requests" in fails(shell, capsys, "%tfserve logs seq")
    client = shell.magics_manager.registry["TFServeMagics"].client()
    client.set_logging("seq", filename_prefix=str(tmp_path / "seq"), sampling_rate=1.0)
    try:
        run(shell, "_ = %tfserve predict seq x[:2]")
        run(shell, "_ = %tfserve predict seq x[:3]")
        # Records are counted once flushed to the file: then the magic reads them.
        assert wait_until(lambda: client.logging("seq")["records"]["written"] == 2)
        frame = run(shell, "%tfserve logs seq --limit 1 --since 10m")
        assert len(frame) == 1 and frame["status"][0] == "OK" and frame["version"][0] >= 1
        assert frame["inputs"][0].startswith("features: float32[3, 4]")
        assert "record" not in frame.columns
    finally:
        client.set_logging("seq", sampling_rate=0.0)


def test_predict_errors_are_one_line(shell, served, capsys):
    line = fails(shell, capsys, "%tfserve predict nope x")
    assert "Servable not found for request: Latest(nope) (served: " in line and "seq" in line
    # The signature says what the model takes, not TensorFlow's graph error; over either protocol.
    assert fails(shell, capsys, "%tfserve predict seq np.ones((2, 3), 'float32')").endswith(
        "features expects [?, 4], got (2, 3)"
    )
    assert fails(shell, capsys, "%tfserve predict seq np.ones((2, 3), 'float32') --grpc").endswith(
        "features expects [?, 4], got (2, 3)"
    )
    line = fails(shell, capsys, "%tfserve predict seq pd.DataFrame({'f': [1.0]})")
    assert "DataFrame columns ['f'] do not match the signature's inputs ['features']" in line
    assert "the cell is not JSON" in fails(shell, capsys, "%%tfserve predict seq\n{not json")
    assert "drop --grpc" in fails(shell, capsys, '%%tfserve predict seq --grpc\n{"instances": []}')


# ---------------------------------------------------------------------- listing and inspecting


def test_list_status_and_versions(shell, served):
    listing = run(shell, "%tfserve list")
    assert "seq" in listing.column("model")
    row = listing.rows[listing.column("model").index("seq")]
    assert row[1] == "1" and row[4] == "latest:1" and "<table>" in listing._repr_html_()

    status = run(shell, "%tfserve status")
    assert ["mode", "embedded in this kernel"] in status.rows
    assert ["models_root", shell.models_root] in status.rows
    versions = run(shell, "%tfserve status seq")
    assert versions.rows[0][:3] == ["1", "AVAILABLE", "OK"]
    table = run(shell, "%tfserve versions seq")
    assert table.rows[0][:2] == ["1", "AVAILABLE"]
    assert "Model nope is not being served" in fails_quietly(shell, "%tfserve versions nope")


def fails_quietly(shell, cell: str) -> str:
    result = shell.run_cell(cell)
    assert isinstance(result.error_in_exec, TFServeError)
    return str(result.error_in_exec)


def test_inspect_a_path_and_a_served_name(shell, served):
    by_path = run(shell, f"%tfserve inspect {os.path.join(shell.models_root, 'seq')}")
    assert by_path.title == os.path.join(shell.models_root, "seq", "1")
    assert by_path.rows[0][:5] == ["serving_default", "input", "features", "DT_FLOAT", "(-1, 4)"]
    by_name = run(shell, "%tfserve inspect seq")
    assert by_name.title == "seq version 1 (served)" and by_name.rows[1][2] == "scores"
    assert "neither a SavedModel path nor a served model" in fails_quietly(
        shell, "%tfserve inspect nothing"
    )


def test_snippet_has_runnable_curl_requests_and_grpc(shell, served):
    info = embedded.current()
    snippets = run(shell, "%tfserve snippet seq")
    assert snippets["curl"].startswith("curl -d '{\"instances\": [[0.0, 0.0, 0.0, 0.0]]}'")
    assert f"{info.url}/v1/models/seq:predict" in snippets["curl"]
    namespace: dict = {}
    exec(
        snippets["requests"].replace("print(response.json())", "answer = response.json()"),
        namespace,
    )
    assert len(namespace["answer"]["predictions"][0]) == 2
    exec(snippets["gRPC"].replace("print(", "answer = ("), namespace)
    assert namespace["answer"]["scores"].shape == (1, 2)


def test_metrics(shell, served):
    run(shell, "%tfserve predict seq x[:1]")
    table = run(shell, "%tfserve metrics seq")
    predicts = [
        row for row in table.rows if row[0] == "request_latency" and "API=predict" in row[1]
    ]
    assert len(predicts) == 1 and int(predicts[0][2]) >= 1 and float(predicts[0][5]) > 0
    assert any(row[0] == "request_count" and row[1] == "status=OK" for row in table.rows)
    everything = run(shell, "%tfserve metrics")
    assert any(row[0] == "load_attempt_count" and "seq" in row[1] for row in everything.rows)


# ---------------------------------------------------------------------- versions, labels, rollback, unload


def test_new_export_swaps_versions_then_labels_and_rollback(shell):
    run(shell, "%tfserve export model --name swap")
    run(shell, "%tfserve serve swap")
    run(
        shell,
        "model2 = keras.Sequential([keras.Input((4,), name='features'), keras.layers.Dense(2, name='scores')])",
    )
    result = run(shell, "%tfserve export model2 --name swap --sample x")
    assert result.version == 2 and "now serves swap version 2" in repr(result)
    expected = run(shell, "model2(x[:1]).numpy()")
    np.testing.assert_allclose(run(shell, "%tfserve predict swap x[:1]"), expected, atol=1e-6)

    run(shell, "%tfserve serve swap --policy all")
    run(shell, "%tfserve label swap stable 1 ; %tfserve label swap canary 2")
    table = run(shell, "%tfserve versions swap")
    labels = {row[0]: row[2] for row in table.rows}
    assert labels == {"2": "canary", "1": "stable"}
    np.testing.assert_allclose(
        run(shell, "%tfserve predict swap x[:1] --label canary"), expected, atol=1e-6
    )

    rolled = run(shell, "%tfserve rollback swap")
    assert "rolled back" in repr(rolled)
    np.testing.assert_allclose(
        run(shell, "%tfserve predict swap x[:1]"), run(shell, "model(x[:1]).numpy()"), atol=1e-6
    )
    run(shell, "%tfserve label swap canary --remove")
    assert "Unrecognized servable version label: canary" in fails_quietly(
        shell, "%tfserve predict swap x[:1] --label canary"
    )


def test_compare_two_versions_in_a_cell(shell, capsys):
    """Two exports of the cell's model, the second with other weights: the magic compares them by version."""
    from jupyter_tfserve.notebook.compare import Comparison

    run(shell, "%tfserve export model --name cmp")
    run(
        shell,
        "other = keras.models.clone_model(model)\nother.set_weights([-w for w in model.get_weights()])",
    )
    run(shell, "%tfserve export other --name cmp")
    run(shell, "%tfserve serve cmp --policy all")
    result = run(shell, "%tfserve compare cmp 1 2 --data x --requests 2")
    assert (
        isinstance(result, Comparison) and result.rows == 6
    )  # no widgets outside a kernel: the text form
    expected = np.abs(run(shell, "model(x).numpy() - other(x).numpy()"))
    assert result.outputs["scores"].max_abs_diff == pytest.approx(expected.max(), rel=1e-5)
    assert repr(result).startswith("cmp version 1 vs version 2: largest difference")
    assert "the following arguments are required: --data" in fails(
        shell, capsys, "%tfserve compare cmp 1 2"
    )


def test_benchmark_without_batching_names_the_kernels_setting(shell, served):
    message = fails_quietly(shell, "%tfserve benchmark seq --compare-batching --quiet")
    assert (
        "batching is off on this server: run %config TFServeMagics.enable_batching = True"
        in message
    )


def test_unload(shell):
    run(shell, "%tfserve export model --name gone")
    run(shell, "%tfserve serve gone")
    assert "gone: unloaded" in repr(run(shell, "%tfserve unload gone"))
    assert "gone" not in run(shell, "%tfserve list").column("model")
    assert "not being served" in fails_quietly(shell, "%tfserve unload gone")


def test_deploy_writes_manifests_for_what_is_served(shell, served, tmp_path):
    import yaml
    from google.protobuf import text_format

    from jupyter_tfserve.core.config import ModelServerConfig
    from jupyter_tfserve.deploy import DeployReport

    run(shell, "%tfserve label seq stable 1")
    out = tmp_path / "k8s"
    report = run(shell, f"%tfserve deploy seq --out {out} --pvc models --max-replicas 4")
    assert isinstance(report, DeployReport)
    assert "kubectl apply -k" in str(report)
    files = yaml.safe_load((out / "configmap.yaml").read_text())["data"]
    config = text_format.Parse(files["models.config"], ModelServerConfig())
    (model,) = config.model_config_list.config
    assert (model.name, dict(model.version_labels)) == ("seq", {"stable": 1})
    assert "unknown model" in fails_quietly(shell, f"%tfserve deploy nope --out {tmp_path / 'x'}")
    assert "already holds files" in fails_quietly(shell, f"%tfserve deploy seq --out {out} --pvc m")
    assert "pass --storage-uri s3://" in fails_quietly(
        shell, f"%tfserve deploy seq --out {tmp_path / 'y'}"
    )


def test_dashboard_subcommand_returns_the_widget(shell, served):
    from jupyter_tfserve.notebook.widgets import Dashboard

    board = run(shell, "%tfserve dashboard")
    try:
        assert isinstance(board, Dashboard) and "seq" in board.model.options
    finally:
        board.close()


# ---------------------------------------------------------------------- other servers


def test_url_trait_talks_to_another_server(shell, tmp_path, model_store):
    savedmodels.half_plus_two(tmp_path / "half", 1)
    server = start_server(tmp_path, {"half": str(tmp_path / "half")})
    try:
        run(shell, f"%config TFServeMagics.url = {url_of(server)!r}")
        assert run(shell, "%tfserve list").column("model") == ["half"]
        np.testing.assert_allclose(run(shell, "%tfserve predict half [[2.0]]"), [[3.0]])
    finally:
        run(shell, "%config TFServeMagics.url = ''")
        server.stop()
    assert "Cannot reach the tfserve server" in fails_quietly(
        shell, f"%config TFServeMagics.url = {url_of(server)!r}\n%tfserve list"
    )
    run(shell, "%config TFServeMagics.url = ''")


def test_embedded_never_without_a_server(shell):
    run(shell, "%config TFServeMagics.embedded = 'never'")
    try:
        assert "no tfserve server found" in fails_quietly(shell, "%tfserve list").lower()
    finally:
        run(shell, "%config TFServeMagics.embedded = 'auto'")


def test_embedded_always_says_it_was_asked_not_that_nothing_was_found(tmp_path):
    from jupyter_tfserve.notebook.api import connect

    previous = embedded.current()
    embedded.stop()
    said = []
    try:
        connect(
            embedded="always",
            rest_port=0,
            grpc_port=0,
            models_root=str(tmp_path),
            announce=said.append,
        )
        assert len(said) == 1
        assert said[0].startswith(
            "tfserve: embedded mode is 'always'; serving in this kernel at http://"
        )
    finally:
        embedded.stop()
        if previous is not None:
            embedded.start(previous.rest_port, previous.grpc_port, previous.models_root, 0.2)


def test_embedded_ports_fall_back_when_taken(tmp_path):
    assert embedded.current() is not None  # the shell's server: restarted below, then restored
    previous = embedded.current()
    embedded.stop()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        info, started = embedded.start(
            rest_port=port, grpc_port=0, models_root=str(tmp_path), enable_batching=True
        )
        try:
            assert started and info.rest_port != port and info.moved == ("REST",)
            assert "REST port taken" in info.banner()
            assert Client(endpoint=info.endpoint()).info()["batching"] is True
            assert embedded.start(rest_port=port)[1] is False  # one per process
        finally:
            embedded.stop()
    embedded.start(previous.rest_port, previous.grpc_port, previous.models_root, 0.2)
