"""A magic line as commands and tokens: Python expressions stay whole, quotes come off plain strings."""

from __future__ import annotations

from .errors import TFServeError


def unquote(text: str) -> str:
    """Arguments are split keeping quotes (so expressions stay intact); plain string args lose them."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def split_commands(line: str) -> list[list[str]]:
    """Tokens of each ``;``-separated command.

    Whitespace splits tokens only outside quotes and brackets, so Python
    expressions (``x[:5, :]``, ``df[['a', 'b']]``) stay one token each.
    """
    commands: list[list[str]] = [[]]
    token: list[str] = []
    depth, quote, escaped = 0, "", False

    def flush() -> None:
        if token:
            commands[-1].append("".join(token))
            token.clear()

    for char in line:
        if quote:
            token.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            token.append(char)
        elif char in "([{":
            depth += 1
            token.append(char)
        elif char in ")]}":
            depth -= 1
            token.append(char)
        elif depth <= 0 and char.isspace():
            flush()
        elif depth <= 0 and char == ";":
            flush()
            commands.append([])
        else:
            token.append(char)
    if quote or depth:
        raise TFServeError(
            f"cannot parse the command line: unclosed {'quote' if quote else 'bracket'}"
        )
    flush()
    cleaned = []
    for command in commands:
        if command and command[0] in ("%tfserve", "tfserve"):
            command = command[1:]
        if command:
            cleaned.append(command)
    return cleaned
