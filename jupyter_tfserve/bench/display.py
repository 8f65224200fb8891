"""How benchmark and tuner tables read: rounded for people, at full precision in the data.

``result.df`` keeps every digit (for analysis, CSV, plots); what a cell, a
terminal or ``print`` shows goes through here: request rates as whole numbers,
milliseconds with two decimals, shares as percentages, a missing value as ``-``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

# Columns that count requests or rows per second.
RATE_COLUMNS = ("throughput", "inferences_per_second", "achieved_rate", "requests_per_second")
# Columns that are fractions of a whole.
SHARE_COLUMNS = ("padding_ratio", "full_share", "timeout_share")
# Columns that are averages of counts.
MEAN_COLUMNS = ("avg_batch_size", "avg_requests_per_batch")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _format(spec: str) -> Callable[[object], str]:
    return lambda value: "-" if _missing(value) else format(value, spec)


def formatter(column: str) -> Callable[[object], str] | None:
    """The display format of one column, or None to show it as pandas would."""
    if column in RATE_COLUMNS:
        return _format(".0f")
    if column.endswith("_ms"):
        return _format(".2f")
    if column in SHARE_COLUMNS:
        return _format(".0%")
    if column in MEAN_COLUMNS:
        return _format(".1f")
    return None


def formatters(columns: Iterable[str]) -> dict[str, Callable[[object], str]]:
    return {c: f for c in columns if (f := formatter(str(c))) is not None}


def to_text(frame) -> str:
    """The frame as a terminal shows it: rounded, no index."""
    return frame.to_string(index=False, formatters=formatters(frame.columns), na_rep="-")


def to_html(frame) -> str:
    """The frame as a notebook shows it: rounded, no index."""
    return frame.to_html(index=False, formatters=formatters(frame.columns), na_rep="-")


def styled(frame):
    """A pandas ``Styler`` of the frame, rounded for display; ``.data`` is the frame at full precision."""
    return frame.style.format(formatters(frame.columns), na_rep="-").hide(axis="index")
