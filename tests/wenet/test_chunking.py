from __future__ import annotations

import numpy as np
import pytest

from engines.wenet.chunking import ChunkSchedule, FeatureQueue


@pytest.mark.parametrize(("rate", "context"), [(4, 6), (6, 10)])
@pytest.mark.parametrize("chunk", [8, 16])
def test_every_chunk_yields_chunk_size_outputs(rate: int, context: int, chunk: int) -> None:
    schedule = ChunkSchedule(chunk, rate, context)
    first = schedule.frames_needed(started=False)
    assert first == (chunk - 1) * rate + context + 1
    assert schedule.output_frames(first) == chunk
    later = schedule.frames_needed(started=True)
    assert later == chunk * rate
    assert schedule.output_frames(schedule.carried_frames + later) == chunk
    assert schedule.carried_frames == context + 1 - rate


def test_cache_sizes() -> None:
    assert ChunkSchedule(16, 4, 6, num_left_chunks=4).required_cache_size() == 64
    assert ChunkSchedule(16, 4, 6, num_left_chunks=-1).required_cache_size() == -1
    assert ChunkSchedule(-1, 4, 6).required_cache_size() == 0
    assert ChunkSchedule(-1, 4, 6).frames_needed(started=False) is None


def numbered(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)[:, None].repeat(2, axis=1)


def test_queue_carries_overlap_between_chunks() -> None:
    queue = FeatureQueue(ChunkSchedule(2, 4, 6), num_mel_bins=2)
    queue.push(numbered(10))
    assert queue.next_chunk(input_finished=False) is None  # first chunk needs 11
    queue.push(numbered(10, 10))
    first = queue.next_chunk(input_finished=False)
    assert first is not None and first[:, 0].tolist() == list(range(11))
    second = queue.next_chunk(input_finished=False)
    # 3 carried frames (8, 9, 10) + 8 new (11..18)
    assert second is not None and second[:, 0].tolist() == list(range(8, 19))
    assert queue.next_chunk(input_finished=False) is None
    tail = queue.next_chunk(input_finished=True)
    assert tail is not None and tail[:, 0].tolist() == list(range(16, 20))
    assert queue.next_chunk(input_finished=True) is None
    assert queue.consumed == 20


def test_restart_drops_the_carry() -> None:
    queue = FeatureQueue(ChunkSchedule(2, 4, 6), num_mel_bins=2)
    queue.push(numbered(30))
    assert queue.next_chunk(input_finished=False) is not None
    queue.restart()
    chunk = queue.next_chunk(input_finished=False)
    assert chunk is not None and chunk[:, 0].tolist() == list(range(11, 22))


def test_full_context_waits_for_the_end() -> None:
    queue = FeatureQueue(ChunkSchedule(-1, 4, 6), num_mel_bins=2)
    queue.push(numbered(50))
    assert queue.next_chunk(input_finished=False) is None
    whole = queue.next_chunk(input_finished=True)
    assert whole is not None and whole.shape == (50, 2)
