"""The one door for every change to what is served, and the host's policy on who may change what.

Loads, unloads, labels, rollbacks, config reloads (a REST body, gRPC's
``HandleReloadConfigRequest``, the config file and its poll) and batching
parameters all go through :class:`Admin`. Protocols only translate a request
into one of its calls and say who is calling (a :class:`Caller`); the host
says, once, when it builds the server, what callers may do (a
:class:`ChangePolicy`). Keeping policy here, not in each protocol, is what
makes every door apply all of it: before, the gRPC reload skipped the model
roots and the "changes need a login" rule that only the REST management API
applied.

Each change is one step under one lock: its checks, the read of the current
config, the new config and handing it to the manager. Two changes therefore
never interleave (four concurrent loads all stay served), and a change that
is refused has changed nothing. Every method here may touch the file system
and wait for the manager: callers on an event loop run them in an executor.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import platforms, source, version_sources
from .config import (
    ModelConfig,
    ModelServerConfig,
    load_model_server_config,
    validate_model_server_config,
)
from .manager import ModelManager, State
from .names import name_problem
from .status import Code, ServingError, failed_precondition, invalid_argument, not_found

log = logging.getLogger(__name__)

# A labelled config waits for its versions (TF Serving applies labels to AVAILABLE versions only).
LABEL_WAIT_SECONDS = 300.0


@dataclass(frozen=True)
class Caller:
    """Who asks for a change, and through which door.

    ``principal`` is the identity the door established (a Jupyter user, the
    holder of the port token), or None for an anonymous caller. ``trusted`` is
    the host itself acting on its own configuration (the config file at
    startup and on its poll): whoever wrote that file configured the server,
    so its paths are not held to the model roots.
    """

    door: str
    principal: str | None = None
    trusted: bool = False


# The host acting on its own config file.
SERVER = Caller("config file", "server", trusted=True)


class ModelRoots:
    """Where models may be read from.

    Relative base paths resolve under ``models_root``. When ``restricted`` (the
    Jupyter extension), a path must resolve, after ``..`` and symlinks, inside
    ``models_root`` or one of ``allowed``. A path outside them and a path that
    does not exist get the same answer, so the API cannot be used to probe the
    disk. Unrestricted roots (the standalone server, like TF Serving's own
    config reload) admit any path.
    """

    def __init__(
        self,
        models_root: str,
        allowed: Sequence[str] = (),
        *,
        restricted: bool = True,
        hint: str = "",
    ):
        self.models_root = os.path.abspath(os.path.expanduser(models_root))
        self.allowed = [os.path.abspath(os.path.expanduser(p)) for p in allowed]
        self.restricted = restricted
        self.hint = hint

    @property
    def roots(self) -> list[str]:
        return [self.models_root, *self.allowed]

    def admits(self, real_path: str) -> bool:
        """Whether an already resolved path lies inside the roots (always, when unrestricted)."""
        if not self.restricted:
            return True
        return any(_inside(real_path, os.path.realpath(root)) for root in self.roots)

    def resolve(self, name: str, base_path: str) -> str:
        """The real path a load of ``name`` reads (``models_root/name`` by default); touches the file system."""
        path = os.path.join(self.models_root, base_path or name)  # an absolute base_path wins
        return self.check(path, shown=base_path or name)

    def check(self, path: str, shown: str | None = None) -> str:
        """``path`` resolved, once it is known to exist inside the roots."""
        real = os.path.realpath(path)
        if self.admits(real) and os.path.exists(real):
            return real
        if not self.restricted:
            raise not_found(f"Model path {shown or path} does not exist")
        hint = f"; {self.hint}" if self.hint else ""
        raise not_found(
            f"Model path {shown or path} does not exist or is outside the model roots {', '.join(self.roots)}{hint}"
        )


def _inside(real_path: str, root: str) -> bool:
    return real_path == root or real_path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class ChangePolicy:
    """What the host allows, fixed when the server is built.

    ``roots``: where models may come from (checked at every change and, for
    each version directory, at every poll). ``open_doors``: the doors that take
    changes from anonymous callers (TF Serving's gRPC reload, for example);
    every other door needs a principal, and ``refusal`` is the one line that
    tells an anonymous caller how to get one.
    """

    roots: ModelRoots = field(default_factory=lambda: ModelRoots(os.curdir, restricted=False))
    open_doors: frozenset[str] = frozenset()
    refusal: str = "Changing what this server serves needs an authenticated caller."


class Admin:
    """The only way to change the served set; see the module docstring."""

    def __init__(
        self, manager: ModelManager, policy: ChangePolicy, *, batcher=None, config_file: str = ""
    ):
        self.manager = manager
        self.policy = policy
        self.batcher = batcher
        self.config_file = config_file
        self._lock = threading.RLock()
        # Real base paths of the models the host's own config file put outside the roots.
        self._trusted_bases: dict[str, str] = {}
        self._refused_versions: set[str] = set()

    # ------------------------------------------------------------------ the poll's source
    def versions_of(self, name: str, base_path: str) -> dict[int, str]:
        """The version directories of a model that may be served now (the manager calls this at every poll)."""
        if not self.policy.roots.restricted:
            return version_sources.list_versions(base_path)
        trusted = self._trusted_bases.get(name)

        def admit(real: str) -> bool:
            if self.policy.roots.admits(real) or (trusted is not None and _inside(real, trusted)):
                return True
            if real not in self._refused_versions:  # logged once, not at every poll
                self._refused_versions.add(real)
                log.warning(
                    "Not serving %s of model %s: it resolves outside the model roots", real, name
                )
            return False

        return version_sources.list_versions(base_path, admit)

    # ------------------------------------------------------------------ changes
    def load(self, caller: Caller, name: str, base_path: str = "", policy=None) -> ModelConfig:
        """Serve ``name`` from ``base_path`` (``models_root/name`` by default) with a version policy."""
        with self._lock:
            self._admit(caller)
            _check_name(name)
            # A plug-in source's base path is a URI; the roots then apply to the folders it yields.
            local = version_sources.is_local(base_path)
            path = self.policy.roots.resolve(name, base_path) if local else base_path
            check_repository(name, path, policy, self.policy.roots)
            config = ModelConfig(name=name, base_path=path, model_platform="tensorflow")
            if policy is not None:
                config.model_version_policy.CopyFrom(policy)
            self._keep_what_still_applies(name, config)
            self._trusted_bases.pop(name, None)
            self.manager.add_model(config, wait_timeout=None)
        log.info(
            "Serving model %s from %s (%s) for %s",
            name,
            path,
            source.describe_policy(policy),
            _who(caller),
        )
        return config

    def _keep_what_still_applies(self, name: str, config: ModelConfig) -> None:
        """Serving a served model again (a new policy, "serve latest" after a rollback) keeps its
        request log, and the labels whose versions the new policy still serves."""
        if name not in self.manager.model_names():
            return
        previous = self.manager.model_config(name)
        if previous.base_path != config.base_path:
            return
        config.logging_config.CopyFrom(previous.logging_config)
        staying = source.aspired_versions(
            self.versions_of(name, config.base_path), config.model_version_policy
        )
        for label, version in previous.version_labels.items():
            if version in staying:
                config.version_labels[label] = version

    def unload(self, caller: Caller, name: str) -> None:
        with self._lock:
            self._admit(caller)
            _check_name(name)
            self.manager.remove_model(name)
            self._trusted_bases.pop(name, None)
        log.info("Unloading model %s for %s", name, _who(caller))

    def set_label(self, caller: Caller, name: str, label: str, version: int) -> dict[str, int]:
        with self._lock:
            self._admit(caller)
            _check_name(name)
            _check_name(label, "Label")
            self.manager.set_label(name, label, version)
            labels = self.manager.labels(name)
        log.info(
            "Label %s of model %s points at version %d, for %s", label, name, version, _who(caller)
        )
        return labels

    def remove_label(self, caller: Caller, name: str, label: str) -> dict[str, int]:
        with self._lock:
            self._admit(caller)
            _check_name(name)
            self.manager.remove_label(name, label)
            labels = self.manager.labels(name)
        log.info("Label %s of model %s removed, for %s", label, name, _who(caller))
        return labels

    def rollback(self, caller: Caller, name: str, version: int | None = None) -> tuple[int, int]:
        """Serve the previous version again by pinning the version policy to it; returns (to, from).

        The previous version is the newest one on disk older than the newest
        AVAILABLE version (or ``version``). Pinning the policy, rather than
        moving a label, is what changes the answer for every client: requests
        that name no version (TF Serving's default, and what most clients send)
        follow the policy, while a label only reroutes the clients that ask for
        it. The manager loads the previous version before it unloads the
        current one, so no request fails in between. Labels stay as they are;
        going forward again is a load with the old policy.
        """
        with self._lock:
            self._admit(caller)
            _check_name(name)
            config = self.manager.model_config(name)
            serving = [
                s.version for s in self.manager.version_status(name) if s.state == State.AVAILABLE
            ]
            if not serving:
                raise failed_precondition(
                    f"Model {name} has no AVAILABLE version to roll back from"
                )
            current = max(serving)
            try:
                on_disk = self.versions_of(name, config.base_path)
            except OSError as exc:
                raise failed_precondition(
                    f"Cannot read base path {config.base_path} of model {name}: {exc.strerror or exc}"
                ) from None
            if version is not None:
                if version not in on_disk:
                    raise not_found(
                        f"Version {version} of model {name} is not under {config.base_path}"
                    )
                if version == current:
                    raise failed_precondition(f"Model {name} is already serving version {version}")
                target = version
            else:
                older = [v for v in on_disk if v < current]
                if not older:
                    raise failed_precondition(
                        f"Model {name} has no version older than {current} under {config.base_path} to roll back to"
                    )
                target = max(older)
            config.model_version_policy.specific.versions[:] = [target]  # also clears latest/all
            self.manager.add_model(config, wait_timeout=None)
        log.info(
            "Rolling back model %s from version %d to %d, for %s",
            name,
            current,
            target,
            _who(caller),
        )
        return target, current

    def reload(
        self, caller: Caller, config: ModelServerConfig, *, wait_timeout: float | None = None
    ) -> list[str]:
        """Realize exactly this config (TF Serving's HandleReloadConfigRequest); returns the model names.

        With ``wait_timeout``, new versions are waited for (up to that many
        seconds) before the config's labels are applied; without, labels must
        point at versions already AVAILABLE.
        """
        with self._lock:
            self._admit(caller)
            validate_model_server_config(config)
            models = config.model_config_list.config
            for model in models:
                _check_name(model.name)
                for label in model.version_labels:
                    _check_name(label, "Label")
                if (
                    self.policy.roots.restricted
                    and not caller.trusted
                    and version_sources.is_local(model.base_path)
                ):
                    self.policy.roots.check(version_sources.local_path(model.base_path))
                self._check_log_folder(caller, model)
            self._trusted_bases = (
                {m.name: os.path.realpath(m.base_path) for m in models}
                if caller.trusted and self.policy.roots.restricted
                else {}
            )
            self.manager.reload_config(config, wait_timeout=wait_timeout)
        names = [m.name for m in models]
        log.info("Model config reloaded for %s: %s", _who(caller), ", ".join(names) or "no models")
        return names

    def reload_text(self, caller: Caller, text: str) -> list[str]:
        """Realize a ModelServerConfig given in text format (a request body)."""
        from google.protobuf import text_format

        try:
            config = text_format.Parse(text, ModelServerConfig())
        except text_format.ParseError as exc:
            raise invalid_argument(
                f"Error parsing text-format tensorflow.serving.ModelServerConfig: {exc}"
            ) from None
        return self.reload(caller, config, wait_timeout=_label_wait(config))

    def reload_file(self, caller: Caller) -> list[str]:
        """Realize the server's own config file again; trusted like at startup, whoever asks."""
        self._admit(caller)
        if not self.config_file:
            raise failed_precondition(
                'No model_config_file is configured; send the config in the body: {"config": "..."}'
            )
        config = load_model_server_config(self.config_file)
        return self.reload(SERVER, config, wait_timeout=_label_wait(config))

    def set_batching(self, caller: Caller, name: str, parameters) -> None:
        """Replace one model's BatchingParameters (None: back to its file's or the server's)."""
        with self._lock:
            self._admit(caller)
            _check_name(name)
            self.batcher_or_refusal().set_parameters(name, parameters)

    def set_logging(self, caller: Caller, name: str, changes: dict | None) -> None:
        """Change one model's ``logging_config`` on the live server; None stops its logging.

        ``changes`` sets any of ``sampling_rate``, ``filename_prefix`` and ``type``
        (``tfrecord`` when a prefix is given without one) over what the model has.
        Files already written stay where they are.
        """
        from .request_log import validate_logging_config

        if changes is not None:
            _check_logging_changes(changes)
        with self._lock:
            self._admit(caller)
            _check_name(name)
            config = self.manager.model_config(name)
            if changes is None:
                config.ClearField("logging_config")
            else:
                logging_config = config.logging_config
                collector = logging_config.log_collector_config
                for key in ("filename_prefix", "type"):
                    if key in changes:
                        setattr(collector, key, changes[key])
                if "filename_prefix" in changes and not collector.type:
                    collector.type = "tfrecord"
                if "sampling_rate" in changes:
                    logging_config.sampling_config.sampling_rate = changes["sampling_rate"]
                validate_logging_config(name, logging_config)
                self._check_log_folder(caller, config)
            self.manager.add_model(config, wait_timeout=None)
        log.info("Request log of model %s changed to %s, for %s", name, changes, _who(caller))

    def batcher_or_refusal(self):
        if self.batcher is None:
            raise failed_precondition(
                "Batching is not enabled on this server; start it with --enable_batching."
            )
        return self.batcher

    # ------------------------------------------------------------------ policy
    def _check_log_folder(self, caller: Caller, model: ModelConfig) -> None:
        """Request logs are files the server writes: where the roots restrict reads, they restrict these too."""
        prefix = model.logging_config.log_collector_config.filename_prefix
        if not prefix or caller.trusted or not self.policy.roots.restricted:
            return
        folder = os.path.dirname(prefix)
        real = os.path.realpath(folder)
        if not (self.policy.roots.admits(real) and os.path.isdir(real)):
            raise not_found(
                f"Log folder {folder} of model {model.name} does not exist or is outside the model roots "
                f"{', '.join(self.policy.roots.roots)}"
            )

    def _admit(self, caller: Caller) -> None:
        if caller.principal is None and caller.door not in self.policy.open_doors:
            raise ServingError(Code.PERMISSION_DENIED, self.policy.refusal)


def _check_logging_changes(changes: dict) -> None:
    """The fields a logging change may set, with their types (a bad one changes nothing)."""
    unknown = set(changes) - {"sampling_rate", "filename_prefix", "type"}
    if unknown:
        raise invalid_argument(f"Unknown logging fields: {', '.join(sorted(unknown))}")
    for key in ("filename_prefix", "type"):
        if key in changes and not isinstance(changes[key], str):
            raise invalid_argument(f"'{key}' must be a string")
    rate = changes.get("sampling_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise invalid_argument("'sampling_rate' must be a number between 0 and 1")


def _label_wait(config: ModelServerConfig) -> float | None:
    """Like TF Serving, a config with labels waits for its versions to load before labelling them."""
    return (
        LABEL_WAIT_SECONDS
        if any(m.version_labels for m in config.model_config_list.config)
        else None
    )


def _check_name(name, what: str = "Model name") -> None:
    problem = name_problem(name, what)
    if problem:
        raise invalid_argument(problem)


def _who(caller: Caller) -> str:
    return f"{caller.principal or 'anonymous'} ({caller.door})"


def check_repository(name: str, path: str, policy, roots: ModelRoots) -> None:
    """Refuse what cannot be served before anything changes (blocking).

    A path that is not a directory, a SavedModel given without its version
    directory, no version directories, a policy that selects none of them, or
    a selected version that is neither a SavedModel nor a TensorFlow Lite model (or lies
    outside the roots).
    """
    if version_sources.is_local(path):
        if not os.path.isdir(path):
            raise invalid_argument(f"base_path {path} of model {name} is not a directory")
        if _is_saved_model(path):
            raise invalid_argument(
                f"base_path {path} is a SavedModel itself; models are served from numbered version "
                f"directories under base_path: move it to {os.path.join(path, '1')}"
            )
    versions = version_sources.list_versions(path)
    if not versions:
        raise invalid_argument(
            f"No versions of servable {name} found under base path {path}: "
            "expected numbered version directories (1, 2, ...) each holding a SavedModel"
        )
    aspired = source.aspired_versions(versions, policy)
    if not aspired:
        raise invalid_argument(
            f"Version policy {source.describe_policy(policy)} of model {name} selects none of the "
            f"versions under {path} ({', '.join(str(v) for v in sorted(versions))})"
        )
    for version_path in aspired.values():
        roots.check(version_path)  # a version directory may be a symlink too
        if not platforms.get(platforms.select("", version_path)).recognizes(version_path):
            raise invalid_argument(
                f"{version_path} is not a SavedModel: it has no saved_model.pb (nor a model.tflite)"
            )


def _is_saved_model(path: str) -> bool:
    return any(
        os.path.isfile(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")
    )


def parse_policy_json(value):
    """A version policy from a request: ``latest:2``, ``all``, ``specific:1,2``, or TF Serving's JSON form."""
    if value is None:
        return None
    if isinstance(value, str):
        return source.parse_policy(value)
    shown = json.dumps(value)
    if not isinstance(value, dict):
        raise invalid_argument(
            f"Invalid version policy {shown}: expected latest:N, all, specific:V1,V2 or an object"
        )
    from google.protobuf import json_format
    from tensorflow_serving.config import file_system_storage_path_source_pb2 as fs

    try:
        policy = json_format.ParseDict(
            value, fs.FileSystemStoragePathSourceConfig.ServableVersionPolicy()
        )
    except json_format.ParseError as exc:
        raise invalid_argument(f"Invalid version policy {shown}: {exc}") from None
    choice = policy.WhichOneof("policy_choice")
    if (
        choice is None
        or (choice == "latest" and policy.latest.num_versions < 1)
        or (choice == "specific" and not policy.specific.versions)
    ):
        raise invalid_argument(
            f"Invalid version policy {shown}: expected latest with num_versions >= 1, all, "
            "or specific with at least one version"
        )
    return policy
