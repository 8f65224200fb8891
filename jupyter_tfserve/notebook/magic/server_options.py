"""The options ``%tfserve`` hands to a server it starts in this kernel (embedded mode).

They are the server's own options (``ServerOptions``: the REST and gRPC ports,
the poll interval, batching) exposed as the magic's traits, declared here and
nowhere else in the magic: the traits, the client's reconnection when one
changes, and the server's start all read this one list.
"""

from __future__ import annotations

from traitlets import Bool, Float, Int
from traitlets.config import Configurable


class EmbeddedServerOptions(Configurable):
    """Traits of the magic that configure the embedded server (``%config TFServeMagics.rest_port = 9501``)."""

    rest_port = Int(8501, help="Embedded mode's REST port (a free one if taken)").tag(config=True)
    grpc_port = Int(8500, help="Embedded mode's gRPC port (a free one if taken; 0 = off)").tag(
        config=True
    )
    poll_seconds = Float(1.0, help="Embedded mode: how often model directories are re-read").tag(
        config=True
    )
    enable_batching = Bool(
        False, help="Embedded mode: batch requests server-side (set before the server starts)"
    ).tag(config=True)

    def embedded_server_options(self) -> dict:
        """The options as keyword arguments of the embedded server's start."""
        return {name: getattr(self, name) for name in EMBEDDED_SERVER_OPTIONS}


EMBEDDED_SERVER_OPTIONS = tuple(EmbeddedServerOptions.class_own_traits())
