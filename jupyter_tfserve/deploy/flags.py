"""The deploy flags, declared once: ``tfserve deploy`` and ``%tfserve deploy`` both parse them.

Their destinations are :func:`~.options.make_options`' settings, so parsed flags
become one :class:`~.options.DeployOptions`. Cheap to import (the magic builds
its parser when it loads): the manifest writers load when a deploy runs.
"""

from __future__ import annotations

import argparse

from .options import SETTINGS, TARGETS, DeployOptions, make_options
from .report import DeployReport


def _intra_op(value: str):
    if value == "auto":
        return "auto"
    if value in ("none", "0"):
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use auto, none or a positive integer") from None


def add_deploy_arguments(parser: argparse.ArgumentParser, text=str) -> None:
    """The deploy flags, declared once for ``tfserve deploy`` and ``%tfserve deploy``.

    ``text`` converts string values (the magic takes the quotes off). The model
    source (a config file, or what a live server serves) is the caller's.
    """
    add = parser.add_argument
    add("names", nargs="*", metavar="NAME", type=text, help="models to deploy (default: all)")
    add(
        "--target",
        choices=TARGETS,
        default="k8s",
        help="plain Kubernetes objects or KServe InferenceServices",
    )
    add("--out", "-o", type=text, required=True, help="output directory")
    add("--storage-uri", type=text, help="s3://, gs:// or hdfs:// URI holding <model>/<version>")
    add("--pvc", type=text, help="PersistentVolumeClaim holding <model>/<version>")
    add("--min-replicas", type=int, default=1, help="fewest pods the autoscaler keeps (default 1)")
    add("--max-replicas", type=int, default=3, help="most pods the autoscaler starts (default 3)")
    add("--cpu", type=text, default="1", help="CPU request (default 1)")
    add("--memory", type=text, default="2Gi", help="memory request (default 2Gi)")
    add("--cpu-limit", type=text, help="default: the request")
    add("--memory-limit", type=text, help="default: the request")
    add(
        "--intra-op-parallelism",
        type=_intra_op,
        default="auto",
        help="auto (match the CPU limit), none, or a thread count",
    )
    add(
        "--target-cpu-utilization",
        type=int,
        default=70,
        help="CPU use (%% of the request) the autoscaler aims for (default 70)",
    )
    add(
        "--batching_parameters_file",
        "--batching-parameters-file",
        dest="batching_parameters_file",
        type=text,
        help="BatchingParameters text proto: the pods serve with --enable_batching and these",
    )
    add(
        "--monitoring_config_file",
        "--monitoring-config-file",
        dest="monitoring_config_file",
        type=text,
        help="MonitoringConfig text proto: the pods expose Prometheus metrics as it says",
    )
    add("--name", type=text, default="tfserve", help="name of the Kubernetes objects")
    add(
        "--namespace",
        type=text,
        help="Kubernetes namespace of the objects (default: kubectl's current one)",
    )
    add("--image", type=text, help="default: tensorflow/serving matching the installed TensorFlow")
    add(
        "--canary-traffic-percent",
        type=int,
        default=10,
        help="KServe: share of requests a new revision gets first (default 10)",
    )
    add(
        "--client-label",
        type=text,
        default="tfserve-client=true",
        help="key=value: only pods with this label may reach the server's ports (NetworkPolicy)",
    )
    add("--sync-target", type=text, help="where the sync command copies to (the mounted volume)")
    add("--force", action="store_true", help="write into a non-empty directory")


def options_from_args(args: argparse.Namespace) -> DeployOptions:
    """The checked :class:`DeployOptions` of parsed deploy flags (their dests are its settings)."""
    return make_options(**{name: getattr(args, name) for name in SETTINGS})


def deploy_from_args(config, args: argparse.Namespace, **extra) -> DeployReport:
    """:func:`deploy` as the parsed flags ask; ``extra`` adds what the caller knows (served versions)."""
    from .generate import deploy

    return deploy(
        config,
        out_dir=args.out,
        models=args.names or None,
        batching=args.batching_parameters_file,
        monitoring=args.monitoring_config_file,
        sync_target=args.sync_target,
        force=args.force,
        options=options_from_args(args),
        **extra,
    )
