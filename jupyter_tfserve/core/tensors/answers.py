"""REST predict answers -> numpy, for clients: the reverse of ``json_encode``.

An answer says little about its tensors: JSON has no dtypes, one output is
written bare, strings may be ``{"b64": ...}``. The signature's output dtypes
fill that in, so a REST answer decodes to the arrays a gRPC answer carries.
Output names come from the answer itself when it carries them (several
outputs), so an answer from a newer version than the caller's signature still decodes.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import numpy as np

from .dtypes import numpy_dtype


def decode_predict_answer(
    answer: dict, output_dtypes: Mapping[str, int | None]
) -> dict[str, np.ndarray]:
    """A parsed predict answer (row or columnar) as one array per output.

    ``output_dtypes`` maps the signature's output aliases to their ``DataType``
    (None where unknown: numpy guesses from the JSON).
    """
    only = next(iter(output_dtypes), "outputs")
    several = len(output_dtypes) != 1
    if "predictions" in answer:
        rows = answer["predictions"]
        named = several and rows and isinstance(rows[0], dict)
        columns = {a: [row[a] for row in rows] for a in rows[0]} if named else {only: rows}
    else:
        outputs = answer["outputs"]
        columns = outputs if several and isinstance(outputs, dict) else {only: outputs}
    return {
        alias: _decode_json_tensor(value, output_dtypes.get(alias))
        for alias, value in columns.items()
    }


def _decode_json_tensor(value, datatype: int | None) -> np.ndarray:
    """A JSON tensor as numpy in ``datatype``; strings and ``{"b64": ...}`` become bytes."""
    if datatype is not None and numpy_dtype(datatype) == np.dtype(object):
        return _strings(value)
    array = np.asarray(value)
    if datatype is not None:
        array = array.astype(numpy_dtype(datatype))
    return array


def _strings(value) -> np.ndarray:
    def leaf(v):
        if isinstance(v, dict) and "b64" in v:
            return base64.b64decode(v["b64"])
        return v.encode() if isinstance(v, str) else v

    def walk(v):
        return [walk(x) for x in v] if isinstance(v, list) else leaf(v)

    nested = walk(value)
    shape = []
    probe = nested
    while isinstance(probe, list):
        shape.append(len(probe))
        probe = probe[0] if probe else None
    flat = np.empty(int(np.prod(shape)) if shape else 1, dtype=object)
    flat[:] = list(_flatten(nested)) if shape else [nested]
    return flat.reshape(shape)


def _flatten(value):
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value
