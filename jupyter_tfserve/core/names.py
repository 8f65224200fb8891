"""The one rule for model names and version labels, wherever they come from.

A name becomes a directory (``tfserve sync`` writes ``<target>/<name>``), a URL
segment and a word in the shell lines the notebook and the panel print, so it
must be harmless in all three: letters, digits, ``_``, ``.`` and ``-``, not
starting with a dot or a dash (``..``, hidden files, command-line options),
and short enough for any file system. This module imports nothing heavy, so
``tfserve sync`` and the notebook can check names without the engine.
"""

from __future__ import annotations

import re

MAX_LENGTH = 128
RULE = f"letters, digits, '_', '.' and '-', not starting with '.' or '-', at most {MAX_LENGTH} characters"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def is_valid_name(name: object) -> bool:
    """True when ``name`` follows the rule (a str, matching, not too long)."""
    return isinstance(name, str) and len(name) <= MAX_LENGTH and _NAME.fullmatch(name) is not None


def name_problem(name: object, what: str = "Model name") -> str:
    """The one-line refusal for a name that breaks the rule, or "" when it follows it."""
    if is_valid_name(name):
        return ""
    shown = repr(name) if isinstance(name, str) else type(name).__name__
    return f"{what} {shown} is not allowed: use {RULE}"
