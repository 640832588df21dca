"""The cyclic garbage collector held off while one request runs.

A large UPDATE (issue 14, item 9: 64 KB, thousands of records) makes tens
of thousands of short-lived container objects, none in a cycle: reference
counting frees them. With the collector on, every 700 of them start a
young-generation pass, each walking the new zone nodes again, and now and
then an older one: 100 or more passes, a third of the UPDATE's CPU time.
Held off for the request, the objects that survive it (the zone's new
nodes) are walked once, at the first collection after it. `serve` does the
same while it loads the zones (edge/service.py). Only the `with` that turned
it off turns it on again, so nesting and other threads are harmless: at
worst the collector runs during a request, as it did before.
"""

from __future__ import annotations

import gc
from types import TracebackType


class GcPaused:
    """`with GcPaused():` the collector off inside, back on after (if it was on).

    A new instance for each `with`: it remembers whether it turned it off.
    """

    __slots__ = ("_owner",)

    def __init__(self) -> None:
        self._owner = False

    def __enter__(self) -> None:
        if gc.isenabled():
            gc.disable()
            self._owner = True

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self._owner:
            self._owner = False
            gc.enable()
