"""Session state machine and the ring buffer."""

from __future__ import annotations

import numpy as np
import pytest

from serve.realtime.machine import (
    InvalidTransitionError,
    SessionState,
    StateMachine,
    Timeout,
)
from serve.realtime.ring import RingBuffer, RingOverflowError


def test_lifecycle_with_hold_and_expiry() -> None:
    machine = StateMachine(hold_timeout=100, inactivity_timeout=50)
    assert machine.state is SessionState.INIT
    assert machine.tick(99) is None
    machine.speech_started()
    assert machine.state is SessionState.ACTIVE and machine.tick(10_000) is None
    machine.speech_ended(200)
    assert machine.state is SessionState.SILENCE
    assert machine.tick(299) is None
    assert machine.tick(300) is Timeout.HOLD and machine.state is SessionState.HOLD
    machine.speech_started()
    machine.speech_ended(400)
    assert machine.tick(500) is Timeout.HOLD
    assert machine.tick(549) is None
    assert machine.tick(550) is Timeout.EXPIRED
    machine.closing()
    assert not machine.open
    machine.closed()
    assert machine.state is SessionState.CLOSED


def test_invalid_transitions_are_refused() -> None:
    machine = StateMachine(100, 100)
    with pytest.raises(InvalidTransitionError):
        machine.speech_ended(0)
    machine.closed()
    with pytest.raises(InvalidTransitionError):
        machine.speech_started()


def test_init_goes_on_hold_without_speech() -> None:
    machine = StateMachine(hold_timeout=10, inactivity_timeout=10)
    assert machine.tick(10) is Timeout.HOLD


def test_ring_wraps_and_reads_by_absolute_position() -> None:
    ring = RingBuffer(10)
    ring.write(np.arange(7, dtype=np.float32))
    ring.set_fence(5)
    ring.write(np.arange(7, 15, dtype=np.float32))
    assert ring.written == 15 and ring.used == 10 and ring.free == 0
    np.testing.assert_array_equal(ring.read(5, 15), np.arange(5, 15, dtype=np.float32))
    with pytest.raises(IndexError):
        ring.read(4, 6)


def test_ring_refuses_to_overwrite_behind_the_fence() -> None:
    ring = RingBuffer(8)
    ring.write(np.ones(6, dtype=np.float32))
    with pytest.raises(RingOverflowError):
        ring.write(np.ones(3, dtype=np.float32))
    ring.set_fence(4)
    ring.write(np.ones(6, dtype=np.float32))
    assert ring.fill_ratio == 1.0


def test_fence_only_moves_forward_and_not_past_the_writer() -> None:
    ring = RingBuffer(8)
    ring.write(np.ones(4, dtype=np.float32))
    ring.set_fence(3)
    ring.set_fence(1)
    assert ring.fence == 3
    ring.set_fence(100)
    assert ring.fence == 4


async def test_partial_rounds_give_every_waiting_session_a_turn_together() -> None:
    import asyncio

    from serve.realtime.gate import PartialGate

    gate = PartialGate(limit=3)
    a, b, c, d = (asyncio.Event() for _ in range(4))
    assert gate.try_acquire(a), "alone: a round of one at once"
    assert not gate.try_acquire(b) and not gate.try_acquire(c) and not gate.try_acquire(d)
    assert gate.waiting == 3 and not b.is_set()
    gate.release()
    # the next round: the three waiting sessions together (their decodes share a batch)
    assert b.is_set() and c.is_set() and d.is_set() and gate.rounds == 2
    assert gate.try_acquire(b) and gate.try_acquire(d)
    assert not gate.try_acquire(a), "a session that had a turn waits for the next round"
    gate.withdraw(c)  # c's segment ended before it took its turn
    gate.release()
    assert not a.is_set(), "the round ends only when all its decodes are done"
    gate.release()
    assert a.is_set() and gate.try_acquire(a) and gate.busy == 1


async def test_rounds_are_capped_and_the_longest_waiting_go_first() -> None:
    import asyncio

    from serve.realtime.gate import PartialGate

    gate = PartialGate(limit=2)
    first = asyncio.Event()
    assert gate.try_acquire(first)
    queue = [asyncio.Event() for _ in range(3)]
    for wake in queue:
        assert not gate.try_acquire(wake)
    gate.release()
    assert [w.is_set() for w in queue] == [True, True, False]
    assert gate.try_acquire(queue[0]) and gate.try_acquire(queue[1])
    late = asyncio.Event()
    assert not gate.try_acquire(first) and not gate.try_acquire(late)
    gate.release()
    gate.release()
    assert queue[2].is_set() and first.is_set() and not late.is_set(), "the longest waiting first"


async def test_finals_hold_back_new_rounds_until_they_are_done() -> None:
    import asyncio

    from serve.realtime.gate import PartialGate

    gate = PartialGate(limit=4)
    wake = asyncio.Event()
    gate.final_started()
    assert not gate.try_acquire(wake), "no optional decode while a final is in the engine"
    gate.final_started()
    gate.final_done()
    assert not wake.is_set() and not gate.try_acquire(wake)
    gate.final_done()
    assert wake.is_set() and gate.try_acquire(wake)


async def test_an_untaken_turn_lapses(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from serve.realtime import gate as gates

    monkeypatch.setattr(gates, "GRANT_TTL_S", 0.05)
    gate = gates.PartialGate(limit=2)
    a, b = asyncio.Event(), asyncio.Event()
    assert gate.try_acquire(a)
    assert not gate.try_acquire(b)
    gate.release()
    assert b.is_set()
    loop = asyncio.get_running_loop()
    expired = loop.create_future()
    loop.call_later(gates.GRANT_TTL_S + 0.2, expired.set_result, None)
    await expired
    assert gate.try_acquire(a), "b never took its turn: a new round could start"
