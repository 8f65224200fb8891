"""The file-system source: which versions exist under a base path, and which of them to serve.

TF Serving's layout is the contract shared with every exporter and with the
official server: numeric version directories (leading zeros allowed) under an
absolute ``base_path``. The version policy picks the aspired subset.

A version directory can be a symlink, and it can be added or retargeted at any
time, so where it leads is checked at every poll: ``list_versions`` with
``admit`` resolves each one and leaves out those ``admit`` refuses (a version
outside the model roots is never served, however it got there).
"""

from __future__ import annotations

import os
from collections.abc import Callable

_INT64_MAX = 2**63 - 1


def parse_version(name: str) -> int | None:
    """A directory name is a version when it parses as a non-negative int64."""
    if not name or not name.isascii() or not name.isdigit():
        return None
    value = int(name)
    return value if value <= _INT64_MAX else None


def list_versions(base_path: str, admit: Callable[[str], bool] | None = None) -> dict[int, str]:
    """Version number -> directory. Raises ``FileNotFoundError`` when base_path is missing.

    With ``admit``, each directory is resolved (``..`` and symlinks) and kept
    only when ``admit(real_path)`` holds; the resolved path is what is returned
    and later loaded, so a link retargeted after this check is not followed.
    """
    names: dict[int, str] = {}
    with os.scandir(base_path) as entries:
        for entry in entries:
            version = parse_version(entry.name)
            if version is None or not entry.is_dir():
                continue
            # "001" and "1" are the same version; keep the first seen deterministically.
            if version not in names or entry.name < names[version]:
                names[version] = entry.name
    versions = {v: os.path.join(base_path, name) for v, name in names.items()}
    if admit is None:
        return versions
    resolved = {v: os.path.realpath(path) for v, path in versions.items()}
    return {v: real for v, real in resolved.items() if admit(real)}


def aspired_versions(available: dict[int, str], policy) -> dict[int, str]:
    """Apply a ``ServableVersionPolicy`` (latest N by default, all, or specific) to what exists."""
    choice = policy.WhichOneof("policy_choice") if policy is not None else None
    if choice == "all":
        return dict(available)
    if choice == "specific":
        wanted = set(policy.specific.versions)
        return {v: p for v, p in available.items() if v in wanted}
    num = policy.latest.num_versions if choice == "latest" else 1
    num = num or 1
    newest = sorted(available, reverse=True)[:num]
    return {v: available[v] for v in newest}


def describe_policy(policy) -> str:
    """A short human form of a version policy, for logs, lists and the management API."""
    choice = policy.WhichOneof("policy_choice") if policy is not None else None
    if choice == "all":
        return "all"
    if choice == "specific":
        return "specific:" + ",".join(str(v) for v in policy.specific.versions)
    num = policy.latest.num_versions if choice == "latest" else 1
    return f"latest:{num or 1}"


def parse_policy(text: str):
    """Inverse of :func:`describe_policy` (``latest:2``, ``all``, ``specific:1,2``) for CLIs and APIs."""
    from tensorflow_serving.config import file_system_storage_path_source_pb2 as fs

    from .status import invalid_argument

    policy = fs.FileSystemStoragePathSourceConfig.ServableVersionPolicy()
    kind, _, arg = text.strip().partition(":")
    try:
        if kind == "latest":
            policy.latest.num_versions = int(arg or 1)
            if policy.latest.num_versions < 1:
                raise ValueError
        elif kind == "all" and not arg:
            policy.all.SetInParent()
        elif kind == "specific" and arg:
            policy.specific.versions.extend(int(v) for v in arg.split(","))
        else:
            raise ValueError
    except ValueError:
        raise invalid_argument(
            f"Invalid version policy {text!r}: expected latest:N (N >= 1), all, or specific:V1,V2"
        ) from None
    return policy
