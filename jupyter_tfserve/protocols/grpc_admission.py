"""A bound on the gRPC calls one port takes at a time; past it, UNAVAILABLE at once.

TF Serving answers a full queue with UNAVAILABLE ("The batch scheduling queue
to which this task was submitted is full"), and the REST ports answer their
own bound with 503, its HTTP form. grpcio's sync server has a bound of its own
(``maximum_concurrent_rpcs``), but it refuses with RESOURCE_EXHAUSTED, and a
refusal any other way would be an RPC handler: it would wait in the handler
pool's queue behind the very calls that filled it.

So the decision is taken where grpcio looks up the handler, on its poller
thread: :class:`AdmissionInterceptor` admits the call or swaps in a refusal
handler, and notes which on that thread. grpcio then hands the call to the
server's executor, on the same thread, right away; :class:`AdmittingExecutor`
reads the note and runs an admitted call on the handler pool (counting it
out when it ends, however it ends) and a refusal on a small pool of its own,
which never runs a model, so the refusal is answered in about a millisecond.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import grpc

from ..core.scheduling import mark_as_background_work

# Threads that answer refusals; a refusal reads nothing, so a few answer a flood of them.
REFUSAL_THREADS = 2
_ADMITTED = "admitted"
_REFUSED = "refused"


class Admission:
    """How many calls are in (running or waiting for a handler thread), up to ``limit``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()
        self._note = threading.local()

    def enter(self) -> bool:
        with self._lock:
            if self.count >= self.limit:
                return False
            self.count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.count -= 1

    def note(self, decision: str | None) -> None:
        """Remember, on the poller thread, what was decided for the call it is about to submit."""
        self._note.decision = decision

    def take_note(self) -> str | None:
        decision = getattr(self._note, "decision", None)
        self._note.decision = None
        return decision


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Admits a call while fewer than ``limit`` are in; refuses it with UNAVAILABLE otherwise.

    Health checks pass uncounted: a prober must see a busy server as alive.
    """

    def __init__(self, admission: Admission, open_methods: frozenset[str]):
        self._admission = admission
        self._open = open_methods
        message = (
            f"Too many requests in flight on this port (max_requests_in_flight={admission.limit}); "
            "try again later"
        )

        def refuse(_requests, context) -> None:
            context.abort(grpc.StatusCode.UNAVAILABLE, message)

        # Taken as a client stream, which is the same on the wire: the refusal is answered
        # without waiting for the request message, let alone parsing it.
        self._refusal = grpc.stream_unary_rpc_method_handler(refuse)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method in self._open:
            return handler
        if self._admission.enter():
            self._admission.note(_ADMITTED)
            return handler
        self._admission.note(_REFUSED)
        return self._refusal


class AdmittingExecutor(Executor):
    """The gRPC server's executor: admitted calls on the handler pool, refusals on their own."""

    def __init__(self, admission: Admission, max_workers: int):
        self._admission = admission
        self.pool = ThreadPoolExecutor(
            max_workers=max_workers,
            thread_name_prefix="tfserve-grpc",
            # Handlers run models, so like the inference threads they yield to the threads
            # that move bytes (gRPC's poller, the REST loop): +6% calls/s at C=32.
            initializer=mark_as_background_work,
        )
        self._refusals = ThreadPoolExecutor(
            max_workers=REFUSAL_THREADS, thread_name_prefix="tfserve-refusals-grpc"
        )

    def submit(self, fn, /, *args, **kwargs) -> Future:
        decision = self._admission.take_note()
        if decision == _REFUSED:
            return self._refusals.submit(fn, *args, **kwargs)
        if decision == _ADMITTED:
            return self.pool.submit(self._admitted, fn, args, kwargs)
        return self.pool.submit(fn, *args, **kwargs)

    def _admitted(self, fn, args, kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            self._admission.leave()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._refusals.shutdown(wait=wait, cancel_futures=cancel_futures)
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)
