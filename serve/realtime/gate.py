"""Load shedding for optional decodes: at most `limit` partial or speculative-final decodes in
flight per gateway replica, all sessions together.

Finals never wait here and go first: while any session of the replica has a final in the
engine, no optional decode starts. Under load partials become less frequent and speculation
stops (the final is then decoded at the end of speech) instead of finals queueing behind other
sessions' optional work. A session that finds the gate closed is woken when it opens.
"""

from __future__ import annotations

import asyncio


class PartialGate:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.busy = 0
        self.finals = 0
        self._waiting: set[asyncio.Event] = set()

    def try_acquire(self, wake: asyncio.Event) -> bool:
        """Take a slot, or remember `wake` to set when the gate opens."""
        if self.busy < self.limit and not self.finals:
            self.busy += 1
            self._waiting.discard(wake)
            return True
        self._waiting.add(wake)
        return False

    def release(self) -> None:
        self.busy -= 1
        self._wake_all()

    def final_started(self) -> None:
        self.finals += 1

    def final_done(self) -> None:
        self.finals -= 1
        if not self.finals:
            self._wake_all()

    def _wake_all(self) -> None:
        waiting, self._waiting = self._waiting, set()
        for wake in waiting:
            wake.set()

    def forget(self, wake: asyncio.Event) -> None:
        self._waiting.discard(wake)
