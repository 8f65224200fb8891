"""A real ``jupyter server`` with the extension, and a real kernel started through ``/api/sessions``.

The server is a subprocess enabled the way a ``pip install`` enables it (the
package's ``jupyter_server_config.d`` file), serving a model from a
``models.config``. In the kernel, ``discover()`` finds the server and a
prediction round-trips through ``{base_url}tfserve/v1/...``; the model keeps
being served across a kernel restart; stopping Jupyter closes the ports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient
from ports import free_port, port_open

REPO = Path(__file__).resolve().parent.parent
TOKEN = "kernel-test-token"
BASE_URL = "/hub/user/me/"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class JupyterServer:
    """One ``jupyter server`` subprocess with its own runtime, config and root directories."""

    def __init__(self, tmp: Path, *extra_args: str):
        self.tmp = tmp
        self.port, self.grpc_port, self.rest_port = free_port(), free_port(), free_port()
        self.runtime = tmp / "runtime"
        config = tmp / "config" / "jupyter_server_config.d"
        config.mkdir(parents=True)
        # Enabled exactly as the wheel enables it.
        shutil.copy(REPO / "jupyter-config" / "server-config" / "jupyter_tfserve.json", config)
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "JUPYTER_RUNTIME_DIR": str(self.runtime),
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),
            "JUPYTER_DATA_DIR": str(tmp / "data"),
        }
        for name in ("TFSERVE_URL", "TFSERVE_TOKEN", "TFSERVE_INJECTED_URL", "JPY_PARENT_PID"):
            self.env.pop(name, None)
        self.log = open(tmp / "server.log", "w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--ServerApp.allow_root=True",
                "--no-browser",
                f"--port={self.port}",
                f"--ServerApp.token={TOKEN}",
                f"--ServerApp.base_url={BASE_URL}",
                f"--ServerApp.root_dir={tmp}",
                f"--TFServe.grpc_port={self.grpc_port}",
                f"--TFServe.rest_port={self.rest_port}",
                *extra_args,
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
        wait_for(lambda: self._answers("api/status"), 60, "jupyter server to answer")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_URL}"

    @property
    def runtime_file(self) -> Path:
        return self.runtime / f"tfserve-{self.process.pid}.json"

    def request(self, method: str, path: str, body=None, token: bool = True, timeout: float = 30):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"token {TOKEN}"} if token else {}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def _answers(self, path: str) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"jupyter server exited: {self.output()}")
        try:
            return self.request("GET", path, timeout=2)[0] == 200
        except OSError:
            return False

    def output(self) -> str:
        self.log.flush()
        return (self.tmp / "server.log").read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def model_config(tmp: Path, model_store) -> Path:
    base = tmp / "models" / "hpt"
    shutil.copytree(model_store["half_plus_two"], base / "1")
    path = tmp / "models.config"
    path.write_text(
        f'model_config_list {{ config {{ name: "hpt" base_path: "{base}" model_platform: "tensorflow" }} }}'
    )
    return path


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory, model_store):
    tmp = tmp_path_factory.mktemp("jupyter")
    server = JupyterServer(
        tmp,
        f"--TFServe.model_config_file={model_config(tmp, model_store)}",
        f"--TFServe.models_root={tmp / 'models'}",
    )
    try:
        wait_for(
            lambda: (
                server.request("GET", "tfserve/v1/models/hpt")[1]["model_version_status"][0][
                    "state"
                ]
                == "AVAILABLE"
            ),
            120,
            "hpt to load",
        )
        yield server
    finally:
        server.stop()


class Kernel:
    """A kernel the server started for a notebook session, driven over its ZMQ channels."""

    def __init__(self, server: JupyterServer):
        self.server = server
        status, session = server.request(
            "POST",
            "api/sessions",
            {"path": "t.ipynb", "type": "notebook", "name": "t", "kernel": {"name": "python3"}},
        )
        assert status == 201, session
        self.id = session["kernel"]["id"]
        self.client = BlockingKernelClient()
        self.client.load_connection_file(str(server.runtime / f"kernel-{self.id}.json"))
        self.client.start_channels(hb=False)  # the heartbeat reports "dead" until its first beat
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str):
        """Execute ``code``; returns what it printed last, decoded as JSON."""
        printed, errors = [], []

        def hook(message):
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])
            elif message["msg_type"] == "error":
                errors.append("\n".join(message["content"]["traceback"]))

        self.client.execute_interactive(code, output_hook=hook, timeout=60)
        assert not errors, errors[0]
        return json.loads("".join(printed).strip().splitlines()[-1])

    def restart(self) -> None:
        status, _ = self.server.request("POST", f"api/kernels/{self.id}/restart")
        assert status == 200
        self.client.wait_for_ready(timeout=60)

    def close(self) -> None:
        self.client.stop_channels()
        self.server.request("DELETE", f"api/kernels/{self.id}")


@pytest.fixture(scope="module")
def kernel(jupyter):
    kernel = Kernel(jupyter)
    yield kernel
    kernel.close()


DISCOVER_AND_PREDICT = """
import json, os, urllib.request
import jupyter_tfserve
info = jupyter_tfserve.discover()
request = urllib.request.Request(
    info.url + "/v1/models/hpt:predict",
    data=json.dumps({"instances": [[1.0], [2.0], [5.0]]}).encode(),
    headers={**info.headers, "Content-Type": "application/json"},
)
with urllib.request.urlopen(request) as response:
    predictions = json.load(response)["predictions"]
