"""Keep the garbage collector's full passes off the objects of loaded models.

A loaded TensorFlow model is hundreds of thousands of tracked Python objects
(the benchmarks' MLP: about 350,000, its functions, traces and graph).
CPython's cyclic collector walks every tracked object in each full (oldest
generation) pass, and starts one whenever enough objects have outlived the
young generations: under load, every few seconds. Each pass took about
170 ms here, holding the GIL, so every request in flight waited for it. The
batched MLP under ``wrk`` (C=32) had a p99 of 145 ms against a p50 of 7 ms,
and spent 504 ms of every 10 s in full passes.

``gc.freeze()`` moves every object alive to a permanent generation that the
collector never walks (it costs nothing: two lists are linked); requests' own
garbage is collected as before. So after a load the server freezes, and after
an unload it unfreezes, collects once (the version's reference cycles) and
freezes again: one full pass per unload, on the loader thread, instead of one
every few seconds on whichever thread allocates. Measured the same way: p99
14 ms, 13 ms of full passes in 10 s.

The price: an object alive at a freeze that later ends up in a reference
cycle is reclaimed at the next unload, not at once (a load leaves a few
hundred such objects behind). That is why a host whose process also holds
the user's own objects (the in-kernel server) does not freeze. Freezing is
process-wide, so servers in one process share it; the last one to stop
unfreezes, before it unloads its models, and leaves their collection to the
collector's own passes.
"""

from __future__ import annotations

import gc
import threading


class FrozenHeap:
    """One server's use of the process's frozen generation (see the module docstring)."""

    _lock = threading.Lock()
    _users = 0

    def __init__(self):
        self._started = False

    def start(self) -> None:
        with FrozenHeap._lock:
            if not self._started:
                self._started = True
                FrozenHeap._users += 1

    def stop(self) -> None:
        with FrozenHeap._lock:
            if self._started:
                self._started = False
                FrozenHeap._users -= 1
                if FrozenHeap._users == 0:
                    gc.unfreeze()

    def loaded(self) -> None:
        """A version finished loading: freeze every object alive, its own among them."""
        with FrozenHeap._lock:
            if self._started:
                gc.freeze()

    def unloaded(self) -> None:
        """A version was closed: its objects are unreachable now, so collect them, then freeze again."""
        with FrozenHeap._lock:
            if self._started:
                gc.unfreeze()
                gc.collect()
                gc.freeze()
