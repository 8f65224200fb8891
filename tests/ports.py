"""Free loopback ports for the servers the tests start (one helper, shared by every test module)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nobody listens on right now (servers refuse to share one, so a clash fails loudly)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    """Whether something accepts connections on this loopback port now."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
