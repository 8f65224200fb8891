"""Await inference futures from an event loop, with one loop wake-up per burst of results.

Inference runs on worker threads and answers with ``concurrent.futures.Future``.
``asyncio.wrap_future`` hands each result back with its own
``call_soon_threadsafe``: a lock, a write to the loop's self-pipe and a loop
wake-up per request. A batch of 32 answers finishing together costs 32 of
those on the one core the network thread shares with the model. Here results
queue up for their loop, and only the first one of a burst wakes it; one
callback then resolves every result that has arrived.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from concurrent.futures import CancelledError, Future

_bridges: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_bridges_lock = threading.Lock()


def wrap(future: Future) -> asyncio.Future:
    """An asyncio future of the running loop that settles like ``future``; cancelling it cancels ``future``."""
    loop = asyncio.get_running_loop()
    bridge = _bridges.get(loop)
    if bridge is None:
        with _bridges_lock:
            bridge = _bridges.get(loop)
            if bridge is None:
                bridge = _bridges[loop] = _Bridge(loop)
    waiter = loop.create_future()
    waiter.add_done_callback(lambda w: w.cancelled() and future.cancel())
    future.add_done_callback(lambda f: bridge.arrived(waiter, f))
    return waiter


class _Bridge:
    """The results waiting for one loop, and whether a drain is already scheduled on it."""

    __slots__ = ("loop", "inbox", "lock", "scheduled", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.inbox: deque = deque()
        self.lock = threading.Lock()
        self.scheduled = False

    def arrived(self, waiter: asyncio.Future, future: Future) -> None:
        """Called on whichever thread settled ``future``."""
        self.inbox.append((waiter, future))
        with self.lock:
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.drain)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def drain(self) -> None:
        """On the loop: settle every waiter whose result has arrived."""
        with self.lock:
            self.scheduled = False
        inbox = self.inbox
        while inbox:
            waiter, future = inbox.popleft()
            if waiter.done():
                continue
            try:  # one look at the settled future: each accessor takes its lock
                result = future.result()
            except CancelledError:
                waiter.cancel()
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting request
                waiter.set_exception(error)
            else:
                waiter.set_result(result)


class Deadlines:
    """Expire waiters of one loop after a fixed timeout, with one timer for all of them.

    A timer per request (``call_later`` and ``cancel``) cost about 7% of the
    request rate of the batched MLP on one core. Every waiter here gets the same
    timeout, so arrival order is deadline order: a queue and a single timer
    aimed at its head do the same job. Waiters that finished leave the queue
    at the next sweep, which runs at least every :data:`SWEEP_SECONDS`.
    """

    SWEEP_SECONDS = 0.5

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._queues: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def watch(self, waiter: asyncio.Future) -> None:
        """Cancel ``waiter`` with :data:`EXPIRED` as its message if it is not done in time."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _DeadlineQueue(loop)
        queue.add(loop.time() + self.timeout, waiter)


EXPIRED = "tfserve: deadline expired"


class _DeadlineQueue:
    __slots__ = ("loop", "entries", "timer", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.entries: deque = deque()
        self.timer = None

    def add(self, deadline: float, waiter: asyncio.Future) -> None:
        self.entries.append((deadline, waiter))
        if self.timer is None:
            self._arm()

    def _arm(self) -> None:
        first = self.entries[0][0]
        self.timer = self.loop.call_at(
            min(first, self.loop.time() + Deadlines.SWEEP_SECONDS), self._sweep
        )

    def _sweep(self) -> None:
        self.timer = None
        now = self.loop.time()
        entries = self.entries
        while entries:
            deadline, waiter = entries[0]
            if not waiter.done() and deadline > now:
                break
            entries.popleft()
            if not waiter.done():
                waiter.cancel(EXPIRED)
        if entries:
            self._arm()
