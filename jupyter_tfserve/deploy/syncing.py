"""``tfserve sync``: copy the served version directories into a model repository elsewhere.

The target is a directory or a mounted volume (the cluster's PersistentVolumeClaim,
or a staging directory to upload to a bucket). Laid out as ``<target>/<model>/<version>``,
it is a model repository the official server reads as is. The copy is the exact set
of served version directories, warmup records (``assets.extra``) included, and each
version is checked against a sha256 manifest, because a half-copied SavedModel
fails at load time on the cluster, far from the notebook that could fix it.

Safety and restarts:
- Everything is planned before anything is copied: a version that already exists in
  the target with different content is refused (unless ``force``), so a sync never
  silently replaces what a cluster may be serving.
- A version is assembled in ``<model>/.<version>.partial`` and renamed into place
  only when every file matches its checksum. TF Serving ignores both that directory
  and the ``<version>.sha256`` manifest beside it: neither name parses as a version.
- After an interruption, a rerun skips versions already in place with matching
  checksums and keeps the files of a partial directory that already match.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DeployError, VersionConflictError
from .repository import ConfigLike, ServedModel, load_model_server_config, served_models

_CHUNK = 1 << 20
MANIFEST_SUFFIX = ".sha256"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file under ``root`` (symlinks followed), sorted."""
    result = []
    for dirpath, _, filenames in os.walk(root, followlinks=True):
        result += [Path(dirpath, f).relative_to(root).as_posix() for f in filenames]
    return sorted(result)


def tree_sha256(root: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 of every file under ``root``."""
    return {rel: file_sha256(root / rel) for rel in tree_files(root)}


def format_manifest(checksums: Mapping[str, str]) -> str:
    """``sha256sum`` format, so ``cd <version> && sha256sum -c ../<version>.sha256`` checks it."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(checksums.items()))


def parse_manifest(text: str) -> dict[str, str]:
    result = {}
    for line in text.splitlines():
        if line.strip():
            digest, path = line.split("  ", 1)
            result[path] = digest
    return result


def _differences(expected: Mapping[str, str], actual: Mapping[str, str]) -> str:
    changed = sorted(p for p in expected.keys() & actual.keys() if expected[p] != actual[p])
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    parts = []
    for what, paths in (("differ", changed), ("missing", missing), ("extra", extra)):
        if paths:
            shown = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
            parts.append(f"{len(paths)} {what} ({shown})")
    return "; ".join(parts)


@dataclass(frozen=True)
class VersionSync:
    """What happened to one version: copied, resumed, unchanged or replaced."""

    model: str
    version: int
    path: Path
    action: str
    files: int
    bytes_copied: int
    files_reused: int = 0


@dataclass
class SyncReport:
    target_dir: Path
    versions: list[VersionSync] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"tfserve sync into {self.target_dir}:"]
        lines += [
            f"  {v.model}/{v.path.name}: {v.action} ({v.files} files, {v.bytes_copied} bytes copied"
            + (f", {v.files_reused} reused" if v.files_reused else "")
            + ")"
            for v in self.versions
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Planned:
    model: str
    version: int
    source: Path
    dest: Path
    checksums: dict[str, str]
    exists: bool
    up_to_date: bool

    def beside(self, suffix: str, hidden: bool = True) -> Path:
        """A sibling of the version directory that TF Serving skips (not an integer name)."""
        return self.dest.with_name(f"{'.' if hidden else ''}{self.dest.name}{suffix}")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _model_dir(target: Path, name: str) -> Path:
    """``target/name``, once it is known to resolve inside ``target``.

    Names already follow the model-name rule (checked with the config); a
    model directory that is a symlink leading elsewhere would still make the
    sync write (and ``--force`` delete) outside the target.
    """
    model_dir = target / name
    real_target = target.resolve()
    if model_dir.resolve().parent != real_target:
        raise DeployError(
            f"model {name}: {model_dir} resolves outside the sync target {real_target}"
        )
    return model_dir


def _plan(served: list[ServedModel], target: Path, force: bool) -> list[_Planned]:
    plan, conflicts = [], []
    for model in served:
        if model.versions is None:
            raise DeployError(
                f"model {model.name}: base path {model.source} is not local; sync copies local "
                "directories (pass base_paths={name: local_dir})"
            )
        model_dir = _model_dir(target, model.name)
        if model_dir.resolve() == Path(model.source).resolve():
            raise DeployError(f"model {model.name}: the target is its own base path")
        for version, source in sorted(model.versions.items()):
            dest = model_dir / source.name
            checksums = tree_sha256(source)
            exists = dest.exists()
            up_to_date = False
            if exists:
                difference = _differences(checksums, tree_sha256(dest))
                up_to_date = not difference
                if difference:
                    conflicts.append(f"{model.name}/{source.name}: {difference}")
            plan.append(_Planned(model.name, version, source, dest, checksums, exists, up_to_date))
    if conflicts and not force:
        raise VersionConflictError(
            "the target already holds different content for "
            + "; ".join(conflicts)
            + ". A version number must name one model: export a new version number, or pass "
            "force=True (--force) to replace it."
        )
    return plan


def _copy_version(item: _Planned) -> tuple[int, int]:
    """Assembles the version in its partial directory; returns (bytes copied, files reused)."""
    partial, old = item.beside(".partial"), item.beside(".replaced")
    if old.exists():  # left by a replace that was interrupted after its first rename
        shutil.rmtree(old)
    partial.mkdir(parents=True, exist_ok=True)
    copied = reused = 0
    for dirpath, dirnames, _ in os.walk(item.source, followlinks=True):
        for name in dirnames:  # keep empty directories such as variables/ and assets/
            rel = Path(dirpath, name).relative_to(item.source)
            (partial / rel).mkdir(parents=True, exist_ok=True)
    for rel, digest in sorted(item.checksums.items()):
        dest = partial / rel
        if dest.is_file() and file_sha256(dest) == digest:
            reused += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.source / rel, dest)
        copied += dest.stat().st_size
        if file_sha256(dest) != digest:
            raise DeployError(
                f"{item.model}/{item.source.name}/{rel}: the copy does not match the source "
                "checksum (did the source change during the sync?); rerun to resume"
            )
    for rel in set(tree_files(partial)) - set(item.checksums):  # left by an older attempt
        (partial / rel).unlink()
    if item.exists:
        os.rename(item.dest, old)
        os.rename(partial, item.dest)
        shutil.rmtree(old)
    else:
        os.rename(partial, item.dest)
    return copied, reused


