"""Who may use the server's own ports: the bearer token, the Host names, the browser rules.

The host decides (a token or none, names it answers to) when it builds the
server; this module only applies that to each request, the same way on every
port. REST and gRPC take the token as ``Authorization: token <t>`` (Jupyter's
form) or ``Bearer <t>``; health and readiness stay open so that load
balancers and probes need no secret. The routes Jupyter mounts never come
through here: Jupyter's own login, XSRF, Host and Origin checks guard them.

Browser defences, for a port any web page the user visits can send requests
to: a ``Host`` that is not one of this server's names is refused (DNS
rebinding makes a foreign name resolve to 127.0.0.1), and a request that
changes what is served must be ``application/json`` (a page cannot send that
cross-origin without a CORS preflight, which is never granted) and, when it
carries an ``Origin``, come from this server's own origin.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from ..core.status import Code, ServingError

# Paths a prober may reach without the token (relative to the port's root).
OPEN_PATHS = frozenset({"/tfserve/api/ready"})
# gRPC methods a prober may call without the token.
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "localhost.localdomain"})
MANAGEMENT_PREFIX = "/tfserve/api"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class PortGuard:
    """The access rules of one server's ports.

    ``token``: required on every request but health and readiness when not
    None (an empty token then refuses everything: the host wants a token and
    has none to give). ``bind_host``: the address the ports listen on; with a
    wildcard address the server answers to any name, so only
    ``allowed_hosts`` (when given) restrict the Host header. ``missing``: the
    one line that tells a caller without the token how to get it.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        bind_host: str = "127.0.0.1",
        allowed_hosts: Iterable[str] = (),
        missing: str = "This port needs the server's token: send 'Authorization: token <token>'.",
    ):
        self.token = token
        self.missing = missing
        self.allowed_hosts = frozenset(h.strip().lower() for h in allowed_hosts if h.strip())
        self.any_host = _is_wildcard(bind_host) and not self.allowed_hosts
        self.names = LOOPBACK_NAMES | self.allowed_hosts | {bind_host.strip("[]").lower()}

    @property
    def principal(self) -> str | None:
        """Who a request that passed this guard is: the token holder, or nobody in particular."""
        return "token holder" if self.token is not None else None

    # ------------------------------------------------------------------ tokens
    def token_ok(self, authorization: str) -> bool:
        """Whether an ``Authorization`` value carries the token (``token <t>`` or ``Bearer <t>``)."""
        if self.token is None:  # TF Serving's open ports: no header to parse on each request
            return True
        scheme, _, value = authorization.strip().partition(" ")
        if not self.token or scheme.lower() not in ("token", "bearer"):
            return False
        return hmac.compare_digest(value.strip().encode(), self.token.encode())

    def unauthenticated(self) -> ServingError:
        return ServingError(Code.UNAUTHENTICATED, self.missing)

    # ------------------------------------------------------------------ HTTP
    def check_http(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        """Raise the refusal of a request to a port of the server's own, if it is refused."""
        host = headers.get("host", "")
        if not self.host_ok(host):
            raise ServingError(
                Code.PERMISSION_DENIED,
                f"Host {host!r} is not a name this server answers to; "
                "list it in rest_api_allowed_hosts to reach the server by that name",
            )
        if path not in OPEN_PATHS and not self.token_ok(headers.get("authorization", "")):
            raise self.unauthenticated()
        if method not in _READ_METHODS and (
            path == MANAGEMENT_PREFIX or path.startswith(MANAGEMENT_PREFIX + "/")
        ):
            _check_change_request(method, host, headers)

    def host_ok(self, host: str) -> bool:
        """Browsers always send a Host; a request without one (HTTP/1.0, a raw client) names nothing to check."""
        if self.any_host or not host:
            return True
        return _hostname(host) in self.names


def _check_change_request(method: str, host: str, headers: Mapping[str, str]) -> None:
    """A POST must be JSON, and any change from this server's own origin when an Origin is sent.

    POST is the one changing method a page can send cross-origin without a CORS
    preflight, and only with a form or text content type; PUT and DELETE always
    need a preflight (never granted), so a body-less DELETE needs no content type.
    """
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if method == "POST" and content_type != "application/json":
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"POST requests to {MANAGEMENT_PREFIX} must be sent with Content-Type: application/json",
        )
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host.strip().lower():
        raise ServingError(
            Code.PERMISSION_DENIED, f"Origin {origin!r} may not change what this server serves"
        )


def _hostname(host: str) -> str:
    """The name in a Host header, without the port (``[::1]:8501`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _is_wildcard(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_unspecified
    except ValueError:
        return address in ("", "*")
