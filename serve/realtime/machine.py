"""The session state machine: INIT -> ACTIVE -> SILENCE -> HOLD -> CLOSING -> CLOSED. Pure.

- INIT: connected, no speech yet. ACTIVE: speech. SILENCE: between utterances.
- HOLD: no speech for `hold_timeout_ms` (from INIT or SILENCE); cross-utterance context is
  dropped and `session.hold` is sent. Speech returns the session to ACTIVE.
- HOLD lasting `inactivity_timeout_ms` closes the session (`inactivity_timeout`).
- CLOSING: flushing the open utterance and the last events; CLOSED: nothing more is sent.
Time is the stream's audio position in samples, so behaviour does not depend on wall clocks.
"""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    INIT = "init"
    ACTIVE = "active"
    SILENCE = "silence"
    HOLD = "hold"
    CLOSING = "closing"
    CLOSED = "closed"


S = SessionState
TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    S.INIT: frozenset({S.ACTIVE, S.HOLD, S.CLOSING}),
    S.ACTIVE: frozenset({S.SILENCE, S.CLOSING}),
    S.SILENCE: frozenset({S.ACTIVE, S.HOLD, S.CLOSING}),
    S.HOLD: frozenset({S.ACTIVE, S.CLOSING}),
    S.CLOSING: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
}


class InvalidTransitionError(RuntimeError):
    pass


class Timeout(StrEnum):
    HOLD = "hold"
    EXPIRED = "expired"


class StateMachine:
    def __init__(self, hold_timeout: int, inactivity_timeout: int) -> None:
        """Timeouts in samples."""
        self.hold_timeout = hold_timeout
        self.inactivity_timeout = inactivity_timeout
        self.state = SessionState.INIT
        self.quiet_since = 0
        self.hold_since = 0

    def _go(self, target: SessionState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise InvalidTransitionError(f"{self.state} -> {target}")
        self.state = target

    @property
    def open(self) -> bool:
        return self.state not in (S.CLOSING, S.CLOSED)

    def speech_started(self) -> None:
        self._go(S.ACTIVE)

    def speech_ended(self, sample: int) -> None:
        self._go(S.SILENCE)
        self.quiet_since = sample

    def tick(self, position: int) -> Timeout | None:
        """Advance the audio clock; returns the timeout that fired, if any."""
        if self.state in (S.INIT, S.SILENCE) and position - self.quiet_since >= self.hold_timeout:
            self._go(S.HOLD)
            self.hold_since = position
            return Timeout.HOLD
        if self.state is S.HOLD and position - self.hold_since >= self.inactivity_timeout:
            return Timeout.EXPIRED
        return None

    def closing(self) -> None:
        if self.state is not S.CLOSING:
            self._go(S.CLOSING)

    def closed(self) -> None:
        self.closing()
        self._go(S.CLOSED)