print(json.dumps({
    "url": info.url, "source": info.source, "token": info.token, "pid": info.pid,
    "grpc_target": info.grpc_target, "predictions": predictions, "kernel_pid": os.getpid(),
    "parent": os.environ.get("JPY_PARENT_PID"),
}))
"""


def test_the_extension_is_enabled_by_its_config_file_and_validates(jupyter):
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter_server", "extension", "list"],
        env=jupyter.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)  # no colours
    assert "jupyter_tfserve enabled" in text, text
    assert "jupyter_tfserve 0.1.0 OK" in text, text


def test_runtime_file_names_the_server_and_references_the_token(jupyter):
    info = wait_for(
        lambda: jupyter.runtime_file.exists() and json.loads(jupyter.runtime_file.read_text()),
        30,
        "the runtime file",
    )
    assert info["url"] == f"http://127.0.0.1:{jupyter.port}{BASE_URL}tfserve"
    assert info["token_file"] == str(jupyter.runtime / f"jpserver-{jupyter.process.pid}.json")
    assert TOKEN not in jupyter.runtime_file.read_text()
    assert json.loads(Path(info["token_file"]).read_text())["token"] == TOKEN
    info = wait_for(
        lambda: (
            json.loads(jupyter.runtime_file.read_text())["grpc_port"]
            and json.loads(jupyter.runtime_file.read_text())
        ),
        30,
        "ports in the runtime file",
    )
    assert (info["grpc_port"], info["rest_port"], info["state"]) == (
        jupyter.grpc_port,
        jupyter.rest_port,
        "running",
    )


def test_kernel_discovers_the_server_and_predicts_through_jupyter(jupyter, kernel):
    result = kernel.run(DISCOVER_AND_PREDICT)
    assert result["url"] == f"http://127.0.0.1:{jupyter.port}{BASE_URL}tfserve"
    assert result["source"] == "injected" and result["token"] == TOKEN
    assert result["pid"] == jupyter.process.pid  # completed from the runtime file
    assert result["grpc_target"] == f"127.0.0.1:{jupyter.grpc_port}"
    assert result["predictions"] == [[2.5], [3.0], [4.5]]
    assert result["parent"] == str(jupyter.process.pid)


def test_without_the_environment_the_kernel_finds_its_parent_server(jupyter, kernel):
    result = kernel.run(
        "import json, os, jupyter_tfserve\n"
        "saved = {k: os.environ.pop(k) for k in ('TFSERVE_URL', 'TFSERVE_TOKEN', 'TFSERVE_INJECTED_URL')}\n"
        "info = jupyter_tfserve.discover()\n"
        "os.environ.update(saved)\n"
        f"print(json.dumps({{'source': info.source, 'url': info.url, 'token_ok': info.token == {TOKEN!r}}}))\n"
    )
    assert result == {
        "source": "parent",
        "url": f"http://127.0.0.1:{jupyter.port}{BASE_URL}tfserve",
        "token_ok": True,
    }


def test_models_stay_served_across_a_kernel_restart(jupyter, kernel):
    before = kernel.run(DISCOVER_AND_PREDICT)
    status_before = jupyter.request("GET", "tfserve/v1/models/hpt")[1]
    kernel.restart()
    after = kernel.run(DISCOVER_AND_PREDICT)
    assert after["kernel_pid"] != before["kernel_pid"]  # a new kernel process
    assert after["predictions"] == [[2.5], [3.0], [4.5]]
    assert after["source"] == "injected"  # the restarted kernel keeps the injected environment
    assert jupyter.request("GET", "tfserve/v1/models/hpt")[1] == status_before  # nothing reloaded


def test_standalone_rest_port_serves_outside_clients_with_the_token(jupyter):
    url = f"http://127.0.0.1:{jupyter.rest_port}/v1/models/hpt"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        status = json.load(response)
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


def test_the_curl_line_of_serve_works_pasted_into_a_shell(jupyter, kernel):
    """What %tfserve serve prints runs as printed in a terminal: the token comes from `tfserve token`."""
    printed = kernel.run(
        "import json\nfrom jupyter_tfserve.notebook.magics import TFServeMagics\n"
        "from jupyter_tfserve.notebook.magic.commands import Commands\n"
        "from IPython import get_ipython\n"
        "text = Commands(TFServeMagics(shell=get_ipython()))._serving_text('hpt', 1)\n"
        "print(json.dumps(text.text))"
    )
    curl = (
        next(line for line in printed.splitlines() if line.startswith("curl:"))
        .removeprefix("curl:")
        .strip()
    )
    assert TOKEN not in printed and "$(tfserve token)" in curl
    shell_env = {
        k: v for k, v in jupyter.env.items() if not k.startswith("TFSERVE_")
    }  # a terminal, not a kernel
    shell_env["PATH"] = os.pathsep.join(
        [os.path.dirname(sys.executable), shell_env.get("PATH", "")]
    )
    done = subprocess.run(
        ["bash", "-c", curl], env=shell_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"predictions": [[2.0]]}


def test_stopping_jupyter_closes_ports_and_removes_the_runtime_file(tmp_path):
    server = JupyterServer(tmp_path)
    wait_for(
        lambda: (
            server.runtime_file.exists()
            and json.loads(server.runtime_file.read_text())["state"] == "running"
        ),
        60,
        "the model server to start",
    )
    assert port_open(server.rest_port) and port_open(server.grpc_port)
    assert server.request("POST", "api/shutdown")[0] == 200
    assert server.process.wait(60) == 0  # every non-daemon thread joined
    assert not server.runtime_file.exists()
    assert not port_open(server.rest_port) and not port_open(server.grpc_port)
    assert "tfserve" in server.output()
    server.stop()
