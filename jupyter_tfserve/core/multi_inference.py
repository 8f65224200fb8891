"""MultiInference: several classify/regress signatures of one model version over the same examples.

TF Serving checks every task before anything runs, with wording its clients
match on; those rules live here, in the engine, so that a protocol only turns
its request into :class:`Task` values and a version resolved like every other
request (:meth:`~.inference.InferenceService.acquire`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .inference import Target, example_input_alias
from .manager import Handle
from .signatures import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD
from .status import Code, ServingError, invalid_argument


@dataclass(frozen=True)
class Task:
    """One inference task of a MultiInference request."""

    model_name: str
    signature_name: str
    method_name: str


def task_targets(handle: Handle, tasks: Sequence[Task], *, check_method_name: bool) -> list[Target]:
    """A target per task on ``handle``'s version; TF Serving's MultiInference errors otherwise."""
    targets: list[Target] = []
    seen: set[str] = set()
    input_tensor = None
    for task in tasks:
        if not task.model_name:
            raise invalid_argument("Found ModelSpec with an empty model name.")
        if task.model_name != handle.model_name:
            raise invalid_argument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        signature_name = task.signature_name or DEFAULT_SIGNATURE
        if signature_name in seen:
            raise invalid_argument(f"Duplicate evaluation of signature: {signature_name}")
        seen.add(signature_name)
        signature = handle.servable.signatures.get(signature_name)
        if signature is None:
            raise invalid_argument(
                f"Requested signature not found in model graph: {signature_name}"
            )
        if task.method_name in (CLASSIFY_METHOD, REGRESS_METHOD):
            alias = example_input_alias(
                signature, task.method_name, check_method_name=check_method_name
            )
        else:
            raise ServingError(
                Code.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}"
            )
        # A TF1 session is fed once for every task, so TF Serving wants one input tensor; TF2
        # signatures are separate functions, each given the same examples (its TFRT path).
        if handle.servable.loader == "tf1":
            tensor_name = signature.inputs[alias].tensor_name
            if input_tensor is not None and tensor_name != input_tensor:
                raise invalid_argument("Input tensor must be the same for all Signatures.")
            input_tensor = tensor_name
        targets.append(Target(handle, signature))
    return targets
