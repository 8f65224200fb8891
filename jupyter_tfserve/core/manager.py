"""The model manager: aspired versions in, loaded versions out, without ever dropping a request.

It follows TF Serving's manager semantics, because clients depend on them:

* the set of models is exactly the last config realized (``reload_config``);
* each model's versions come from its base path and version policy, re-read
  every ``file_system_poll_wait_seconds``;
* swaps preserve availability: a version that is no longer aspired is unloaded
  only once an aspired one is AVAILABLE (or none can become so);
* requests hold ref-counted handles, so an unload waits for in-flight requests;
* a failed load is retried, then reported in the status with its error, and
  never disturbs the version already serving; retries are timers, so a load
  thread never sleeps while other models wait, and the status shows the last
  error while the version is still LOADING (as TF Serving's does);
* an unload waits for in-flight requests up to ``unload_wait_seconds``; past
  it, the version leaves anyway and its servable closes when the last request
  releases it, so a hung run never holds up the unloads behind it;
* labels point only at AVAILABLE versions unless explicitly allowed.

All state lives behind one lock; loads run on a small thread pool and the
polling loop on its own thread, so callers (event loops included) only ever
take the lock briefly.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import source, version_sources
from .config import ModelConfig, ModelServerConfig, validate_model_server_config
from .heap import FrozenHeap
from .platforms import Servable
from .scheduling import mark_as_background_work
from .status import (
    Code,
    ServingError,
    failed_precondition,
    from_exception,
    invalid_argument,
    not_found,
)

log = logging.getLogger(__name__)


class State(str, enum.Enum):
    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclass
class VersionStatus:
    """What ``GetModelStatus`` reports for one version."""

    version: int
    state: State
    error: ServingError | None = None
    path: str = ""


@dataclass(eq=False)
class _Version:
    version: int
    path: str
    state: State = State.START
    error: ServingError | None = None
    servable: Servable | None = None
    refcount: int = 0
    loaded_at: float = 0.0
    retry: threading.Timer | None = None  # the next load attempt, while one is pending
    close_on_release: bool = False  # an unload gave up waiting: the last release closes it


@dataclass(eq=False)
class _Model:
    config: ModelConfig
    versions: dict[int, _Version] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    removed: bool = False
    source_error: str = ""


class Handle:
    """A ref-counted claim on one loaded version; release it (or use ``with``) when the request is done."""

    __slots__ = ("_manager", "_entry", "model_name", "servable", "version", "_released")

    def __init__(self, manager: ModelManager, model_name: str, entry: _Version):
        self._manager = manager
        self._entry = entry
        self.model_name = model_name
        self.servable: Servable = entry.servable  # type: ignore[assignment]
        self.version = entry.version
        self._released = False

    def retain(self) -> Handle:
        """A second claim on the same version, for work that outlives the first (a queued batch task)."""
        with self._manager._cond:
            self._entry.refcount += 1
        return Handle(self._manager, self.model_name, self._entry)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        entry = self._entry
        servable = None
        with self._manager._cond:
            entry.refcount -= 1
            if entry.refcount == 0:
                self._manager._cond.notify_all()
                if entry.close_on_release:
                    servable, entry.servable, entry.close_on_release = entry.servable, None, False
        if servable is not None:
            servable.close()

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


Loader = Callable[[str, int, str], Servable]
LoadListener = Callable[[str, int, str, float, ServingError | None], None]


class ModelManager:
    def __init__(
        self,
        loader: Loader,
        *,
        file_system_poll_wait_seconds: float = 1.0,
        max_num_load_retries: int = 5,
        load_retry_interval_seconds: float = 60.0,
        allow_version_labels_for_unavailable_models: bool = False,
        num_load_threads: int = 2,
        unload_wait_seconds: float = 30.0,
        on_load: LoadListener | None = None,
        on_unload: Callable[[str, int], None] | None = None,
        version_source: Callable[[str, str], dict[int, str]] | None = None,
        on_config: Callable[[ModelServerConfig], None] | None = None,
        heap: FrozenHeap | None = None,
    ):
        """``version_source(name, base_path)`` lists a model's version directories at each poll
        (default: every one under base_path); the admin core passes one that applies the model roots.
        ``heap``, when given, is told of each load and unload (see :mod:`.heap`)."""
        self._loader = loader
        self._version_source = version_source or (
            lambda name, base_path: version_sources.list_versions(base_path)
        )
        self.poll_wait_seconds = file_system_poll_wait_seconds
        self.max_num_load_retries = max_num_load_retries
        self.load_retry_interval_seconds = load_retry_interval_seconds
        self.allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self.unload_wait_seconds = unload_wait_seconds
        self._on_load = on_load
        self._heap = heap
        self._on_unload = on_unload
        # Told each config realized (the server's request log follows the models' logging_config).
        self._on_config = on_config
        self._models: dict[str, _Model] = {}
        self._cond = threading.Condition(threading.RLock())
        self._config = ModelServerConfig()
        self._reload_lock = threading.Lock()
        self._loads = ThreadPoolExecutor(
            max_workers=max(1, num_load_threads),
            thread_name_prefix="tfserve-load",
            initializer=mark_as_background_work,
        )
        self._unloads = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="tfserve-unload", initializer=mark_as_background_work
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._poller: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start polling the file system (when the poll interval is positive)."""
        if self._poller is None and self.poll_wait_seconds > 0:
            self._poller = threading.Thread(
                target=self._poll_loop, name="tfserve-poll", daemon=True
            )
            self._poller.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling, unload everything (waiting for in-flight requests), join the threads."""
        self._stop.set()
        self._wake.set()
        if self._poller is not None:
            self._poller.join(timeout)
        self._loads.shutdown(wait=True, cancel_futures=True)
        with self._cond:
            entries = [(name, v) for name, m in self._models.items() for v in m.versions.values()]
        for name, entry in entries:
            self._cancel_retry(name, entry)
        for name, entry in entries:
            self._unload(name, entry, timeout)
        self._unloads.shutdown(wait=True)

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_wait_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.poll()
            except Exception:  # never let one bad poll stop the source
                log.exception("file-system poll failed")

    # ------------------------------------------------------------------ config
    @property
    def config(self) -> ModelServerConfig:
        with self._cond:
            config = ModelServerConfig()
            config.CopyFrom(self._config)
            return config

    def reload_config(
        self, config: ModelServerConfig, *, wait_timeout: float | None = 300.0
    ) -> None:
        """Realize exactly this set of models; models not listed are unloaded.

        New models are loaded (and waited for, like TF Serving, up to ``wait_timeout``)
        before the labels of the new config are applied.
        """
        validate_model_server_config(config)
        with self._reload_lock:
            new = {m.name: m for m in config.model_config_list.config}
            with self._cond:
                for name, model in self._models.items():
                    if name not in new:
                        model.removed = True
                for name, model_config in new.items():
                    existing = self._models.get(name)
                    if existing is None or existing.removed:
                        self._models[name] = _Model(config=_copy(model_config))
                    else:
                        labels = existing.config.version_labels
                        existing.config = _copy(model_config)
                        existing.config.version_labels.clear()
                        existing.config.version_labels.update(labels)
                self._config = ModelServerConfig()
                self._config.CopyFrom(config)
                self._config.model_config_list.ClearField("config")
                for model in self._models.values():
                    if not model.removed:
                        self._config.model_config_list.config.add().CopyFrom(model.config)
            if self._on_config is not None:
                self._on_config(self.config)
            self.poll()
            if wait_timeout:
                self.wait_until_settled(list(new), timeout=wait_timeout)
            for name, model_config in new.items():
                self._apply_labels(name, dict(model_config.version_labels))

    def add_model(self, model_config: ModelConfig, *, wait_timeout: float | None = None) -> None:
        """Add or replace one model, keeping the others (what the management API's load does)."""
        config = self.config
        models = config.model_config_list.config
        kept = [m for m in models if m.name != model_config.name]
        del models[:]
        models.extend(kept)
        models.add().CopyFrom(model_config)
        self.reload_config(config, wait_timeout=wait_timeout)

    def remove_model(self, name: str) -> None:
        config = self.config
        models = config.model_config_list.config
        if not any(m.name == name for m in models):
            raise not_found(f"Model {name} is not being served")
        kept = [m for m in models if m.name != name]
        del models[:]
        models.extend(kept)
        self.reload_config(config, wait_timeout=None)

    # ------------------------------------------------------------------ labels
    def set_label(self, name: str, label: str, version: int) -> None:
        self._apply_labels(name, {**self.labels(name), label: version})

    def remove_label(self, name: str, label: str) -> None:
        with self._cond:
            model = self._live_model(name)
            if label not in model.labels:
                raise not_found(f"Model {name} has no label {label}")
            del model.labels[label]
            del model.config.version_labels[label]
            self._sync_config(name)

    def labels(self, name: str) -> dict[str, int]:
        with self._cond:
            return dict(self._live_model(name).labels)

    def _apply_labels(self, name: str, labels: dict[str, int]) -> None:
        with self._cond:
            model = self._live_model(name)
            for label, version in labels.items():
                if not label:
                    raise invalid_argument("Label must not be empty")
                entry = model.versions.get(version)
                available = entry is not None and entry.state == State.AVAILABLE
                is_new = model.labels.get(label) != version
                if (
                    not available
                    and is_new
                    and not (self.allow_unavailable_labels and label not in model.labels)
                ):
                    raise failed_precondition(
                        f"Request to assign label to version {version} of model {name}, "
                        "which is not currently available for inference"
                    )
            model.labels = dict(labels)
            model.config.version_labels.clear()
            model.config.version_labels.update(labels)
            self._sync_config(name)
            self._cond.notify_all()

    def _sync_config(self, name: str) -> None:
        for model_config in self._config.model_config_list.config:
            if model_config.name == name:
                model_config.CopyFrom(self._models[name].config)

    # ------------------------------------------------------------------ polling / loading
    def poll(self) -> None:
        """Read every model's base path once and start the loads and unloads it calls for."""
        with self._cond:
            models = list(self._models.items())
        for name, model in models:
            if model.removed:
                self._retire(name, model, aspired={})
                continue
            try:
                available = self._version_source(name, model.config.base_path)
                model.source_error = ""
            except (
                ServingError
            ) as exc:  # a source plug-in failed: say so, keep serving what is loaded
                if model.source_error != exc.message:
                    log.warning("Model %s: %s", name, exc.message)
                model.source_error = exc.message
                continue
            except OSError as exc:
                message = (
                    f"No versions of servable {name} found under base path {model.config.base_path}"
                )
                if model.source_error != message:
                    log.warning("%s (%s)", message, exc.strerror or exc)
                model.source_error = message
                available = {}
            aspired = source.aspired_versions(available, model.config.model_version_policy)
            if not aspired and not model.source_error:
                model.source_error = (
                    f"No versions of servable {name} found under base path {model.config.base_path}"
                )
            self._retire(name, model, aspired)

    def _retire(self, name: str, model: _Model, aspired: dict[int, str]) -> None:
        to_load: list[_Version] = []
        to_unload: list[_Version] = []
        to_cancel: list[_Version] = []
        with self._cond:
            for version, path in aspired.items():
                entry = model.versions.get(version)
                if entry is None or (entry.state == State.END and entry.error is None):
                    entry = _Version(version=version, path=path)
                    model.versions[version] = entry
                    to_load.append(entry)
            aspired_available = any(
                model.versions[v].state == State.AVAILABLE for v in aspired if v in model.versions
            )
            for version, entry in model.versions.items():
                if entry.retry is not None and (model.removed or version not in aspired):
                    to_cancel.append(entry)
                if version in aspired or entry.state not in (State.AVAILABLE, State.START):
                    continue
                # Availability-preserving: keep the old version until a new one serves. A new
                # version that failed to load never takes the serving one down; only a model
                # removed from the config, or left with no version directories, loses it.
                if model.removed or aspired_available or not aspired:
                    entry.state = State.UNLOADING
                    to_unload.append(entry)
            if model.removed and all(v.state == State.END for v in model.versions.values()):
                if self._models.get(name) is model:
                    del self._models[name]
            self._cond.notify_all()
        for entry in to_cancel:
            self._cancel_retry(name, entry)
        for entry in to_load:
            entry.state = State.LOADING
            self._loads.submit(self._load, name, model, entry)
        for entry in to_unload:
            self._unloads.submit(self._unload, name, entry)

    def _retry_now(self, name: str, model: _Model, entry: _Version, attempt: int) -> None:
        """The retry timer fired: back to the load threads, unless it was cancelled meanwhile."""
        with self._cond:
            if entry.retry is None:
                return
            entry.retry = None
        try:
            self._loads.submit(self._load, name, model, entry, attempt)
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._finish_load(name, entry, _load_cancelled(), 0.0)

    def _load(self, name: str, model: _Model, entry: _Version, attempt: int = 0) -> None:
        """One load attempt; a failure with retries left schedules the next one and returns."""
        attempts = 1 + max(0, self.max_num_load_retries)
        if self._stop.is_set() or model.removed:
            self._finish_load(name, entry, _load_cancelled(), 0.0)
            return
        started = time.monotonic()
        try:
            servable = self._loader(name, entry.version, entry.path)
        except Exception as exc:
            error = from_exception(exc)
            log.warning(
                "Loading %s version %s failed (attempt %d of %d): %s",
                name,
                entry.version,
                attempt + 1,
                attempts,
                error.message,
            )
            if attempt + 1 < attempts and self._schedule_retry(
                name, model, entry, attempt + 1, error
            ):
                return
            self._finish_load(name, entry, error, time.monotonic() - started)
            return
        if self._heap is not None:
            self._heap.loaded()
        with self._cond:
            entry.servable = servable
            entry.error = None
            entry.loaded_at = time.time()
            entry.state = State.AVAILABLE
            self._cond.notify_all()
        log.info("Successfully loaded servable version {name: %s version: %s}", name, entry.version)
        self._finish_load(name, entry, None, time.monotonic() - started)

    def _schedule_retry(
        self, name: str, model: _Model, entry: _Version, attempt: int, error: ServingError
    ) -> bool:
        """Try again after the retry interval, on a timer; the status shows ``error`` meanwhile."""
        with self._cond:
            if self._stop.is_set() or model.removed:
                return False
            entry.error = error
            timer = threading.Timer(
                self.load_retry_interval_seconds, self._retry_now, (name, model, entry, attempt)
            )
            timer.daemon = True
            timer.name = f"tfserve-retry-{name}-{entry.version}"
            entry.retry = timer
            self._cond.notify_all()
        timer.start()
        return True

    def _cancel_retry(self, name: str, entry: _Version) -> None:
        """Drop a pending retry (the version is no longer aspired, or the server stops)."""
        with self._cond:
            timer, entry.retry = entry.retry, None
        if timer is not None:
            timer.cancel()
            self._finish_load(name, entry, _load_cancelled(), 0.0)

    def _finish_load(
        self, name: str, entry: _Version, error: ServingError | None, seconds: float
    ) -> None:
        if error is not None:
            with self._cond:
                entry.error = error
                entry.state = State.END
                self._cond.notify_all()
        if self._on_load is not None:
            self._on_load(name, entry.version, entry.path, seconds, error)
        if not self._stop.is_set():
            self.poll()  # a new AVAILABLE version may release an old one

    def _unload(self, name: str, entry: _Version, timeout: float | None = None) -> None:
        with self._cond:
            if entry.state == State.END:
                return
            entry.state = State.UNLOADING
            self._cond.notify_all()
            # In-flight requests finish on the version they started on, within a bound: a
            # run that hangs must not hold up every unload behind this one.
            bound = self.unload_wait_seconds if timeout is None else timeout
            if self._cond.wait_for(lambda: entry.refcount == 0, bound):
                servable, entry.servable = entry.servable, None
            else:
                log.warning(
                    "Unloading %s version %s: %d request(s) still running after %g s; "
                    "it closes when they finish",
                    name,
                    entry.version,
                    entry.refcount,
                    bound,
                )
                servable, entry.close_on_release = None, True
        if servable is not None:
            servable.close()
            servable = None  # unreachable now, so the collection below frees it
            if self._heap is not None:
                self._heap.unloaded()
        with self._cond:
            entry.state = State.END
            model = self._models.get(name)
            if model is not None:
                for label, version in list(model.labels.items()):
                    if version == entry.version and not self.allow_unavailable_labels:
                        log.info(
                            "Label %s of %s pointed at unloaded version %s", label, name, version
                        )
                if model.removed and all(v.state == State.END for v in model.versions.values()):
                    del self._models[name]
            self._cond.notify_all()
        if self._on_unload is not None:
            self._on_unload(name, entry.version)
        log.info("Unloaded servable version {name: %s version: %s}", name, entry.version)

    # ------------------------------------------------------------------ waiting
    def wait_until_settled(self, names: list[str] | None = None, timeout: float = 300.0) -> bool:
        """Wait until no listed model has a version loading. Returns False on timeout."""

        def settled() -> bool:
            for name, model in self._models.items():
                if names is not None and name not in names:
                    continue
                if any(v.state in (State.START, State.LOADING) for v in model.versions.values()):
                    return False
            return True

        with self._cond:
            return self._cond.wait_for(settled, timeout)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait on any condition over the manager's public views (woken on every state change)."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    # ------------------------------------------------------------------ serving
    def acquire(self, name: str, version: int | None = None, label: str | None = None) -> Handle:
        """A handle on the version a request names: latest AVAILABLE, a specific version, or a label."""
        with self._cond:
            model = self._models.get(name)
            if label:
                if model is None or model.removed or label not in model.labels:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            if model is None or model.removed:
                raise not_found(_servable_not_found(name, version))
            if version is None:
                candidates = [v for v in model.versions.values() if v.state == State.AVAILABLE]
                entry = max(candidates, key=lambda v: v.version) if candidates else None
            else:
                entry = model.versions.get(version)
                if entry is not None and entry.state != State.AVAILABLE:
                    entry = None
            if entry is None:
                raise not_found(_servable_not_found(name, version))
            entry.refcount += 1
            return Handle(self, name, entry)

    # ------------------------------------------------------------------ views
    def model_names(self) -> list[str]:
        with self._cond:
            return sorted(n for n, m in self._models.items() if not m.removed)

    def serves(self, name: str) -> bool:
        """Whether ``name`` is a model of the current config (whatever its versions' states)."""
        with self._cond:
            model = self._models.get(name)
            return model is not None and not model.removed

    def model_config(self, name: str) -> ModelConfig:
        with self._cond:
            return _copy(self._live_model(name).config)

    def version_status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """Versions newest first, with their state and error; unloaded versions stay listed as END."""
        with self._cond:
            model = self._models.get(name)
            if model is None or model.removed or not model.versions:
                raise not_found(f"Could not find any versions of model {name}")
            entries = sorted(model.versions.values(), key=lambda v: v.version, reverse=True)
            if version is not None:
                entries = [v for v in entries if v.version == version]
                if not entries:
                    raise not_found(f"Could not find version {version} of model {name}")
            return [VersionStatus(v.version, v.state, v.error, v.path) for v in entries]

    def source_error(self, name: str) -> str:
        with self._cond:
            return self._live_model(name).source_error

    def is_ready(self) -> bool:
        """True when every configured model has an AVAILABLE version."""
        with self._cond:
            live = [m for m in self._models.values() if not m.removed]
            return all(any(v.state == State.AVAILABLE for v in m.versions.values()) for m in live)

    def _live_model(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None or model.removed:
            raise not_found(f"Model {name} is not being served")
        return model


def _load_cancelled() -> ServingError:
    return ServingError(Code.CANCELLED, "Load cancelled: model removed or server stopping")


def _servable_not_found(name: str, version: int | None) -> str:
    if version is None:
        return f"Servable not found for request: Latest({name})"
    return f"Servable not found for request: Specific({name}, {version})"


def _copy(model_config: ModelConfig) -> ModelConfig:
    copy = ModelConfig()
    copy.CopyFrom(model_config)
    return copy
