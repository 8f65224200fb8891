"""The one tensor codec of jupyter-tfserve, server and client alike: JSON and TensorProto <-> numpy.

Protocols never convert tensors themselves; they call this module, so REST,
gRPC and warmup replay agree on every dtype, every number format and every
error message.  Clients of TensorFlow Serving parse these bodies and grep these
messages, so the behaviour follows TensorFlow Serving wherever a client can
tell the difference:

* REST request decoding follows its JSON tensor rules: the tensor shape comes
  from the first element of every nesting level, every value is type-checked
  against the signature dtype (ints are fine for floats, floats are not fine
  for ints, bools are never numbers), ``{"b64": ...}`` carries binary strings
  and ``NaN``/``Infinity`` are numbers.  Request shapes are *not* checked
  against the signature's declared shape.
* Floats are written with 6 significant digits when that reads back as the
  same value in the tensor's own dtype, otherwise with 9 (float32) or 17
  (float64) digits; whole numbers keep a ``.0`` so clients see a float.
* TensorProtos use the typed ``*_val`` fields, like a Predict response.

Every failure raises :class:`ServingError` with TensorFlow Serving's status code
and wording.  Nothing here runs TensorFlow ops: the hot paths are numpy and
orjson, with pure-Python fallbacks only where exact error messages are needed.

The package keeps one job per module: ``dtypes`` (the type tables),
``json_parse`` and ``json_decode`` (REST bodies in; ``json_numeric`` for plain
numeric ones), ``float_text`` and ``json_encode`` (REST bodies out), ``requests``
and ``answers`` (the client's side: request bodies out, answers in), ``examples``
(tf.Example input) and
``proto`` (TensorProto, for gRPC), ``budget`` (the bytes one request may
make the decoders allocate). Callers import from the package.
"""

from __future__ import annotations

from .answers import decode_predict_answer
from .budget import DEFAULT_MAX_REQUEST_TENSOR_BYTES, TensorBudget
from .compare import max_abs_diff
from .dtypes import datatype_name, datatype_of, numpy_dtype
from .examples import (
    decode_examples,
    encode_examples,
    fill_classifications,
    fill_regressions,
    input_to_serialized_examples,
)
from .json_decode import ExactPathNeeded, decode_predict_request
from .json_encode import (
    dumps,
    encode_classify_response,
    encode_predict_response,
    encode_regress_response,
)
from .json_numeric import count_bytes, parse_numeric
from .json_parse import bool_free, parse_json
from .proto import ndarray_to_tensor_proto, tensor_proto_to_ndarray
from .requests import encode_predict_request

__all__ = [
    "DEFAULT_MAX_REQUEST_TENSOR_BYTES",
    "ExactPathNeeded",
    "TensorBudget",
    "bool_free",
    "datatype_name",
    "datatype_of",
    "decode_examples",
    "encode_examples",
    "decode_predict_answer",
    "decode_predict_request",
    "dumps",
    "encode_classify_response",
    "encode_predict_request",
    "encode_predict_response",
    "encode_regress_response",
    "fill_classifications",
    "fill_regressions",
    "input_to_serialized_examples",
    "max_abs_diff",
    "ndarray_to_tensor_proto",
    "numpy_dtype",
    "parse_json",
    "count_bytes",
    "parse_numeric",
    "tensor_proto_to_ndarray",
]
