"""Floats as TF Serving writes them in JSON: 6 significant digits when they read back, else 9 or 17.

Two writers give identical text: a per-value one for a few floats, and a
vectorised one for big tensors that computes the decimal digits in numpy.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable

import numpy as np

_F32 = struct.Struct("<f")
_FMT6 = "%.6g".__mod__
_FMT9 = "%.9g".__mod__
_FMT17 = "%.17g".__mod__
_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_INF = math.inf
_FLT_MAX = float(np.finfo(np.float32).max)

# Rounding modes of the float writer, by how a dtype round-trips.
_M_F32 = 0  # 6 digits if they read back as the same float32, else 9
_M_F64 = 1  # 6 digits if they read back as the same float64, else 17
_M_SHORT = 2  # <= 11-bit mantissas (half, bfloat16, float8): 6 digits always read back


def _to_f32(value: float) -> float:
    try:
        return _F32.unpack(_F32.pack(value))[0]
    except OverflowError:
        return math.copysign(_INF, value)


def _fmt_float(value: float, mode: int) -> str:
    """One float as a JSON number token, TF Serving style (reference for the fast paths)."""
    if value != value:
        return "NaN"
    if value == _INF:
        return "Infinity"
    if value == -_INF:
        return "-Infinity"
    text = _FMT6(value)
    if mode == _M_F32:
        if _to_f32(float(text)) != value:
            text = _FMT9(value)
    elif mode == _M_F64:
        if float(text) != value:
            text = _FMT17(value)
    if "." in text or "e" in text:
        return text
    return text + ".0"


def _as_f32(values: list[float]) -> tuple[float, ...]:
    """``values`` rounded to float32 in one struct round trip (a few times cheaper than numpy for a few values)."""
    layout = _f32_layout(len(values))
    try:
        return layout.unpack(layout.pack(*values))
    except OverflowError:  # one rounds past float32's range: round each on its own
        return tuple(_to_f32(value) for value in values)


@functools.lru_cache(maxsize=64)
def _f32_layout(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}f")


def _float_mode(dtype: np.dtype) -> int:
    if dtype == np.float32:
        return _M_F32
    if dtype == np.float64:
        return _M_F64
    return _M_SHORT


def _float_tokens_small(flat: np.ndarray, mode: int) -> list[str]:
    """Tokens for a few floats: per-element Python formatting is cheapest here.

    Each step is one C-level call over all the values: ``%`` of a format
    string repeated per value (6 digits, then 9 or 17 where 6 do not read
    back, which is most float32 model outputs), one struct round trip to check
    the 6-digit tokens, one scan for tokens that need ``.0`` or a JSON spelling.
    """
    if mode == _M_SHORT:
        with np.errstate(invalid="ignore"):
            flat = flat.astype(np.float32)
    values = tuple(flat.tolist())
    if not values:
        return []
    tokens = (_joined_format("%.6g", len(values)) % values).split(",")
    if mode == _M_F32:
        back = _as_f32(list(map(float, tokens)))
    elif mode == _M_F64:
        back = tuple(map(float, tokens))
    else:
        back = values
    if back != values:  # NaNs land here too, and keep their 6-digit token
        wide = "%.9g" if mode == _M_F32 else "%.17g"
        longer = (_joined_format(wide, len(values)) % values).split(",")
        tokens = [
            t if b == v or v != v else w
            for t, b, v, w in zip(tokens, back, values, longer, strict=True)
        ]
    if all(("." in t or "e" in t) for t in tokens):
        return tokens
    return [t if ("." in t or "e" in t) else (_SPECIAL.get(t) or t + ".0") for t in tokens]


@functools.lru_cache(maxsize=128)
def _joined_format(each: str, count: int) -> str:
    """``"%.6g,%.6g,..."``: one format string formats ``count`` values in one call."""
    return ",".join([each] * count)


# Vectorised writer.  Decimal digits are computed in float64 arithmetic, whose
# error (< 3e-16 relative) is far below the rounding decisions it has to make;
# the few values that land too close to a decision are flagged and formatted
# one by one, so the output is identical to _fmt_float for every value.
_P10_OFF = 64
_P10 = np.array([float(f"1e{k}") for k in range(-_P10_OFF, _P10_OFF + 1)])
_I10 = np.array([10**k for k in range(19)], dtype=np.int64)
_ROUND_TOL = {6: 1e-9, 9: 1e-6}
_TOKEN_WIDTH = 29  # sign, "0.000", 9 digits with 8 dots between, ".0", "e+XX"
_CHUNK = 1 << 16
_SMALL = 512  # below this, per-value Python formatting is cheaper


def _round_sig(ax: np.ndarray, e: np.ndarray, digits: int):
    """Round positive *ax* (with decimal exponent *e*) to *digits* significant digits.

    Returns (mantissa as int64 in [10**(digits-1), 10**digits), exponent, unsure).
    """
    scaled = ax * _P10[(digits - 1) - e + _P10_OFF]
    floor = np.floor(scaled)
    frac = scaled - floor
    unsure = (
        (np.abs(frac - 0.5) < _ROUND_TOL[digits])
        | (floor < 10 ** (digits - 1))
        | (floor >= 10**digits)
    )
    mant = np.minimum(np.maximum(floor, 0), 10**digits).astype(np.int64) + (frac > 0.5)
    carry = mant >= 10**digits
    mant -= carry * (10**digits - 10 ** (digits - 1))
    return mant, e + carry, unsure


def _put(out: np.ndarray, rows: np.ndarray, tokens: list[bytes]) -> None:
    """Overwrite the columns *rows* of the transposed token matrix *out* with *tokens*."""
    width = out.shape[0]
    block = np.array(tokens, dtype=f"S{width}").view(np.uint8).reshape(len(tokens), width)
    out[:, rows] = block.T


def _write_float_tokens(x: np.ndarray, mode: int, out: np.ndarray) -> None:
    """Write the JSON token of each float64 value of *x* into a column of *out*.

    *out* is a (token width, n) uint8 matrix of zeros; zero bytes are dropped
    later.  Column-per-value keeps every write below contiguous.
    """
    # Selections below are arithmetic blends rather than np.where, which is
    # several times slower on unpredictable masks.
    neg = np.signbit(x)
    ax = np.abs(x)
    finite = np.isfinite(ax)
    regular = finite & (ax != 0)
    axr = ax
    if not regular.all():
        axr = ax.copy()
        axr[~regular] = 1.0
    e = np.floor(np.log10(axr)).astype(np.int64)
    e = np.minimum(np.maximum(e, -50), 45)
    e -= axr < _P10[e + _P10_OFF]
    e += axr >= _P10[e + 1 + _P10_OFF]
    mant6, e6, unsure = _round_sig(axr, e, 6)
    if mode == _M_SHORT:
        mant, exp, digits = mant6, e6, 6
    else:
        # The 6-digit decimal as a double; one of the two factors is 1.0, so
        # this is a single correctly rounded operation.
        j = e6 - 5
        jp = np.minimum(np.maximum(j, 0), _P10_OFF)
        jn = np.minimum(np.maximum(-j, 0), _P10_OFF)
        d6 = mant6 * _P10[jp + _P10_OFF] / _P10[jn + _P10_OFF]
        if mode == _M_F64:
            # Exact powers of ten make d6 the correctly rounded double; outside
            # that range the value is formatted by itself.  Values that need 17
            # digits are printed by the C formatter in one batch.
            unsure |= (j < -22) | (j > 22)
            long = (d6 != axr) & ~unsure & regular
            mant, exp, digits = mant6, e6, 6
        else:
            # 6 digits round-trip iff they lie strictly between the midpoints to
            # the neighbouring float32 values (both exact in float64).
            v32 = axr.astype(np.float32)
            with np.errstate(over="ignore"):
                lo = np.nextafter(v32, np.float32(0)).astype(np.float64)
                hi = np.nextafter(v32, np.float32(np.inf)).astype(np.float64)
            mid_lo = (axr + lo) * 0.5
            mid_hi = (axr + hi) * 0.5
            tol = d6 * 1e-15  # > 4 ulps
            unsure |= (np.abs(d6 - mid_lo) <= tol) | (np.abs(d6 - mid_hi) <= tol)
            use6 = (d6 > mid_lo) & (d6 < mid_hi)
            mant9, e9, unsure9 = _round_sig(axr, e, 9)
            unsure |= unsure9 & ~use6
            mant = mant9 + (mant6 * 1000 - mant9) * use6
            exp = e9 + (e6 - e9) * use6
            digits = 9 - 3 * use6
    if mode != _M_F32:
        mant = mant * 1000  # all mantissas as 9 digits
    _write_decimal(out, neg, mant, exp, digits)
    unsure &= regular
    if not regular.all():
        nan = np.isnan(x)
        zero = finite & ~regular
        inf = ~finite & ~nan
        for mask, token in (
            (zero & ~neg, b"0.0"),
            (zero & neg, b"-0.0"),
            (nan, b"NaN"),
            (inf & ~neg, b"Infinity"),
            (inf & neg, b"-Infinity"),
        ):
            rows = np.flatnonzero(mask)
            if rows.size:
                _put(out, rows, [token] * rows.size)
    if mode == _M_F64 and long.any():
        rows = np.flatnonzero(long)
        tokens = list(map(_FMT17, x[rows].tolist()))
        _put(out, rows, [(t if "." in t or "e" in t else t + ".0").encode() for t in tokens])
    if unsure.any():
        rows = np.flatnonzero(unsure)
        _put(out, rows, [_fmt_float(v, mode).encode() for v in x[rows].tolist()])


def _write_decimal(out: np.ndarray, neg, mant9, exp, digits) -> None:
    """Lay out ``mant9 * 10**(exp - 8)`` like printf ``%.<digits>g`` (+ ``.0``) in *out*.

    Every byte has a fixed slot (row of *out*); unused slots stay 0 and are
    squeezed out later, which keeps the whole layout vectorised.
    """
    u8 = np.uint8
    digit = np.empty((9, mant9.shape[0]), u8)
    rest = mant9
    trailing = np.ones(mant9.shape[0], bool)
    tz = np.zeros(mant9.shape[0], np.int64)
    for c in range(8, -1, -1):
        quot = rest // 10  # fast division by a constant (np.divmod is not)
        d = rest - quot * 10
        rest = quot
        digit[c] = d
        trailing &= d == 0
        tz += trailing
    nd = 9 - tz  # significant digits after dropping trailing zeros
    sci = (exp < -4) | (exp >= digits)
    fixpos = ~sci & (exp >= 0)
    fixneg = ~sci & (exp < 0)
    whole = fixpos & (nd <= exp + 1)  # an integer: all digits up to exp, then ".0"
    shown = nd + (exp + 1 - nd) * whole
    digit += u8(48)
    out[0] = neg * u8(45)  # '-'
    out[1] = fixneg * u8(48)  # '0'
    out[2] = fixneg * u8(46)  # '.'
    lead_zeros = (-exp - 1) * fixneg
    for i in range(3):
        out[3 + i] = (lead_zeros > i) * u8(48)
    dot_at = (exp + 1) * (fixpos & ~whole) + (sci & (nd > 1)) - 1
    for c in range(9):
        out[6 + 2 * c] = (c < shown) * digit[c]
        if c < 8:
            out[7 + 2 * c] = (dot_at == c) * u8(46)
    out[23] = whole * u8(46)
    out[24] = whole * u8(48)
    aexp = np.abs(exp)
    out[25] = sci * u8(101)  # 'e'
    out[26] = sci * (43 + 2 * (exp < 0)).astype(u8)  # '+' or '-'
    out[27] = sci * (aexp // 10 + 48).astype(u8)
    out[28] = sci * (aexp % 10 + 48).astype(u8)


def _layout(
    n: int,
    inner: tuple[int, ...],
    row_sep: bool,
    width: int,
    fill: Callable[[int, int, np.ndarray], None],
) -> bytes:
    """Nest *n* fixed-width tokens into JSON arrays of shape *inner*, vectorised.

    Brackets, commas and the tokens go into one zero-padded byte matrix per
    chunk (a column per value); dropping the zero bytes yields the text.  With
    *row_sep*, groups of ``prod(inner)`` tokens are separated by newlines
    instead of commas, so the caller can split the text into rows.
    """
    k = len(inner)
    blocks = [math.prod(inner[j:]) for j in range(k)]
    group = math.prod(inner)
    parts = []
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        idx = np.arange(start, stop)
        mat = np.zeros((2 * k + width + 1, stop - start), np.uint8)
        for j, block in enumerate(blocks):
            mat[j] = (idx % block == 0) * np.uint8(91)  # '['
            mat[k + width + (k - 1 - j)] = ((idx + 1) % block == 0) * np.uint8(93)  # ']'
        fill(start, stop, mat[k : k + width])
        sep = mat[-1]
        sep[:] = 44  # ','
        if row_sep:
            sep[(idx + 1) % group == 0] = 10  # '\n'
        if stop == n:
            sep[-1] = 0
        flat = np.ascontiguousarray(mat.T)
        parts.append(flat[flat != 0].tobytes())
    return b"".join(parts)
