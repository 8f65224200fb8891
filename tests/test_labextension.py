"""The JupyterLab panel: its Jest tests, its install, and a browser test in a real JupyterLab.

The panel's own tests are TypeScript (Jest) and Playwright (galata). This
module runs them as subprocesses, so `python3 -m pytest` tests the whole
project and fails when they fail.

The browser test builds the extension from the current sources and starts a
real ``jupyter lab`` with the real server extension, pointing JupyterLab at the
fresh build (through ``JUPYTER_PATH``) rather than at whatever copy an earlier
``pip install`` left behind. Screenshots of the panel land in
``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ports import free_port

import jupyter_tfserve

ROOT = Path(__file__).resolve().parents[1]
LABEXT = ROOT / "labextension"
BUILD = ROOT / "jupyter_tfserve" / "labextension"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("TFSERVE_CHROMIUM", "/usr/bin/chromium")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _missing(what: str) -> None:
    """On CI a missing tool means a broken install step; elsewhere it is a reason to skip."""
    if os.environ.get("CI"):
        pytest.fail(what)
    pytest.skip(what)


def jlpm(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["jlpm", *args],
        cwd=LABEXT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output_of(result: subprocess.CompletedProcess, tail: int = 8000) -> str:
    return ANSI.sub("", result.stdout + result.stderr)[-tail:]


@pytest.fixture(scope="module")
def node_modules() -> None:
    if shutil.which("node") is None or shutil.which("jlpm") is None:
        _missing("node and jlpm (from jupyterlab) are needed for the panel's tests")
    if not (LABEXT / "node_modules").is_dir():
        _missing(
            "labextension/node_modules is missing: run `jlpm install` in labextension/ (.ci/run does)"
        )


def test_jest_unit_tests(node_modules):
    result = jlpm("jest", "--ci")
    output = output_of(result)
    assert result.returncode == 0, output
    counts = re.search(r"Tests:\s+(\d+) passed, (\d+) total", output)
    assert counts is not None, output
    assert counts.group(1) == counts.group(2) and int(counts.group(2)) > 0, output


def test_lint_passes(node_modules):
    """The panel's sources follow prettier's format and eslint's rules (``jlpm lint`` fixes most)."""
    result = jlpm("lint:check")
    output = output_of(result)
    assert result.returncode == 0, output


def test_labextension_is_installed_and_enabled():
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = output_of(result)
    assert result.returncode == 0, output
    line = rf"jupyter-tfserve v{re.escape(jupyter_tfserve.__version__)}\s+enabled\s+OK"
    assert re.search(line, output), (
        f"`pip install -e .` installs the panel; not listed as enabled:\n{output}"
    )


# ---------------------------------------------------------------------- browser test


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> str:
    """The body of ``url`` once it answers 200; fails early if the server process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-6000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    pytest.fail(f"jupyter lab did not answer {url} within {timeout} s:\n{log.read_text()[-6000:]}")


LAB_CONFIG = """
from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # no token, galata's helper extension, temporary root and workspaces
c.ServerApp.port = {port}
c.ServerApp.allow_root = True
c.ServerApp.base_url = "/lab-base/"
# The panel's requests must pass Jupyter's XSRF check (galata turns it off).
c.ServerApp.disable_check_xsrf = False
c.ServerApp.jpserver_extensions = {{"jupyterlab": True, "jupyter_tfserve": True}}
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.TFServe.models_root = {models!r}
c.TFServe.rest_port = {rest_port}
c.TFServe.grpc_port = {grpc_port}
c.TFServe.server_options = {{"max_num_load_retries": 0}}
"""


@pytest.fixture
def lab(node_modules, tmp_path, model_store):
    """A running ``jupyter lab`` serving the freshly built panel: its URL, model directory, REST port and log."""
    if not os.path.exists(CHROMIUM):
        _missing(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does)")
    build = jlpm("build:prod")
    assert build.returncode == 0, output_of(build)

    models = tmp_path / "models"
    shutil.copytree(model_store["half_plus_two"], models / "half_plus_two" / "1")
    (models / "broken" / "1").mkdir(parents=True)
    (models / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")

    jupyter_path = tmp_path / "jupyter-path"
    (jupyter_path / "labextensions").mkdir(parents=True)
    (jupyter_path / "labextensions" / "jupyter-tfserve").symlink_to(BUILD, target_is_directory=True)
    (tmp_path / "tmp").mkdir()
    port, rest_port = free_port(), free_port()
    config = tmp_path / "jupyter_lab_config.py"
    config.write_text(
        LAB_CONFIG.format(port=port, models=str(models), rest_port=rest_port, grpc_port=free_port())
    )
    env = {
        **os.environ,
        "JUPYTER_PATH": str(jupyter_path),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "TMPDIR": str(tmp_path / "tmp"),  # where galata's configuration makes its folders
    }
    log = tmp_path / "jupyter-lab.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--config", str(config)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/lab-base/"
    try:
        page = wait_for_http(url + "lab", process, log)
        # The page must load the build made above, not an older installed copy.
        entry = json.loads((BUILD / "package.json").read_text())["jupyterlab"]["_build"]["load"]
        assert os.path.basename(entry) in page, (
            "jupyter lab does not serve the fresh build of the panel"
        )
        yield {"url": url, "models": models, "rest_port": rest_port, "log": log}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_panel_in_a_real_browser(lab):
    ARTIFACTS.mkdir(exist_ok=True)
    shots = [ARTIFACTS / "sidebar.png", ARTIFACTS / "sidebar-dark.png"]
    for shot in shots:
        shot.unlink(missing_ok=True)
    env = {
        **os.environ,
        "TFSERVE_LAB_URL": lab["url"],
        "TFSERVE_MODELS_ROOT": str(lab["models"]),
        "TFSERVE_REST_PORT": str(lab["rest_port"]),
        "TFSERVE_ARTIFACTS": str(ARTIFACTS),
        "TFSERVE_CHROMIUM": CHROMIUM,
    }
    result = jlpm("playwright", "test", "--config", "ui-tests/playwright.config.ts", env=env)
    output = output_of(result)
    assert result.returncode == 0, (
        f"{output}\n--- jupyter lab log ---\n{lab['log'].read_text()[-6000:]}"
    )
    assert re.search(r"\b4 passed\b", output), output
    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no screenshot at {shot}"
