"""The options ``%tfserve`` hands to a server it starts in this kernel (embedded mode).

They are the server's own options (``ServerOptions``: the REST and gRPC ports,
the poll interval, batching) exposed as the magic's traits, derived from their
one declaration in ``core.options``: the traits, the client's reconnection when
one changes, and the server's start all read this one list.
"""

from __future__ import annotations

from ...core.options import configurable_base, magic_options


def _embedded_server_options(self) -> dict:
    """The options as keyword arguments of the embedded server's start."""
    return {name: getattr(self, name) for name in EMBEDDED_SERVER_OPTIONS}


# Traits of the magic that configure the embedded server (``%config TFServeMagics.rest_port =
# 9501``): names, defaults and help come from ``core.options``, where every server option is
# declared once.
EmbeddedServerOptions = configurable_base(
    "EmbeddedServerOptions",
    magic_options(),
    __name__,
    embedded_server_options=_embedded_server_options,
)

EMBEDDED_SERVER_OPTIONS = tuple(EmbeddedServerOptions.class_own_traits())
