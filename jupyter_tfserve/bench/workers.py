"""The parent's side of the load-generator processes: start them, command them, and always reap them.

Workers are plain subprocesses (this interpreter running :mod:`.worker`)
rather than ``multiprocessing`` children: nothing else (no resource tracker,
no forked copy of a kernel holding TensorFlow) is started, and every process
we start is one we know by pid and end. :meth:`WorkerPool.close` runs on every
way out, KeyboardInterrupt included: ask politely (``exit`` and end of
stdin), then SIGTERM, then SIGKILL, waiting on each so no zombie is left.
"""

from __future__ import annotations

import itertools
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

from .options import BenchError
from .worker import read_message, write_message

START_TIMEOUT = 60.0
REPLY_TIMEOUT = 30.0


def _command() -> list[str]:
    """This interpreter running the worker; the package's own root is *appended* to the path, so a
    source checkout works too and nothing installed is shadowed."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = os.path.dirname(package)
    code = (
        f"import sys; sys.path.append({root!r}); "
        "from jupyter_tfserve.bench.worker import main; sys.exit(main())"
    )
    return [sys.executable, "-c", code]


class _Process:
    def __init__(self, env: dict):
        self.stderr = tempfile.TemporaryFile()
        self.popen = subprocess.Popen(
            _command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        self.replies: queue.Queue = queue.Queue()
        self.reader = threading.Thread(
            target=self._read, name=f"bench-worker-{self.popen.pid}", daemon=True
        )
        self.reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        stream = self.popen.stdout
        while True:
            try:
                message = read_message(stream)
            except (OSError, ValueError, EOFError):
                message = None
            self.replies.put(message)
            if message is None:
                return

    def send(self, message: dict) -> None:
        try:
            write_message(self.popen.stdin, message)
        except (BrokenPipeError, OSError, ValueError):
            raise BenchError(
                f"load-generator worker {self.pid} has stopped: {self.stderr_tail()}"
            ) from None

    def receive(self, message_id, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(
                    f"load-generator worker {self.pid} did not answer within {timeout:g} s"
                )
            try:
                message = self.replies.get(timeout=min(remaining, 0.25))
            except queue.Empty:
                continue
            if message is None:
                raise BenchError(
                    f"load-generator worker {self.pid} has stopped: {self.stderr_tail()}"
                )
            if message.get("id") != message_id:
                continue  # an answer to a command given up on
            if "error" in message:
                raise BenchError(f"load-generator worker failed: {message['error']}")
            return message

    def stderr_tail(self, limit: int = 400) -> str:
        try:
            self.stderr.seek(0)
            text = self.stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return "no output"
        lines = [line for line in text.splitlines() if line.strip()]
        return (lines[-1] if lines else "no output")[-limit:]

    def end(self, grace: float) -> None:
        popen = self.popen
        if popen.poll() is None:
            try:
                write_message(popen.stdin, {"cmd": "exit", "id": "exit"})
            except (OSError, ValueError):
                pass
        try:
            popen.stdin.close()
        except OSError:
            pass
        for action in (None, popen.terminate):
            if action is not None and popen.poll() is None:
                action()
            try:
                popen.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            popen.kill()
            popen.wait()
        self.reader.join(1.0)
        popen.stdout.close()
        self.stderr.close()


class WorkerPool:
    """``count`` worker processes sharing one setup (transport, target, encoded bodies)."""

    def __init__(self, count: int, setup: dict):
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        self._ids = itertools.count()
        self.processes: list[_Process] = []
        try:
            for _ in range(count):
                self.processes.append(_Process(env))
            for process in self.processes:
                process.send(setup)
            for process in self.processes:
                process.receive("ready", START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def __len__(self) -> int:
        return len(self.processes)

    def command(self, commands: list[dict], timeout: float = REPLY_TIMEOUT) -> list[dict]:
        """Send one command to each worker (in order), then wait for every answer."""
        sent = []
        for process, command in zip(self.processes, commands, strict=True):
            message_id = next(self._ids)
            process.send({**command, "id": message_id})
            sent.append(message_id)
        return [p.receive(i, timeout) for p, i in zip(self.processes, sent, strict=True)]

    def broadcast(self, command: dict, timeout: float = REPLY_TIMEOUT) -> list[dict]:
        return self.command([command] * len(self.processes), timeout)

    def close(self, grace: float = 2.0) -> None:
        """End every worker; a second Ctrl-C while waiting kills the rest at once."""
        interrupted = None
        for process in self.processes:
            try:
                process.end(0.0 if interrupted else grace)
            except KeyboardInterrupt as exc:
                interrupted = exc
                process.popen.kill()
                process.popen.wait()
        self.processes = []
        if interrupted is not None:
            raise interrupted

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
