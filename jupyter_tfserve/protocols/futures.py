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
from concurrent.futures import Future

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
            if future.cancelled():
                waiter.cancel()
                continue
            error = future.exception()
            if error is None:
                waiter.set_result(future.result())
            else:
                waiter.set_exception(error)
