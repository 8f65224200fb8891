"""Keep TensorFlow's native start-up lines out of the terminal unless the user asks for them.

TensorFlow logs through absl before anything initialises absl, and absl then
writes every line to stderr, whatever ``TF_CPP_MIN_LOG_LEVEL`` says: importing
TensorFlow prints "oneDNN custom operations are on" and "Could not find cuda
drivers" (twice, once per native library), and creating its devices prints
"failed call to cuInit: ... CUDA error" on every machine without a GPU. The
only place to stop them is the file descriptor. While TensorFlow imports and
creates its devices, fd 2 feeds a pipe; a reader thread drops absl's lines
below ``TF_CPP_MIN_LOG_LEVEL`` (3, set by this package unless the user set
it) and passes every other line on to the real stderr as it arrives, so
other threads' output (a Jupyter server's log) is neither lost nor held back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading

# "I0000 00:00:1796518345.642910   19987 port.cc:153] ..." (severity, date, time, thread, file:line)
_ABSL_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:[\d.]+\s+\d+ [^ \]]+:\d+\] ")
_ABSL_BANNER = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
)
# Lines that start another program's log record, never a continuation of absl's message.
_OWN_RECORD = re.compile(rb"^(\[|\d|[A-Z]+:)")
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


def min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def quiet_python_logs(names: tuple[str, ...] = ("tensorflow", "absl")):
    """TensorFlow's Python loggers at WARNING or above for the block.

    Saving a SavedModel logs INFO records ("Assets written to ...", "Function
    ... contains input name(s) ... renamed") that say nothing to someone who
    asked us to export; the caller reports its own progress. Warnings pass.
    """
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def filtered_stderr():
    """Drop absl's lines below ``TF_CPP_MIN_LOG_LEVEL`` from fd 2 for the duration of the block."""
    level = min_log_level()
    if level <= 0:
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    reader = threading.Thread(
        target=_forward, args=(read_end, saved, level), name="tfserve-stderr-filter", daemon=True
    )
    reader.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        os.dup2(saved, 2)  # the pipe's last write end closes: the reader sees EOF
        # A child process started inside the block may still hold the pipe; don't wait for it.
        reader.join(5)
        if not reader.is_alive():
            os.close(saved)


def _forward(read_end: int, out: int, level: int) -> None:
    pending = b""
    dropping = False
    try:
        while chunk := os.read(read_end, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = []
            for line in lines:
                dropping = _drop(line, level, dropping)
                if not dropping:
                    kept.append(line + b"\n")
            if kept:
                os.write(out, b"".join(kept))
        if pending and not _drop(pending, level, dropping):
            os.write(out, pending)
    finally:
        os.close(read_end)


def _drop(line: bytes, level: int, dropping: bool) -> bool:
    """Whether ``line`` is absl noise; a line after a dropped one is its message's continuation."""
    match = _ABSL_LINE.match(line)
    if match:
        return _SEVERITY[match.group(1)] < level
    if line.startswith(_ABSL_BANNER):
        return True
    return dropping and bool(line) and not _OWN_RECORD.match(line)


# Top-level packages whose first import starts TensorFlow's native runtime (Keras 3 imports TensorFlow).
_NOISY_PACKAGES = ("tensorflow", "keras", "tf_keras")


class _FilteredLoader:
    """A module loader that runs the real one's ``exec_module`` inside :func:`filtered_stderr`.

    Everything else (resource readers, ``get_data``, ``is_package``) is the real
    loader's, so the package behaves as if imported plainly.
    """

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with filtered_stderr():
            self._loader.exec_module(module)


class _QuietImporter:
    """A ``sys.meta_path`` finder for :data:`_NOISY_PACKAGES`: whoever imports them (a notebook
    cell's ``import keras``, the benchmark's CLI), absl's start-up lines are filtered like ours."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _NOISY_PACKAGES:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _FilteredLoader(spec.loader)
        return spec


def quiet_tensorflow_imports() -> None:
    """Filter the start-up lines of TensorFlow imported later in this process, by any code (idempotent).

    Only absl's lines below ``TF_CPP_MIN_LOG_LEVEL`` are dropped, so a user who
    sets it to 0 sees them all; a TensorFlow imported already is left alone.
    """
    if not any(isinstance(finder, _QuietImporter) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImporter())
