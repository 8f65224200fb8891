"""Every server option is declared once (core/options.py); the CLI, Jupyter and the magic derive from it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from jupyter_tfserve.cli import build_parser, options_from_args
from jupyter_tfserve.core.options import (
    ServerOptions,
    batching_problem,
    flag_options,
    jupyter_options,
    magic_options,
)
from jupyter_tfserve.jupyter.app import TFServe


def test_the_command_line_defaults_are_the_options_defaults():
    parsed = options_from_args(build_parser().parse_args([]))
    assert parsed == ServerOptions()


def test_every_flag_sets_the_field_of_its_name_and_every_field_with_help_is_a_flag():
    fields = {f.name: f for f in dataclasses.fields(ServerOptions)}
    flags = {spec.name for spec in flag_options()}
    assert flags <= set(fields)
    assert flags == {name for name, f in fields.items() if f.metadata["help"]}
    parser_flags = {s for a in build_parser()._actions for s in a.option_strings}
    assert {f"--{name}" for name in flags} <= parser_flags


def test_jupyter_traits_come_from_the_options_under_their_names():
    traits = TFServe.class_traits(config=True)
    for spec in jupyter_options():
        trait = traits[spec.name]
        assert (trait.default_value, trait.help) == (spec.default, spec.help), spec.name
    names = {spec.name: spec.option for spec in jupyter_options()}
    assert names["grpc_port"] == "port" and names["rest_port"] == "rest_api_port"
    assert traits["rest_port"].default_value == 8501  # Jupyter opens TF Serving's REST port


def test_the_magic_lists_its_embedded_server_settings():
    specs = {spec.name: spec for spec in magic_options()}
    assert set(specs) == {"grpc_port", "rest_port", "poll_seconds", "enable_batching"}
    assert specs["poll_seconds"].option == "file_system_poll_wait_seconds"
    assert (specs["poll_seconds"].type, specs["poll_seconds"].default) == (float, 1.0)
    assert all(spec.help for spec in specs.values())


def test_one_batching_check_with_tf_servings_wording():
    assert batching_problem(ServerOptions(batching_parameters_file="b.pbtxt")) == (
        "server_options.batching_parameters_file is set without setting "
        "server_options.enable_batching to true."
    )
    assert (
        batching_problem(ServerOptions(batching_parameters_file="b", enable_batching=True)) is None
    )


def test_declaring_options_loads_nothing_of_the_engine():
    code = (
        "import sys, jupyter_tfserve.core.options, jupyter_tfserve.jupyter.option_traits;"
        "print(sorted(m for m in ('tensorflow', 'google.protobuf', 'numpy', 'grpc') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
