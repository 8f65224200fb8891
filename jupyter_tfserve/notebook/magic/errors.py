"""How ``%tfserve`` fails: one line that names the problem, not a traceback."""

from __future__ import annotations

from ...core.status import ServingError


class TFServeError(Exception):
    """A failure shown to the user as one line (IPython renders ``_render_traceback_`` instead of a traceback)."""

    def _render_traceback_(self) -> list[str]:
        return [f"tfserve: {self}"]


class HelpShown(Exception):
    """``--help`` printed the usage; nothing else to do."""


# Lines of TensorFlow runtime errors that locate the failure in the graph rather than explain it.
_TF_NOISE = (
    "Graph execution error",
    "Detected at node",
    "<stack traces unavailable>",
    "[[",
    "File ",
)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line, without TensorFlow's graph-location boilerplate."""
    message = exc.message if isinstance(exc, ServingError) else str(exc) or type(exc).__name__
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_TF_NOISE)]
    text = " ".join(useful or lines)
    return text if len(text) <= 600 else text[:600] + " ..."
