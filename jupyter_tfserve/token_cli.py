"""``tfserve token``: print the token of the Jupyter server that hosts the model server.

Curl lines and snippets never carry the token itself (notebook outputs are saved
and shared); they read it when they run: ``-H "Authorization: token $(tfserve token)"``.
The token is found the way kernels find their server (``discovery.discover``):
``$TFSERVE_URL``/``$TFSERVE_TOKEN``, the Jupyter server that started this process,
or the only one running. With several running, ``--url`` picks one by any of its
addresses (the Jupyter URL, the mounted API, or a standalone REST/gRPC port).
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from .client.discovery import ServerInfo, discover, list_servers


def _ports(info: ServerInfo) -> set[int]:
    ports = {urlsplit(url).port for url in (info.url, info.jupyter_url) if url}
    return {p for p in ports | {info.rest_port, info.grpc_port} if p}


def find(url: str | None) -> ServerInfo:
    """The server whose token is wanted; ``LookupError`` says why there is none."""
    if not url:
        info = discover()
        if info is not None:
            return info
        servers = list_servers(with_models=False)
        if not servers:
            raise LookupError("no Jupyter server with jupyter-tfserve is running on this machine")
        urls = ", ".join(s.jupyter_url or s.url for s in servers)
        raise LookupError(
            f"{len(servers)} Jupyter servers with jupyter-tfserve are running ({urls}): pass --url"
        )
    target = urlsplit(url if "://" in url else f"http://{url}")
    for info in list_servers(with_models=False):
        if target.port in _ports(info):
            return info
    raise LookupError(f"no running Jupyter server with jupyter-tfserve answers at {url}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tfserve token",
        description="Print the Jupyter token that the model server in Jupyter requires "
        '(use it as: curl -H "Authorization: token $(tfserve token)" ...).',
    )
    parser.add_argument(
        "--url",
        help="an address of the server (Jupyter's URL, or host:port of its REST or gRPC port), "
        "when several Jupyter servers run",
    )
    args = parser.parse_args(argv)
    try:
        info = find(args.url)
    except LookupError as exc:
        print(f"tfserve token: {exc}", file=sys.stderr)
        return 1
    print(info.token)
    return 0
