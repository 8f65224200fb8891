"""Errors for bad deploy and sync input.

Every class derives from ``ValueError`` so a caller can catch bad input as such,
and from ``DeployError`` so the CLI can turn exactly these into a one-line
message and exit code 2 while real bugs keep their traceback. Each one is raised
while planning, before a file is written.
"""

from __future__ import annotations

import re


class DeployError(ValueError):
    """Input that cannot be deployed or synced as given."""

    def cli_message(self) -> str:
        """The message with Python's keyword arguments spelled as command-line flags.

        The library says ``pass storage_uri='s3://...' or pvc='<claim name>'``, which
        is right for ``deploy(...)``; ``tfserve deploy`` and ``%tfserve deploy`` users
        type ``--storage-uri s3://...`` or ``--pvc <claim name>`` instead.
        """
        return _FLAG_WORDS.sub(_as_flag, str(self))


class ConfigError(DeployError):
    """A models.config, batching or monitoring file that does not parse or is inconsistent."""


class UnknownModelError(DeployError):
    """A model name that the config does not list."""


class StorageError(DeployError):
    """A storage location TF Serving cannot read, or none at all."""


class ReplicaError(DeployError):
    """A replica range the autoscaler would refuse (min > max, or below its floor)."""


class ResourceError(DeployError):
    """A CPU or memory quantity Kubernetes would refuse, or a limit below its request."""


class OutputDirError(DeployError):
    """An output directory that already holds files, without ``force``."""


class VersionConflictError(DeployError):
    """A version directory in the sync target whose content differs from the one being served."""


# deploy()'s keyword arguments that its error messages name, and that the CLI spells as dashed flags.
_FLAG_PARAMETERS = (
    "storage_uri",
    "pvc",
    "image",
    "min_replicas",
    "max_replicas",
    "canary_traffic_percent",
    "target_cpu_utilization",
    "intra_op_parallelism",
)
_FLAG_WORDS = re.compile(r"\b(" + "|".join(_FLAG_PARAMETERS) + r")\b(?:=('([^']*)'|\.\.\.))?")


def _as_flag(match: re.Match) -> str:
    flag = "--" + match.group(1).replace("_", "-")
    if match.group(2) is None:
        return flag
    return f"{flag} {match.group(3) if match.group(3) is not None else '...'}"
