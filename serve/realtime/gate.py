"""Load shedding for optional decodes: at most `limit` partial or speculative-final decodes in
flight per gateway replica, all sessions together.

Finals never wait here, so under load partials become less frequent and speculation stops
(the final is then decoded at the end of speech) while finals do not queue behind other
sessions' optional work in the engine. A session that finds the gate full is woken when a slot
frees.
"""

from __future__ import annotations

import asyncio


class PartialGate:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.busy = 0
        self._waiting: set[asyncio.Event] = set()

    def try_acquire(self, wake: asyncio.Event) -> bool:
        """Take a slot, or remember `wake` to set when one frees."""
        if self.busy < self.limit:
            self.busy += 1
            self._waiting.discard(wake)
            return True
        self._waiting.add(wake)
        return False

    def release(self) -> None:
        self.busy -= 1
        waiting, self._waiting = self._waiting, set()
        for wake in waiting:
            wake.set()

    def forget(self, wake: asyncio.Event) -> None:
        self._waiting.discard(wake)
