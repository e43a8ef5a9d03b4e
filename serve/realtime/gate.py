"""Fair rounds of optional decodes (partials, speculative finals) across the sessions of one
gateway replica.

A session that wants an optional decode asks for a turn (`try_acquire`). When no round is in
progress, every session waiting gets its turn at once (at most `limit` of them, those that
waited longest first), so their decodes reach the engine together and share its batches
(the Whisper batcher decodes them in one pass). The next round starts when all decodes of
this one are done. With more sessions a round takes longer, so the partial interval of every
session stretches evenly instead of some sessions starving.

Finals never wait here and go first: while any session of the replica has a final in the
engine, no new round starts (the round in progress finishes). A session that got a turn but
no longer wants it (its segment ended) gives it back (`withdraw`); a turn nobody takes lapses
after `GRANT_TTL_S`, so a round never waits long for a session that went quiet.
"""

from __future__ import annotations

import asyncio

GRANT_TTL_S = 2.0
"""How long a turn is kept for a session that was woken for it but did not take it (a
backstop: sessions take or withdraw their turn as soon as they run)."""


class PartialGate:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.busy = 0
        """Optional decodes of the current round in progress."""
        self.finals = 0
        self.rounds = 0
        self._waiting: dict[asyncio.Event, None] = {}
        """Sessions waiting for a turn, longest first (an ordered set)."""
        self._granted: set[asyncio.Event] = set()
        self._expiry: asyncio.TimerHandle | None = None

    def try_acquire(self, wake: asyncio.Event) -> bool:
        """Take this session's turn (True), or queue for the next round: `wake` is set when
        its turn comes."""
        if wake in self._granted:
            self._granted.discard(wake)
            self.busy += 1
            return True
        self._waiting.setdefault(wake, None)
        self._start_round()
        if wake in self._granted:
            self._granted.discard(wake)
            self.busy += 1
            wake.clear()
            return True
        return False

    def release(self) -> None:
        self.busy -= 1
        self._start_round()

    def final_started(self) -> None:
        self.finals += 1

    def final_done(self) -> None:
        self.finals -= 1
        self._start_round()

    def withdraw(self, wake: asyncio.Event) -> None:
        """The session wants no turn now (or ended): drop its place and any turn it had."""
        if wake in self._waiting or wake in self._granted:
            self._waiting.pop(wake, None)
            self._granted.discard(wake)
            self._start_round()

    forget = withdraw

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _start_round(self) -> None:
        if self.busy or self._granted or self.finals or not self._waiting:
            return
        turns = list(self._waiting)[: self.limit]
        for wake in turns:
            del self._waiting[wake]
            self._granted.add(wake)
            wake.set()
        self.rounds += 1
        if self._expiry is not None:
            self._expiry.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._expiry = loop.call_later(GRANT_TTL_S, self._expire)

    def _expire(self) -> None:
        """Turns not taken in time lapse (a session that still wants one asks again and
        queues at the end); the next round can start."""
        self._expiry = None
        if self._granted:
            self._granted.clear()
            self._start_round()
