"""One-line answers to a mistyped command, shared by ``tfserve`` and ``%tfserve``.

argparse answers ``tfserve bnech`` with its whole usage and ``%tfserve serv``
with every choice; a user wants the one word they meant.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_command(word: str, commands: Iterable[str]) -> str:
    """``unknown command 'serv' — did you mean 'serve'?``, or the list of commands when nothing is close."""
    choices = list(commands)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"unknown command {word!r} — did you mean {close[0]!r}?"
    return f"unknown command {word!r} (commands: {', '.join(choices)})"
