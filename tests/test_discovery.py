"""discover() and list_servers(): the resolution order, token references, stale runtime files.

Runtime files are written by the extension's own writer into a real runtime
directory; "live" servers are real processes (this one, a sleeping child), and
a stale file names the pid of a child that has exited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jupyter_tfserve import cli, discover, list_servers
from jupyter_tfserve.client.discovery import ENV_INJECTED_URL, ENV_TOKEN, ENV_URL, runtime_file_path
from jupyter_tfserve.jupyter.runtime import KernelEnvironment, write_runtime_file


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """An empty Jupyter runtime dir and an environment with no discovery hints."""
    directory = tmp_path / "runtime"
    directory.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(directory))
    for name in (ENV_URL, ENV_TOKEN, ENV_INJECTED_URL, "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    return directory


@pytest.fixture
def other_process():
    """A live process that is not us (stands for a second Jupyter server)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child.pid
    child.kill()
    child.wait()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def publish(directory, pid: int, port: int, token: str = "", **extra) -> str:
    """Write what the extension writes: Jupyter's jpserver file (holding the token) and ours (naming it)."""
    token_file = directory / f"jpserver-{pid}.json"
    token_file.write_text(json.dumps({"pid": pid, "token": token, "port": port}))
    path = runtime_file_path(pid, str(directory))
    write_runtime_file(
        path,
        {
            "pid": pid,
            "url": f"http://127.0.0.1:{port}/tfserve",
            "jupyter_url": f"http://127.0.0.1:{port}/",
            "base_url": "/",
            "token_file": str(token_file),
            "host": "127.0.0.1",
            "rest_port": 0,
            "grpc_port": 0,
            "models_root": str(directory / "models"),
            **extra,
        },
    )
    return path


def test_nothing_running_finds_nothing(runtime):
    assert discover() is None
    assert list_servers() == []


def test_explicit_arguments_win(runtime, monkeypatch):
    publish(runtime, os.getpid(), 9001, token="t1")
    monkeypatch.setenv(ENV_URL, "http://127.0.0.1:9002/tfserve")
    found = discover("http://elsewhere:1234/tfserve/", "secret")
    assert (found.url, found.token, found.source) == (
        "http://elsewhere:1234/tfserve",
        "secret",
        "explicit",
    )
    assert found.headers == {"Authorization": "token secret"}


def test_user_environment_beats_runtime_files(runtime, monkeypatch):
    publish(runtime, os.getpid(), 9001, token="t1")
    monkeypatch.setenv(ENV_URL, "http://127.0.0.1:9002/tfserve")
    monkeypatch.setenv(ENV_TOKEN, "mine")
    found = discover()
    assert (found.url, found.token, found.source) == (
        "http://127.0.0.1:9002/tfserve",
        "mine",
        "explicit",
    )


def test_injected_environment_is_labelled_and_completed_from_the_runtime_file(runtime, monkeypatch):
    publish(runtime, os.getpid(), 9001, token="t1", grpc_port=8500, rest_port=8501)
    monkeypatch.setenv(ENV_URL, "http://127.0.0.1:9001/tfserve")
    monkeypatch.setenv(ENV_INJECTED_URL, "http://127.0.0.1:9001/tfserve")
    monkeypatch.setenv(ENV_TOKEN, "t1")
    found = discover()
    assert found.source == "injected"
    assert (found.pid, found.grpc_target, found.rest_port) == (os.getpid(), "127.0.0.1:8500", 8501)


def test_parent_pid_picks_the_server_that_started_the_kernel(runtime, monkeypatch, other_process):
    publish(runtime, os.getpid(), 9001, token="t1")
    publish(runtime, other_process, 9002, token="t2")
    assert discover() is None  # two servers and no hint: ambiguous
    monkeypatch.setenv("JPY_PARENT_PID", str(other_process))
    found = discover()
    assert (found.url, found.token, found.source) == (
        "http://127.0.0.1:9002/tfserve",
        "t2",
        "parent",
    )