def sync(
    config_or_models: ConfigLike,
    target_dir: str | os.PathLike,
    *,
    models: Iterable[str] | None = None,
    base_paths: Mapping[str, str | os.PathLike] | None = None,
    served_versions: Mapping[str, Iterable[int]] | None = None,
    force: bool = False,
) -> SyncReport:
    """Copies the served version directories of ``config_or_models`` into ``target_dir``.

    ``config_or_models`` is a ``ModelServerConfig``, a models.config path or a
    ``{name: base_path}`` mapping; ``models`` picks a subset by name. The versions
    copied are those the version policy selects (or ``served_versions``). Raises
    ``VersionConflictError`` before copying anything when a version already in the
    target differs, unless ``force``.
    """
    config = load_model_server_config(config_or_models)
    served = served_models(config, models, base_paths=base_paths, served_versions=served_versions)
    target = Path(target_dir)
    if target.exists() and not target.is_dir():
        raise DeployError(f"sync target {str(target)!r} is not a directory")
    plan = _plan(served, target, force)
    report = SyncReport(target)
    for item in plan:
        if item.up_to_date:
            action, copied, reused = "unchanged", 0, 0
            if item.beside(".partial").exists():  # an interrupted run, completed since
                shutil.rmtree(item.beside(".partial"))
        else:
            resumed = item.beside(".partial").exists()
            copied, reused = _copy_version(item)
            action = "replaced" if item.exists else ("resumed" if resumed else "copied")
        _write_atomic(item.beside(MANIFEST_SUFFIX, hidden=False), format_manifest(item.checksums))
        report.versions.append(
            VersionSync(
                item.model, item.version, item.dest, action, len(item.checksums), copied, reused
            )
        )
    return report


def verify(version_dir: str | os.PathLike) -> None:
    """Checks a synced version against the manifest beside it; raises on any difference."""
    version_dir = Path(version_dir)
    manifest = version_dir.with_name(version_dir.name + MANIFEST_SUFFIX)
    try:
        expected = parse_manifest(manifest.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeployError(f"no checksum manifest for {version_dir}: {exc.strerror or exc}") from exc
    difference = _differences(expected, tree_sha256(version_dir))
    if difference:
        raise VersionConflictError(f"{version_dir} does not match {manifest.name}: {difference}")
