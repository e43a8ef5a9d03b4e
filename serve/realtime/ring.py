"""A pre-allocated ring of samples addressed by absolute stream position, with a read fence.

Everything from the fence (the start of the oldest audio not yet finalised) to the write
position must survive: a write that would overwrite it is refused, so the caller drops frames
instead of losing audio it still has to transcribe. Memory is the capacity, whatever happens.
"""

from __future__ import annotations

import numpy as np

from engines.base import Audio


class RingOverflowError(RuntimeError):
    pass


class RingBuffer:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._data = np.zeros(capacity, dtype=np.float32)
        self.written = 0
        """Absolute position after the last written sample."""
        self.fence = 0
        """Absolute position before which samples may be overwritten."""

    @property
    def used(self) -> int:
        return self.written - self.fence

    @property
    def free(self) -> int:
        return self.capacity - self.used

    @property
    def fill_ratio(self) -> float:
        return self.used / self.capacity

    @property
    def oldest(self) -> int:
        """The oldest position still readable."""
        return max(0, self.written - self.capacity)

    def write(self, samples: Audio) -> None:
        n = len(samples)
        if n > self.free:
            raise RingOverflowError(f"{n} samples do not fit, {self.free} free")
        start = self.written % self.capacity
        first = min(n, self.capacity - start)
        self._data[start : start + first] = samples[:first]
        self._data[: n - first] = samples[first:]
        self.written += n

    def read(self, start: int, end: int) -> Audio:
        """A copy of samples [start, end) (absolute positions)."""
        if not self.oldest <= start <= end <= self.written:
            raise IndexError(f"[{start}, {end}) outside [{self.oldest}, {self.written})")
        n = end - start
        first_index = start % self.capacity
        first = min(n, self.capacity - first_index)
        out = np.empty(n, dtype=np.float32)
        out[:first] = self._data[first_index : first_index + first]
        out[first:] = self._data[: n - first]
        return out

    def set_fence(self, position: int) -> None:
        """Move the fence (forwards only, never past the write position)."""
        self.fence = min(max(self.fence, position), self.written)
