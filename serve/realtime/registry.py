"""The realtime sessions open in this process (one gateway replica), for operators and tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from serve.realtime.session import StreamingSession


@dataclass
class SessionEntry:
    session: StreamingSession
    mode: str
    started_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        session = self.session
        return {
            "id": session.session_id,
            "object": "realtime.session",
            "model": session.model,
            "mode": self.mode,
            "state": session.state.value,
            "audio_ms": session.position * 1000 // 16_000,
            "segments_transcribed": session.segments_transcribed,
            "created_at": int(self.started_at),
        }


class SessionRegistry:
    def __init__(self) -> None:
        self._entries: dict[str, SessionEntry] = {}

    def add(self, entry: SessionEntry) -> None:
        self._entries[entry.session.session_id] = entry

    def remove(self, session_id: str) -> None:
        self._entries.pop(session_id, None)

    def get(self, session_id: str) -> SessionEntry | None:
        return self._entries.get(session_id)

    def __len__(self) -> int:
        return len(self._entries)

    def describe(self) -> list[dict[str, Any]]:
        return [entry.describe() for entry in self._entries.values()]


SESSIONS = SessionRegistry()
