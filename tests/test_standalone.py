"""Black-box tests of the ``tfserve`` command: a real subprocess, real ports, real model directories.

What operators do to a running TF Serving, done while 16 clients keep
sending requests: a new version appears (the swap must lose nothing), a
config reload drops a model, a corrupt version lands next to a good one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
import savedmodels
import waiting
from ports import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 180
TIMEOUT = 60
CLIENTS = 16


# ---------------------------------------------------------------------- helpers


def wait_until(predicate, timeout: float = TIMEOUT, interval: float = 0.05) -> bool:
    """The shared poll, with this module's longer default for whole-process servers."""
    return waiting.wait_until(predicate, timeout, interval)


class Tfserve:
    """``python -m jupyter_tfserve.cli [subcommand] ...`` on a free REST port (gRPC off), stopped with SIGTERM."""

    def __init__(self, args: list[str], log_path: Path, subcommand: tuple[str, ...] = ()):
        self.args = args
        self.subcommand = subcommand
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> Tfserve:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        for _attempt in range(3):  # a free port can be taken between probing and binding
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "jupyter_tfserve.cli",
                        *self.subcommand,
                        "--port=0",
                        f"--rest_api_port={port}",
                        *self.args,
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=REPO_ROOT,
                )
            if wait_until(self._ready_or_dead, STARTUP_TIMEOUT, 0.2) and self.proc.poll() is None:
                return self
            if self.proc.poll() is None:
                self.stop()
                break
        pytest.fail(f"tfserve did not become ready:\n{self.log()}")

    def _ready_or_dead(self) -> bool:
        if self.proc.poll() is not None:
            return True
        try:
            return requests.get(self.url + "/tfserve/api/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            pytest.fail(f"tfserve ignored SIGTERM:\n{self.log()}")

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=TIMEOUT)

    def predict(self, model: str, instances) -> requests.Response:
        body = json.dumps({"instances": instances})
        return requests.post(f"{self.url}/v1/models/{model}:predict", data=body, timeout=TIMEOUT)

    def states(self, model: str) -> dict[str, str]:
        reply = self.get(f"/v1/models/{model}")
        if reply.status_code != 200:
            return {}
        return {s["version"]: s["state"] for s in reply.json()["model_version_status"]}


@pytest.fixture
def launch(tmp_path):
    started: list[Tfserve] = []

    def start(*args: str) -> Tfserve:
        server = Tfserve(list(args), tmp_path / f"tfserve-{len(started)}.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


class Hammer:
    """Closed-loop clients, each on its own keep-alive session, recording every answer in order."""

    def __init__(self, url: str, models: list[str]):
        self.url = url
        self.models = models  # one per client
        self.results: list[list[tuple[int, object]]] = [[] for _ in models]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True)
            for i in range(len(models))
        ]

    def _client(self, index: int) -> None:
        session = requests.Session()
        url = f"{self.url}/v1/models/{self.models[index]}:predict"
        out = self.results[index]
        while not self._stop.is_set():
            try:
                reply = session.post(url, data='{"instances": [1.0]}', timeout=TIMEOUT)
            except requests.RequestException as exc:
                out.append((0, repr(exc)))
                continue
            document = reply.json()
            value = document["predictions"][0] if reply.status_code == 200 else document["error"]
            out.append((reply.status_code, value))

    def count(self, model: str | None = None) -> int:
        return sum(
            len(r) for r, m in zip(self.results, self.models, strict=True) if model in (None, m)
        )

    def __enter__(self) -> Hammer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT)

    def answers(self, model: str) -> list[list[tuple[int, object]]]:
        return [r for r, m in zip(self.results, self.models, strict=True) if m == model]


def copy_model(store_dir: str, base: Path, version: int = 1) -> str:
    shutil.copytree(store_dir, base / str(version))
    return str(base)


def write_config(path: Path, models: dict[str, str]) -> None:
    """Replace a models.config atomically, as config management tools do."""
    text = "model_config_list {\n"
    for name, base in models.items():
        text += f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n'
    text += "}\n"
    staging = path.with_suffix(".tmp")
    staging.write_text(text)
    os.replace(staging, path)


# ---------------------------------------------------------------------- tests
def test_tfserve_demo_exports_and_serves_what_the_readme_promises(tmp_path):
    base = tmp_path / "half_plus_two"
    server = Tfserve([f"--model_base_path={base}"], tmp_path / "demo.log", ("demo",)).start()
    try:
        reply = requests.post(
            server.url + "/v1/models/half_plus_two:predict",
            data='{"instances": [1.0, 2.0, 5.0]}',
            timeout=TIMEOUT,
        )
        assert reply.status_code == 200
        assert reply.json() == {"predictions": [2.5, 3.0, 4.5]}
        assert wait_until(lambda: "Press Ctrl+C to stop." in server.log())
    finally:
        assert server.stop() == 0
    assert (base / "1" / "saved_model.pb").is_file()
    log = server.log()
    assert (
        f"curl -d '{{\"instances\": [1.0, 2.0, 5.0]}}' -X POST {server.url.replace('127.0.0.1', 'localhost')}/v1/models/half_plus_two:predict"
        in log
    )
    # The user sees our lines only: no TensorFlow INFO records from exporting or loading.
    assert "INFO tensorflow" not in log and "INFO absl" not in log, log
    assert not any(line[:1] in "IW" and line[1:5].isdigit() for line in log.splitlines()), log


