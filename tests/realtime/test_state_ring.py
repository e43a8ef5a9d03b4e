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


async def test_partial_gate_limits_and_wakes_waiters() -> None:
    import asyncio

    from serve.realtime.gate import PartialGate

    gate = PartialGate(limit=2)
    a, b, c = asyncio.Event(), asyncio.Event(), asyncio.Event()
    assert gate.try_acquire(a) and gate.try_acquire(b)
    assert not gate.try_acquire(c) and not c.is_set()
    gate.release()
    assert c.is_set(), "a waiting session is woken when a slot frees"
    assert gate.try_acquire(c) and gate.busy == 2
    gate.forget(c)
    gate.release()
    gate.release()
    assert gate.busy == 0


async def test_finals_close_the_partial_gate_until_they_are_done() -> None:
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
