"""A per-request bound on the tensor bytes a request can make the server allocate.

A request's size says little about what decoding it costs: a 41-byte
TensorProto can declare shape ``[1e8]`` with one value, which the serving
runtime repeats to fill the shape (400 MB, and more again when the model runs
on it). The codec charges every tensor to the request's :class:`TensorBudget`
*before* allocating it, so a request over the limit is refused with the shape
named, and nothing is allocated for it.
"""

from __future__ import annotations

import math

from ..status import Code, ServingError
from .dtypes import _NUMPY_DTYPES, _T, _dtype_string, _shape_string

# Default of the ``max_request_tensor_bytes`` server option: the REST body limit's size.
DEFAULT_MAX_REQUEST_TENSOR_BYTES = 256 * 1024 * 1024
# What one string element costs beyond its bytes: a numpy object slot, and TensorFlow's
# tstring once the model runs on it.
STRING_ELEMENT_BYTES = 8 + 32


class TensorBudget:
    """The bytes of input tensors one request may still allocate; ``charge`` refuses past the limit.

    The code is RESOURCE_EXHAUSTED, what TensorFlow answers when a tensor
    cannot be allocated, with the option's name so an operator knows what to raise.
    """

    __slots__ = ("limit", "remaining")

    def __init__(self, limit: int = DEFAULT_MAX_REQUEST_TENSOR_BYTES):
        self.limit = limit
        self.remaining = limit

    def charge(self, shape, datatype: int, string_bytes: int = 0) -> None:
        """Account for a tensor about to be allocated, or raise without charging.

        ``string_bytes`` is a string tensor's content (numeric tensors: 0).
        """
        count = math.prod(shape)
        if datatype == _T.DT_STRING:
            nbytes = count * STRING_ELEMENT_BYTES + string_bytes
        else:
            # A dtype the codec refuses later is charged as a pointer-sized slot.
            dtype = _NUMPY_DTYPES.get(datatype)
            nbytes = count * (dtype.itemsize if dtype is not None else 8)
        if nbytes > self.remaining:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"tensor of shape {_shape_string(shape)} and type {_dtype_string(datatype)} "
                f"needs {nbytes} bytes, more than the {self.remaining} left of the request's limit "
                f"of {self.limit} bytes (max_request_tensor_bytes)",
            )
        self.remaining -= nbytes


def charge(budget: TensorBudget | None, shape, datatype: int, string_bytes: int = 0) -> None:
    """``budget.charge(...)`` when the caller has a budget (decoding a request), else nothing."""
    if budget is not None:
        budget.charge(shape, datatype, string_bytes)
