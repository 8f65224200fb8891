"""``tfserve deploy`` and ``tfserve sync``: argparse over :func:`deploy` and :func:`sync`.

The model flags are spelled as tensorflow_model_server spells them
(``--model_config_file``, ``--model_name``/``--model_base_path``,
``--batching_parameters_file``, ``--monitoring_config_file``), so the command
line that starts the server locally also describes what to deploy. Dashed
spellings are accepted too. ``main`` returns an exit code instead of exiting,
so the ``tfserve`` entry point can dispatch to it.
"""

from __future__ import annotations

import argparse
import sys

from .errors import DeployError
from .flags import add_deploy_arguments, deploy_from_args
from .syncing import sync


def _add_model_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model_config_file",
        "--model-config-file",
        dest="model_config_file",
        help="models.config in TF Serving's text format",
    )
    parser.add_argument(
        "--model_name",
        "--model-name",
        dest="model_name",
        help="single-model form, with --model_base_path",
    )
    parser.add_argument(
        "--model_base_path",
        "--model-base-path",
        dest="model_base_path",
        help="the model's directory of version directories (single-model form)",
    )


def _model_source(args, parser: argparse.ArgumentParser):
    if args.model_config_file and (args.model_name or args.model_base_path):
        parser.error("give --model_config_file or --model_name/--model_base_path, not both")
    if args.model_config_file:
        return args.model_config_file
    if args.model_base_path:
        return {args.model_name or "default": args.model_base_path}
    parser.error("give --model_config_file, or --model_base_path (with --model_name)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfserve", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    d = commands.add_parser("deploy", help="write Kubernetes or KServe manifests (applies nothing)")
    add_deploy_arguments(d)
    _add_model_source(d)

    s = commands.add_parser("sync", help="copy the served version directories, with checksums")
    s.add_argument("target_dir", metavar="TARGET", help="directory or mounted volume")
    s.add_argument("names", nargs="*", metavar="NAME", help="models to copy (default: all)")
    _add_model_source(s)
    s.add_argument("--force", action="store_true", help="replace versions whose content differs")
    return parser


def main(argv: list[str]) -> int:
    """Runs ``deploy ...`` or ``sync ...``; 0 on success, 2 on bad input."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        source = _model_source(args, parser)
    except SystemExit as exc:  # argparse's usage errors and --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.command == "deploy":
            report = deploy_from_args(source, args)
        else:
            report = sync(source, args.target_dir, models=args.names or None, force=args.force)
    except DeployError as exc:
        print(f"tfserve {args.command}: error: {exc.cli_message()}", file=sys.stderr)
        return 2
    print(report)
    return 0
