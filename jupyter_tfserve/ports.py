"""Ports on this machine: is one taken, by whom, and a free one; shared by every host that opens them.

The Jupyter extension, the kernel's embedded server and the ``tfserve`` command
all check their ports before binding, so a taken one is named (with its owner
when this user may see it) instead of failing deep inside a server's start.
Standard library only.
"""

from __future__ import annotations

import errno
import os
import socket

LOOPBACK = "127.0.0.1"


def port_taken(host: str, port: int) -> bool:
    """True when something already listens on (host, port).

    The probe sets ``SO_REUSEADDR`` like the servers themselves do, so a port
    that only has connections in TIME_WAIT counts as free, while one with a
    listener (even a ``SO_REUSEPORT`` one) counts as taken.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def port_owner(port: int) -> str | None:
    """``pid 1234 (python3 -m http.server 8501)`` for the process listening on TCP ``port``, when this user may see it.

    Linux only (``/proc``): the listening socket's inode is matched against the
    processes' open file descriptors. None when unknown (another user's process,
    another platform), so callers still name the port.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    # local_address is HEXIP:HEXPORT; state 0A is LISTEN
                    if (
                        len(fields) > 9
                        and fields[3] == "0A"
                        and int(fields[1].rsplit(":", 1)[1], 16) == port
                    ):
                        inodes.add(f"socket:[{fields[9]}]")
        except OSError:
            continue
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(
                os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
                for fd in os.listdir(f"/proc/{pid}/fd")
            ):
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    command = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
                return f"pid {pid} ({command[:80]})" if command else f"pid {pid}"
        except OSError:  # gone meanwhile, or not ours
            continue
    return None


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now (the kernel picks it), for a server about to bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