def test_the_only_server_is_found_and_its_token_read_through_the_reference(runtime):
    path = publish(runtime, os.getpid(), 9001, token="abc")
    assert "abc" not in open(path).read()  # a reference, not a copy
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    found = discover()
    assert (found.url, found.token, found.source, found.pid) == (
        "http://127.0.0.1:9001/tfserve",
        "abc",
        "only",
        os.getpid(),
    )


def test_stale_and_broken_files_are_ignored_and_stale_ones_removed(runtime, monkeypatch):
    stale = publish(runtime, dead_pid(), 9003)
    broken = runtime / "tfserve-12345678.json"
    broken.write_text("{not json")
    monkeypatch.setenv("JPY_PARENT_PID", os.path.basename(stale)[len("tfserve-") : -len(".json")])
    assert discover() is None
    assert not os.path.exists(stale)
    assert broken.exists()  # unreadable files are skipped, not deleted: they may be being written
    live = publish(runtime, os.getpid(), 9001)
    assert [s.runtime_file for s in list_servers(with_models=False)] == [live]


def test_unreachable_server_is_listed_without_models(runtime):
    publish(runtime, os.getpid(), 9)  # discard port: nothing answers
    (server,) = list_servers(timeout=0.5)
    assert server.url == "http://127.0.0.1:9/tfserve" and server.models is None


def test_kernel_environment_keeps_a_user_address_and_withdraws_its_own(monkeypatch):
    for name in (ENV_URL, ENV_TOKEN, ENV_INJECTED_URL):
        monkeypatch.delenv(name, raising=False)
    env = KernelEnvironment()
    assert env.inject("http://127.0.0.1:1/tfserve", "tok")
    assert (os.environ[ENV_URL], os.environ[ENV_TOKEN]) == ("http://127.0.0.1:1/tfserve", "tok")
    env.withdraw()
    assert ENV_URL not in os.environ and ENV_TOKEN not in os.environ
    monkeypatch.setenv(ENV_URL, "http://user-choice/tfserve")
    assert not KernelEnvironment().inject("http://127.0.0.1:1/tfserve", "tok")
    assert os.environ[ENV_URL] == "http://user-choice/tfserve"


# ---------------------------------------------------------------------- tfserve token
def token_command(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["token", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_tfserve_token_prints_the_token_of_the_server_found(runtime, capsys):
    publish(runtime, os.getpid(), 9001, token="t1")
    assert token_command(capsys) == (0, "t1\n", "")


def test_tfserve_token_follows_the_kernel_environment(runtime, capsys, monkeypatch):
    monkeypatch.setenv(ENV_URL, "http://127.0.0.1:9002/tfserve")
    monkeypatch.setenv(ENV_TOKEN, "from-env")
    assert token_command(capsys) == (0, "from-env\n", "")


def test_tfserve_token_with_several_servers_asks_for_url_and_picks_by_any_port(
    runtime, capsys, other_process
):
    publish(runtime, os.getpid(), 9001, token="t1")
    publish(runtime, other_process, 9003, token="t3", rest_port=8601, grpc_port=8600)
    code, out, err = token_command(capsys)
    assert (code, out) == (1, "")
    assert err.startswith("tfserve token: 2 Jupyter servers with jupyter-tfserve are running (")
    assert err.rstrip().endswith("): pass --url")
    for address in ("http://127.0.0.1:9003/lab", "localhost:8601", "127.0.0.1:8600"):
        assert token_command(capsys, "--url", address) == (0, "t3\n", "")
    assert token_command(capsys, "--url", "http://127.0.0.1:9001/") == (0, "t1\n", "")
    code, out, err = token_command(capsys, "--url", "127.0.0.1:1")
    assert (code, err) == (
        1,
        "tfserve token: no running Jupyter server with jupyter-tfserve answers at 127.0.0.1:1\n",
    )


def test_tfserve_token_with_nothing_running_says_so(runtime, capsys):
    assert token_command(capsys) == (
        1,
        "",
        "tfserve token: no Jupyter server with jupyter-tfserve is running on this machine\n",
    )
