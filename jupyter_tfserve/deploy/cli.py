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
from .generate import deploy
from .options import TARGETS
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


def _intra_op(value: str):
    if value == "auto":
        return "auto"
    if value in ("none", "0"):
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use auto, none or a positive integer") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfserve", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    d = commands.add_parser("deploy", help="write Kubernetes or KServe manifests (applies nothing)")
    d.add_argument("names", nargs="*", metavar="NAME", help="models to deploy (default: all)")
    _add_model_source(d)
    d.add_argument(
        "--target",
        choices=TARGETS,
        default="k8s",
        help="plain Kubernetes objects or KServe InferenceServices",
    )
    d.add_argument("--out", "-o", required=True, help="output directory")
    d.add_argument("--storage-uri", help="s3://, gs:// or hdfs:// URI holding <model>/<version>")
    d.add_argument("--pvc", help="PersistentVolumeClaim holding <model>/<version>")
    d.add_argument(
        "--min-replicas", type=int, default=1, help="fewest pods the autoscaler keeps (default 1)"
    )
    d.add_argument(
        "--max-replicas", type=int, default=3, help="most pods the autoscaler starts (default 3)"
    )
    d.add_argument("--cpu", default="1", help="CPU request (default 1)")
    d.add_argument("--memory", default="2Gi", help="memory request (default 2Gi)")
    d.add_argument("--cpu-limit", help="default: the request")
    d.add_argument("--memory-limit", help="default: the request")
    d.add_argument(
        "--intra-op-parallelism",
        type=_intra_op,
        default="auto",
        help="auto (match the CPU limit), none, or a thread count",
    )
    d.add_argument(
        "--target-cpu-utilization",
        type=int,
        default=70,
        help="CPU use (%% of the request) the autoscaler aims for (default 70)",
    )
    d.add_argument(
        "--batching_parameters_file",
        "--batching-parameters-file",
        dest="batching_parameters_file",
        help="BatchingParameters text proto: the pods serve with --enable_batching and these",
    )
    d.add_argument(
        "--monitoring_config_file",
        "--monitoring-config-file",
        dest="monitoring_config_file",
        help="MonitoringConfig text proto: the pods expose Prometheus metrics as it says",
    )
    d.add_argument("--name", default="tfserve", help="name of the Kubernetes objects")
    d.add_argument(
        "--namespace", help="Kubernetes namespace of the objects (default: kubectl's current one)"
    )
    d.add_argument("--image", help="default: tensorflow/serving matching the installed TensorFlow")
    d.add_argument(
        "--canary-traffic-percent",
        type=int,
        default=10,
        help="KServe: share of requests a new revision gets first (default 10)",
    )
    d.add_argument(
        "--client-label",
        default="tfserve-client=true",
        help="key=value: only pods with this label may reach the server's ports (NetworkPolicy)",
    )
    d.add_argument("--sync-target", help="where the sync command copies to (the mounted volume)")
    d.add_argument("--force", action="store_true", help="write into a non-empty directory")

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
            report = deploy(
                source,
                out_dir=args.out,
                target=args.target,
                models=args.names or None,
                storage_uri=args.storage_uri,
                pvc=args.pvc,
                min_replicas=args.min_replicas,
                max_replicas=args.max_replicas,
                cpu=args.cpu,
                memory=args.memory,
                cpu_limit=args.cpu_limit,
                memory_limit=args.memory_limit,
                intra_op_parallelism=args.intra_op_parallelism,
                target_cpu_utilization=args.target_cpu_utilization,
                batching=args.batching_parameters_file,
                monitoring=args.monitoring_config_file,
                name=args.name,
                namespace=args.namespace,
                image=args.image,
                canary_traffic_percent=args.canary_traffic_percent,
                client_label=args.client_label,
                sync_target=args.sync_target,
                force=args.force,
            )
        else:
            report = sync(source, args.target_dir, models=args.names or None, force=args.force)
    except DeployError as exc:
        print(f"tfserve {args.command}: error: {exc.cli_message()}", file=sys.stderr)
        return 2
    print(report)
    return 0
