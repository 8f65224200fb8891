"""What ``tfserve`` says when a command cannot run: one line that names the fix, before any work is done.

Each case runs the real command (a subprocess where its start-up matters,
``main`` in-process otherwise) against real sockets.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from notebook_servers import isolate_discovery
from ports import free_port

from jupyter_tfserve.bench import cli as bench_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tfserve(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run(
        [sys.executable, "-m", "jupyter_tfserve.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def listener():
    """A port this test process listens on: 'taken', with a known owner."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("typed", "meant"), [("bnech", "bench"), ("dmeo", "demo"), ("deplyo", "deploy")]
)
def test_a_mistyped_subcommand_gets_one_line_with_the_command_meant(typed, meant):
    done = tfserve(typed, "mnist")
    assert done.returncode == 2
    assert done.stderr == f"tfserve: unknown command {typed!r} — did you mean {meant!r}?\n"
    assert done.stdout == ""


def test_a_word_that_is_no_command_lists_the_commands():
    done = tfserve("frobnicate")
    assert (
        done.stderr
        == "tfserve: unknown command 'frobnicate' (commands: demo, deploy, sync, bench, token)\n"
    )


def test_a_taken_rest_port_is_named_with_its_flag_and_owner(listener, tmp_path):
    done = tfserve(f"--rest_api_port={listener}", "--port=0", f"--model_base_path={tmp_path}")
    assert done.returncode == 1
    line = done.stderr.strip()
    assert "\n" not in line
    assert line.startswith(
        f"tfserve: port {listener} (--rest_api_port) is already in use by pid {os.getpid()} ("
    )
    assert line.endswith("): stop that, or pick another port with --rest_api_port=PORT")
    assert "Exporting HTTP/REST API" not in done.stdout


def test_demo_says_the_grpc_port_is_taken_before_exporting_anything(listener, tmp_path):
    base = tmp_path / "half_plus_two"
    done = tfserve(
        "demo", f"--port={listener}", f"--rest_api_port={free_port()}", f"--model_base_path={base}"
    )
    assert done.returncode == 2
    assert f"port {listener} (--port) is already in use" in done.stderr
    assert "pick another port with --port=PORT" in done.stderr
    assert "Exporting" not in done.stdout and not base.exists()


def test_bench_without_a_server_tries_tf_servings_port_and_names_url(monkeypatch, tmp_path, capsys):
    assert bench_cli.DEFAULT_URL == "http://localhost:8501"
    isolate_discovery(monkeypatch, tmp_path)
    closed = f"http://127.0.0.1:{free_port()}"  # 8501 itself may be busy on a shared machine
    monkeypatch.setattr(bench_cli, "DEFAULT_URL", closed)
    assert bench_cli.main(["mnist", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"tfserve bench: no model server found: none was discovered and nothing answers at {closed} "
        "(TF Serving's REST port); start one, or pass --url http://HOST:PORT\n"
    )


# ---------------------------------------------------------------------- help
def help_of(capsys, main, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_tfserve_help_lists_the_subcommands_first_with_examples(capsys):
    from jupyter_tfserve.cli import SUBCOMMANDS, main

    text = help_of(capsys, main, ["--help"])
    assert text.splitlines()[0] == "usage: tfserve [SUBCOMMAND ...] | tfserve [--flag=value ...]"
    listed = text.index("subcommands"), text.index("examples:"), text.index("options:")
    assert listed == tuple(sorted(listed))  # subcommands, then examples, then the server's flags
    section = text[listed[0] : listed[1]].splitlines()[1:]
    assert sorted(line.split()[0] for line in section if line.strip()) == sorted(SUBCOMMANDS)
    assert "  tfserve demo\n" in text and "--model_base_path=/models/mnist" in text


def test_demo_help_shows_only_the_demos_options(capsys):
    from jupyter_tfserve.demo import main

    text = help_of(capsys, main, ["--help"])
    assert "--rest_api_port" in text and "--model_base_path" in text
    for unrelated in (
        "--model_config_file",
        "--ssl_config_file",
        "--grpc_channel_arguments",
        "subcommands",
    ):
        assert unrelated not in text


def test_every_deploy_and_sync_option_has_help():
    import argparse

    from jupyter_tfserve.deploy.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        silent = [a.option_strings or a.dest for a in parser._actions if not a.help]
        assert not silent, f"tfserve {name}: options without help: {silent}"