def test_quickstart_with_the_tfserve_command(launch, model_store, tmp_path):
    base = copy_model(model_store["half_plus_two"], tmp_path / "half_plus_two")
    server = launch("--model_name=half_plus_two", f"--model_base_path={base}")
    reply = requests.post(
        server.url + "/v1/models/half_plus_two:predict",
        data='{"instances": [1.0, 2.0, 5.0]}',
        timeout=TIMEOUT,
    )
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"predictions": [2.5, 3.0, 4.5]}
    assert server.states("half_plus_two") == {"1": "AVAILABLE"}
    assert server.stop() == 0  # SIGTERM is a clean shutdown


def test_version_swap_under_load_loses_no_request(launch, model_store, tmp_path):
    base = tmp_path / "models" / "hpt"
    copy_model(model_store["half_plus_two"], base)
    staged = savedmodels.half_plus_two(tmp_path / "staging", 2, slope=2.0, offset=1.0)  # y(1) = 3
    server = launch(
        "--model_name=hpt", f"--model_base_path={base}", "--file_system_poll_wait_seconds=1"
    )
    with Hammer(server.url, ["hpt"] * CLIENTS) as hammer:
        assert wait_until(lambda: hammer.count() >= 4 * CLIENTS)
        os.rename(staged, base / "2")  # appears atomically, as a finished export
        assert wait_until(lambda: server.states("hpt") == {"2": "AVAILABLE", "1": "END"}), (
            server.states("hpt")
        )
        settled = hammer.count()
        assert wait_until(lambda: hammer.count() >= settled + 4 * CLIENTS)
    answers = [a for client in hammer.answers("hpt") for a in client]
    failures = [a for a in answers if a[0] != 200]
    assert failures == []
    assert {value for _, value in answers} == {2.5, 3.0}
    for client in hammer.answers("hpt"):
        values = [value for _, value in client]
        first_v2 = values.index(3.0) if 3.0 in values else len(values)
        assert set(values[first_v2:]) <= {3.0}, "a client went back to version 1"
        assert values[-1] == 3.0


def test_config_reload_unloads_a_model_under_load(launch, model_store, tmp_path):
    models = {
        name: copy_model(model_store["half_plus_two"], tmp_path / "models" / name)
        for name in ("keep", "drop")
    }
    config = tmp_path / "models.config"
    write_config(config, models)
    server = launch(f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1")
    with Hammer(server.url, ["keep", "drop"] * (CLIENTS // 2)) as hammer:
        assert wait_until(lambda: hammer.count("drop") >= 2 * CLIENTS)
        write_config(config, {"keep": models["keep"]})
        assert wait_until(lambda: server.get("/v1/models/drop").status_code == 404)
        settled = hammer.count("keep")
        assert wait_until(lambda: hammer.count("keep") >= settled + 2 * CLIENTS)
    kept = [a for client in hammer.answers("keep") for a in client]
    assert kept and all(a == (200, 2.5) for a in kept), [a for a in kept if a != (200, 2.5)][:5]
    dropped = [a for client in hammer.answers("drop") for a in client]
    assert {status for status, _ in dropped} == {200, 404}
    for client in hammer.answers("drop"):
        statuses = [status for status, _ in client]
        if 404 in statuses:
            assert set(statuses[statuses.index(404) :]) == {404}, "a dropped model came back"
    assert (404, "Servable not found for request: Latest(drop)") in dropped
    names = [m["name"] for m in server.get("/tfserve/api/models").json()["models"]]
    assert names == ["keep"]


def test_corrupt_version_leaves_the_server_serving(launch, model_store, tmp_path):
    models = {
        name: copy_model(model_store["half_plus_two"], tmp_path / "models" / name)
        for name in ("victim", "bystander")
    }
    config = tmp_path / "models.config"
    write_config(config, models)
    server = launch(
        f"--model_config_file={config}",
        "--file_system_poll_wait_seconds=1",
        "--max_num_load_retries=0",
    )
    with Hammer(server.url, ["victim", "bystander"] * (CLIENTS // 2)) as hammer:
        assert wait_until(lambda: hammer.count() >= 2 * CLIENTS)
        staging = tmp_path / "staging" / "2"
        staging.mkdir(parents=True)
        (staging / "saved_model.pb").write_bytes(b"\x00this is not a SavedModel\xff")
        os.rename(staging, Path(models["victim"]) / "2")

        def failed() -> bool:
            status = server.get("/v1/models/victim").json()["model_version_status"]
            versions = {s["version"]: s for s in status}
            return "2" in versions and versions["2"]["status"]["error_code"] != "OK"

        assert wait_until(failed)
        settled = hammer.count()
        assert wait_until(lambda: hammer.count() >= settled + 2 * CLIENTS)
    assert server.proc.poll() is None
    bystander = [a for client in hammer.answers("bystander") for a in client]
    wrong = [a for a in bystander if a != (200, 2.5)]
    assert bystander and not wrong, wrong[:5]
    # The victim never errs in any other way than "not found": no 5xx, no dropped connection.
    victim = [a for client in hammer.answers("victim") for a in client]
    assert victim and {a for a in victim if a[0] != 404} == {(200, 2.5)}
    status = {
        s["version"]: s for s in server.get("/v1/models/victim").json()["model_version_status"]
    }
    assert status["2"]["state"] == "END" and status["2"]["status"]["error_message"]
    assert server.predict("bystander", [1.0]).json() == {"predictions": [2.5]}
