"""One notebook, executed with nbclient in a real kernel, in both modes.

* embedded: no Jupyter server to find, so ``%tfserve`` serves from the kernel;
* extension: a real ``jupyter server`` with the extension is running, the
  kernel finds it through its runtime file, and the same cells export into the
  server's ``models_root`` and serve through ``{base_url}tfserve/``.

The cells are what a user types; the checks read the cells' real outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from nbclient import NotebookClient
from notebook_servers import DISCOVERY_ENV

from jupyter_tfserve.ports import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "modes-test-token"

CELLS = [
    "%load_ext jupyter_tfserve\n%config TFServeMagics.rest_port = 0\n%config TFServeMagics.grpc_port = 0\n"
    "%config TFServeMagics.progress = 'text'",
    "import numpy as np, keras\n"
    "model = keras.Sequential([keras.Input((3,), name='x'), keras.layers.Dense(2, name='y')])\n"
    "x = np.random.default_rng(0).random((4, 3)).astype('float32')",
    "%tfserve export model --name demo --sample x",
    "%tfserve serve demo",
    "preds = %tfserve predict demo x\nprint('max diff', float(np.abs(preds - model(x).numpy()).max()))",
    "%tfserve status",
    "%tfserve list",
    "board = %tfserve dashboard\nboard",
]


def run_cells(tmp_path, cells: list[str]):
    """The executed notebook of these cells, as it would be saved."""
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells]
    )
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return notebook


def execute(tmp_path) -> list[str]:
    """Run the notebook; the text of each cell's outputs (stdout, text/plain results, widget model ids)."""
    notebook = run_cells(tmp_path, CELLS)
    texts = []
    for cell in notebook.cells:
        parts = []
        for output in cell.outputs:
            if output.output_type == "stream":
                parts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                parts.append(output.data.get("text/plain", ""))
                widget = output.data.get("application/vnd.jupyter.widget-view+json")
                if widget:
                    parts.append(f"widget:{widget['model_id']}")
        texts.append("".join(parts))
    return texts


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """The environment the kernel inherits: this checkout importable, no server to find, models under tmp."""
    for name in DISCOVERY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("TFSERVE_MODELS_ROOT", str(tmp_path / "models"))
    return tmp_path


# What TensorFlow prints when it starts (absl's banner, oneDNN, CUDA probing), in any cell of any mode.
TF_START_UP = ("absl::InitializeLog()", "oneDNN custom operations", "cuda drivers", "cuInit")


def check_common(texts: list[str], models_root: str) -> None:
    assert not [m for m in TF_START_UP if m in "".join(texts)], "".join(texts)
    assert f"Exported demo version 1 to {os.path.join(models_root, 'demo', '1')}" in texts[2]
    assert "parity check on the sample passed" in texts[2]
    assert "Serving demo version 1" in texts[3]
    diff = float(texts[4].split("max diff")[1])
    assert diff <= 1e-5
    assert "demo" in texts[6] and "latest:1" in texts[6]
    assert "widget:" in texts[7]  # the dashboard is a real widget in a kernel


def test_embedded_mode(kernel_env):
    texts = execute(kernel_env)
    models_root = str(kernel_env / "models")
    check_common(texts, models_root)
    assert "serving in this kernel at http://127.0.0.1:" in texts[3]
    assert "/v1/models/demo:predict" in texts[3] and "gRPC" not in texts[3]
    assert "embedded in this kernel" in texts[5]


def test_saved_progress_widgets_read_as_one_line_of_text(kernel_env):
    """Reopened without widget state (GitHub, a closed kernel), a progress bar reads as how its step ended."""
    notebook = run_cells(
        kernel_env, [CELLS[0].replace("'text'", "'widget'"), CELLS[1], CELLS[2], CELLS[3]]
    )
    fallbacks = [
        output.data["text/plain"]
        for cell in notebook.cells
        for output in cell.outputs
        if output.output_type == "display_data"
        and "application/vnd.jupyter.widget-view+json" in output.data
    ]
    assert fallbacks == ["export demo: version 1", "serve demo: version 1 AVAILABLE"]


@pytest.fixture
def jupyter_server(kernel_env):
    """``jupyter server`` with the extension enabled as the wheel enables it, sharing the kernel's runtime dir."""
    tmp = kernel_env
    config = tmp / "config" / "jupyter_server_config.d"
    config.mkdir(parents=True)
    shutil.copy(
        os.path.join(REPO, "jupyter-config", "server-config", "jupyter_tfserve.json"), config
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_DATA_DIR": str(tmp / "data"),
    }
    port, grpc_port, rest_port = free_port(), free_port(), free_port()
    log = open(tmp / "jupyter.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--ServerApp.allow_root=True",
            "--no-browser",
            f"--port={port}",
            f"--ServerApp.token={TOKEN}",
            f"--ServerApp.root_dir={tmp}",
            f"--TFServe.models_root={tmp / 'server_models'}",
            f"--TFServe.grpc_port={grpc_port}",
            f"--TFServe.rest_port={rest_port}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    runtime_file = tmp / "runtime" / f"tfserve-{process.pid}.json"

    def running() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"jupyter server exited: {(tmp / 'jupyter.log').read_text()}")
        try:
            return json.loads(runtime_file.read_text()).get("state") == "running"
        except (OSError, ValueError):
            return False

    deadline = time.monotonic() + 120
    try:
        while not running():
            assert time.monotonic() < deadline, "the extension never published its runtime file"
            time.sleep(0.1)
        yield {
            "url": f"http://127.0.0.1:{port}/tfserve",
            "rest_port": rest_port,
            "grpc_port": grpc_port,
            "models_root": str(tmp / "server_models"),
        }
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_against_jupyter_with_the_extension(kernel_env, jupyter_server):
    texts = execute(kernel_env)
    check_common(texts, jupyter_server["models_root"])
    assert "serving in this kernel" not in "".join(texts)
    assert f"REST:  {jupyter_server['url']}/v1/models/demo:predict" in texts[3]
    assert (
        f"REST:  http://127.0.0.1:{jupyter_server['rest_port']}/v1/models/demo:predict  (standalone port)"
        in texts[3]
    )
    assert f"gRPC:  127.0.0.1:{jupyter_server['grpc_port']}" in texts[3]
    assert "server (only)" in texts[5]
    # The model lives in the Jupyter server: it answers there, with the notebook gone.
    request = urllib.request.Request(
        f"{jupyter_server['url']}/v1/models/demo", headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        status = json.loads(response.read())
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
