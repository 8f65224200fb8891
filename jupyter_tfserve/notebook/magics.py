"""``%tfserve``: export, serve, query and steer models from notebook cells.

One line magic (plus a cell form of ``predict``) with argparse subcommands::

    %tfserve export model --name mnist --sample x_test[:8]
    %tfserve serve mnist
    preds = %tfserve predict mnist x_test[:5]
    %tfserve label mnist stable 1 ; %tfserve label mnist canary 2
    %tfserve compare mnist stable 2 --data x_test[:512]

Configuration is traitlets (``%config TFServeMagics.rest_port = 9501``, or
``c.TFServeMagics.*`` in an IPython profile). The magic talks to the server it
discovers (the Jupyter extension that started this kernel, or ``url``), and
when there is none it starts one in this kernel (embedded mode) and says so
once. Results are rich objects (HTML tables, DataFrames) with clean text
fallbacks; a failure prints one line (``%tfserve --debug ...`` shows the
traceback) and marks the cell as failed, so "Run all" stops there.
"""

from __future__ import annotations

from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display
from traitlets import Bool, Enum, Float, Unicode, observe

from ..client.client import Client
from ..suggest import unknown_command
from .magic.commands import Commands
from .magic.errors import HelpShown, TFServeError, one_line
from .magic.grammar import build_parser, subcommands
from .magic.quoting import split_commands
from .magic.server_options import EMBEDDED_SERVER_OPTIONS, EmbeddedServerOptions


@magics_class
class TFServeMagics(Magics, EmbeddedServerOptions):
    """The ``%tfserve`` magic. Configure with ``%config TFServeMagics.<trait> = value``."""

    url = Unicode(
        "", help="Server URL (default: discover the Jupyter extension, else embedded)"
    ).tag(config=True)
    token = Unicode("", help="Token for url (default: discovered or $TFSERVE_TOKEN)").tag(
        config=True
    )
    models_root = Unicode("", help="Where exports go (default: what the server reports)").tag(
        config=True
    )
    embedded = Enum(
        ["auto", "always", "never"],
        "auto",
        help="Start a server in this kernel: when none is found (auto), always, or never",
    ).tag(config=True)
    tolerance = Float(1e-4, help="Export parity check: largest allowed abs difference").tag(
        config=True
    )
    load_timeout = Float(300.0, help="Seconds to wait for a model version to load").tag(config=True)
    request_timeout = Float(60.0, help="Seconds to wait for one answer from the server").tag(
        config=True
    )
    progress = Enum(["auto", "widget", "text", "none"], "auto", help="Progress display").tag(
        config=True
    )
    debug = Bool(False, help="Show full tracebacks instead of one-line errors").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, config=shell.config if shell is not None else None, **kwargs)
        self._client: Client | None = None
        self._parser = build_parser()
        self._commands = Commands(self)

    @observe("url", "token", "embedded", "request_timeout", *EMBEDDED_SERVER_OPTIONS)
    def _forget_client(self, change) -> None:
        self._client = None

    # ------------------------------------------------------------------ entry point
    @line_cell_magic
    def tfserve(self, line: str = "", cell: str | None = None):
        """Export, serve and query TensorFlow models. ``%tfserve --help`` lists the subcommands."""
        commands = split_commands(line)
        if not commands:
            self._parser.print_help()
            return None
        if cell is not None and len(commands) > 1:
            raise TFServeError("the cell form takes one command")
        result = None
        for index, tokens in enumerate(commands):
            if index and result is not None:
                display(result)
            result = self._run(tokens, cell)
        return result

    def _run(self, tokens: list[str], cell: str | None):
        commands = subcommands(self._parser)
        if tokens and not tokens[0].startswith("-") and tokens[0] not in commands:
            raise TFServeError(unknown_command(tokens[0], commands))
        try:
            args = self._parser.parse_args(tokens)
        except HelpShown:
            return None
        if args.command is None:
            self._parser.print_help()
            return None
        try:
            return getattr(self._commands, args.command)(args, cell)
        except TFServeError:
            raise
        except Exception as exc:
            if self.debug or args.debug:
                raise
            raise TFServeError(one_line(exc)) from None

    # ------------------------------------------------------------------ connection
    def client(self) -> Client:
        """The client for the server this kernel uses; starts the embedded server when there is none."""
        if self._client is None:
            from .api import connect

            endpoint = connect(
                self.url or None,
                self.token or None,
                embedded=self.embedded,
                models_root=self.models_root,
                **self.embedded_server_options(),
            )
            self._client = Client(endpoint=endpoint, timeout=self.request_timeout)
        return self._client

    def resolved_models_root(self) -> str:
        """Where exports go: the trait, else the server's models_root, else the default (nothing started)."""
        from ..client.endpoints import models_root_for

        endpoint = self._client.endpoint if self._client is not None else None
        if endpoint is None and self.url:
            endpoint = self.client().endpoint
        return models_root_for(self.models_root or None, endpoint)

    @property
    def connected_client(self) -> Client | None:
        """The client, when one was made already (None: nothing connected, nothing started)."""
        return self._client

    def evaluate(self, expression: str, what: str):
        """``expression`` evaluated in the user's namespace; a failure names ``what`` it was for."""
        try:
            return self.shell.ev(expression)
        except Exception as exc:
            raise TFServeError(
                f"cannot evaluate {what} {expression!r}: {type(exc).__name__}: {exc}"
            ) from None

    def progress_view(self, title: str):
        """A progress bar or text lines for a long step, as the ``progress`` trait asks."""
        from ..client.progress import Progress

        return Progress(title, self.progress)


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(TFServeMagics(ipython))
    magics = ipython.magics_manager.registry["TFServeMagics"]
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)


def unload_ipython_extension(ipython) -> None:
    from . import embedded

    magics = ipython.magics_manager.registry.pop("TFServeMagics", None)
    if magics is not None and magics in ipython.configurables:
        ipython.configurables.remove(magics)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("tfserve", None)
    embedded.stop()
