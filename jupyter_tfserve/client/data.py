"""What a notebook user passes as model input, mapped onto a signature's named inputs, and back.

Users hold numpy arrays, pandas DataFrames, dicts and plain lists; signatures
have named, typed inputs. This is the one place that maps one onto the other,
shared by export (samples, parity, warmup) and the client (predict), so both
accept the same things and refuse the same things with the same message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class InputMismatch(ValueError):
    """Data that does not fit the signature's inputs (names or count)."""


def is_dataframe(data) -> bool:
    """True for a pandas DataFrame, without importing pandas when it is not loaded."""
    return type(data).__name__ == "DataFrame" and type(data).__module__.startswith("pandas")


def named_inputs(data, input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Map user data onto the input aliases ``input_names``.

    * a DataFrame: one column per input, matched by name (a column of arrays is stacked);
    * a dict: keys are the input names;
    * anything else (ndarray, list, scalar): the one input of a single-input signature.
    """
    names = list(input_names)
    if is_dataframe(data):
        columns = [str(c) for c in data.columns]
        if sorted(columns) != sorted(names):
            raise InputMismatch(
                f"DataFrame columns {columns} do not match the signature's inputs {sorted(names)}"
                + (
                    "; pass df.to_numpy() to send the frame as its one input"
                    if len(names) == 1
                    else ""
                )
            )
        return {str(c): _column(data[c]) for c in data.columns}
    if isinstance(data, Mapping):
        keys = [str(k) for k in data]
        if sorted(keys) != sorted(names):
            raise InputMismatch(
                f"Input keys {sorted(keys)} do not match the signature's inputs {sorted(names)}"
            )
        return {str(k): np.asarray(v) for k, v in data.items()}
    if len(names) != 1:
        raise InputMismatch(
            f"The signature has {len(names)} inputs {sorted(names)}: pass a dict or a DataFrame keyed by them"
        )
    return {names[0]: np.asarray(data)}


def _column(series) -> np.ndarray:
    values = series.to_numpy()
    if values.dtype == object and len(values) and isinstance(values[0], (list, tuple, np.ndarray)):
        return np.stack([np.asarray(v) for v in values])
    return values


def batch_size(inputs: Mapping[str, np.ndarray]) -> int | None:
    """The common leading dimension of the inputs, when they all have one."""
    sizes = {v.shape[0] for v in inputs.values() if np.ndim(v) > 0}
    return sizes.pop() if len(sizes) == 1 else None


def outputs_frame(outputs: Mapping[str, np.ndarray], index=None):
    """Outputs as a DataFrame with the input's index: one column per output, arrays in cells when wider than one."""
    import pandas as pd

    rows = len(index) if index is not None else batch_size(outputs)
    columns = {}
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.ndim == 0 or array.shape[0] != rows:
            raise InputMismatch(
                f"Output {name!r} has shape {array.shape}, not one row per input row ({rows}): "
                "pass an array or a dict to get the outputs as they are"
            )
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        columns[name] = list(array) if array.ndim > 1 else array
    return pd.DataFrame(columns, index=index)
