"""Locust load test for Theo: REST transcriptions and realtime WebSocket sessions.

Headless against any running Theo (local or a cluster's ingress):

    .venv/bin/locust -f loadtests/locustfile.py --headless -u 8 -r 2 -t 2m \\
        --host http://127.0.0.1:8000 [--theo-api-key KEY] [--theo-models whisper-tiny.en]

Only REST, or only realtime: name the user class at the end (`TranscriptionUser`,
`RealtimeUser`). Audio comes from `--theo-audio-dir` (default: `../shared/audio` beside the
repository, with its `manifest.tsv` giving each clip's language) or `--theo-audio-files`
(a comma list); nothing is downloaded. Every option also reads an environment variable
(`THEO_API_KEY`, `THEO_LOAD_MODELS`, `THEO_LOAD_AUDIO_DIR`, `THEO_LOAD_AUDIO_FILES`,
`THEO_LOAD_REALTIME_MODELS`).

Locust entries: `POST transcriptions [<format>] <model>`, `POST translations <model>`,
`SSE transcriptions <model>`; the realtime user reports `WS connect <model>`,
`WS first_partial <model>` (from the moment the speech start's audio was sent to the first
`transcript.partial`), `WS final <model>` (from the moment the utterance's last audio was sent
to its `transcript.final`) and `WS session <model>` (the whole clip, streamed at real-time
pace, to `session.closed`).
"""

from __future__ import annotations

import csv
import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import gevent
import gevent.event
import numpy as np
from locust import HttpUser, User, between, events, task
from locust.env import Environment

SHARED_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
SAMPLE_RATE = 16_000
CHUNK_MS = 100
TRAILING_SILENCE_S = 1.5
SESSION_TIMEOUT_S = 60.0
FORMATS = {"json": 6, "verbose_json": 2, "text": 1, "srt": 1, "vtt": 1}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--theo-api-key", env_var="THEO_API_KEY", default="")
    parser.add_argument(
        "--theo-models", env_var="THEO_LOAD_MODELS", default="", help="default: all served"
    )
    parser.add_argument(
        "--theo-realtime-models",
        env_var="THEO_LOAD_REALTIME_MODELS",
        default="",
        help="models for the realtime user (default: --theo-models, else all served)",
    )
    parser.add_argument("--theo-audio-dir", env_var="THEO_LOAD_AUDIO_DIR", default="")
    parser.add_argument("--theo-audio-files", env_var="THEO_LOAD_AUDIO_FILES", default="")


@dataclass(frozen=True)
class Clip:
    name: str
    data: bytes
    language: str | None
    """From the audio folder's manifest.tsv; None when unknown."""
    pcm16: bytes = field(repr=False, default=b"")
    """16 kHz mono PCM16, for the realtime user."""


@dataclass(frozen=True)
class Model:
    name: str
    languages: tuple[str, ...]
    translation: bool

    def speaks(self, clip: Clip) -> bool:
        return clip.language is None or not self.languages or clip.language in self.languages


class Workload:
    """What every user draws from: the clips, the served models. Built once per process."""

    _lock = threading.Lock()
    _instance: Workload | None = None

    def __init__(self, clips: list[Clip], models: list[Model], realtime: list[Model]) -> None:
        if not clips:
            raise RuntimeError("no audio clips: set --theo-audio-dir or --theo-audio-files")
        if not models:
            raise RuntimeError("the service lists no models (or none of --theo-models)")
        self.clips = clips
        self.models = models
        self.realtime = realtime or models

    @classmethod
    def get(cls, environment: Environment, host: str) -> Workload:
        with cls._lock:
            if cls._instance is None:
                options = environment.parsed_options
                cls._instance = cls(
                    load_clips(options),
                    served_models(host, options.theo_api_key, options.theo_models),
                    served_models(
                        host,
                        options.theo_api_key,
                        options.theo_realtime_models or options.theo_models,
                    ),
                )
            return cls._instance


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _languages(audio_dir: Path) -> dict[str, str]:
    manifest = audio_dir / "manifest.tsv"
    if not manifest.exists():
        return {}
    with manifest.open(encoding="utf-8") as fh:
        return {row["file"]: row["language"] for row in csv.DictReader(fh, delimiter="\t")}


def load_clips(options: Any) -> list[Clip]:
    from serve.audio import decode_audio_bytes

    files = [Path(p) for p in _split(options.theo_audio_files)]
    audio_dir = Path(options.theo_audio_dir) if options.theo_audio_dir else SHARED_AUDIO
    if not files:
        files = sorted(
            p for p in audio_dir.iterdir() if p.suffix.lower() in {".wav", ".mp3", ".flac"}
        )
    languages = _languages(audio_dir)
    clips = []
    for path in files:
        data = path.read_bytes()
        audio = decode_audio_bytes(data)
        pcm16 = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        clips.append(Clip(path.name, data, languages.get(path.name), pcm16))
    return clips


def served_models(host: str, api_key: str, wanted: str) -> list[Model]:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.get(f"{host}/v1/models", headers=headers, timeout=30)
    response.raise_for_status()
    models = []
    for card in response.json()["data"]:
        caps = card.get("capabilities", {})
        languages = tuple(caps.get("languages") or ())
        models.append(Model(card["id"], languages, bool(caps.get("translation"))))
    names = _split(wanted)
    if names:
        by_name = {m.name: m for m in models}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise RuntimeError(f"models not served: {', '.join(missing)}")
        models = [by_name[n] for n in names]
    return models


class TranscriptionUser(HttpUser):
    """REST: transcriptions in every response format (weighted), SSE, translations."""

    wait_time = between(0.5, 2.0)
    weight = 3

    def on_start(self) -> None:
        assert self.host is not None
        self.work = Workload.get(self.environment, self.host)
        key = self.environment.parsed_options.theo_api_key
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def _pick(self, translation: bool = False) -> tuple[Model, Clip] | None:
        models = [m for m in self.work.models if m.translation or not translation]
        pairs = [
            (m, c)
            for m in models
            for c in self.work.clips
            if m.speaks(c) and (not translation or c.language not in (None, "en"))
        ]
        return random.choice(pairs) if pairs else None

    def _post(self, path: str, name: str, clip: Clip, data: dict[str, Any]) -> Any:
        return self.client.post(
            path,
            data=data,
            files={"file": (clip.name, clip.data)},
            headers=self.headers,
            name=name,
            catch_response=True,
            timeout=300,
        )

    @task(10)
    def transcription(self) -> None:
        pick = self._pick()
        if pick is None:
            return
        model, clip = pick
        fmt = random.choices(list(FORMATS), weights=list(FORMATS.values()))[0]
        data: dict[str, Any] = {"model": model.name, "response_format": fmt}
        if fmt == "verbose_json":
            data["timestamp_granularities[]"] = ["segment", "word"]
        name = f"POST transcriptions [{fmt}] {model.name}"
        with self._post("/v1/audio/transcriptions", name, clip, data) as response:
            check_transcription(response, fmt)

    @task(1)
    def streamed(self) -> None:
        pick = self._pick()
        if pick is None:
            return
        model, clip = pick
        data = {"model": model.name, "stream": "true"}
        name = f"SSE transcriptions {model.name}"
        with self._post("/v1/audio/transcriptions", name, clip, data) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
            elif "transcript.text.done" not in response.text:
                response.failure("no transcript.text.done event")

    @task(1)
    def translation(self) -> None:
        pick = self._pick(translation=True)
        if pick is None:
            return
        model, clip = pick
        name = f"POST translations {model.name}"
        data = {"model": model.name}
        with self._post("/v1/audio/translations", name, clip, data) as response:
            check_transcription(response, "json")


def check_transcription(response: Any, fmt: str) -> None:
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
        return
    if fmt in ("json", "verbose_json"):
        try:
            text = response.json()["text"]
        except (ValueError, KeyError):
            response.failure("response is not a transcription object")
            return
    else:
        text = response.text
    if not text.strip():
        response.failure("empty transcription")


def realtime_url(host: str, model: str) -> str:
    parts = urlsplit(host)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + "/v1/realtime"
    return urlunsplit((scheme, parts.netloc, path, urlencode({"model": model}), ""))


class RealtimeUser(User):
    """One realtime session per task: a real clip streamed at real-time pace in 100 ms PCM16
    frames, then silence so the VAD ends the utterance, then `session.close`."""

    wait_time = between(1.0, 3.0)
    weight = 1

    def on_start(self) -> None:
        assert self.host is not None
        self.work = Workload.get(self.environment, self.host)
        self.api_key = self.environment.parsed_options.theo_api_key

    def _report(self, name: str, started: float, elapsed_s: float, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            start_time=started,
            response_time=elapsed_s * 1000.0,
            response_length=0,
            exception=error,
            context={},
        )

    @task
    def stream_clip(self) -> None:
        model = random.choice(self.work.realtime)
        clips = [c for c in self.work.clips if model.speaks(c)]
        if not clips:
            return
        session = RealtimeSession(self, model.name, random.choice(clips))
        session.run()


class RealtimeSession:
    def __init__(self, user: RealtimeUser, model: str, clip: Clip) -> None:
        self.user = user
        self.model = model
        self.clip = clip
        self.sent_at: float | None = None
        """Wall time at which the first audio frame was sent (audio time 0)."""
        self.first_partial: dict[int, float] = {}
        self.speech_starts: list[int] = []
        self.finals = 0
        self.closed = gevent.event.Event()
        self.error: Exception | None = None

    def audio_sent_at(self, audio_ms: int) -> float:
        """When the audio at `audio_ms` was sent (the stream is paced at real time)."""
        assert self.sent_at is not None
        return self.sent_at + audio_ms / 1000.0

    def run(self) -> None:
        import websocket

        started = time.time()
        headers = [f"Authorization: Bearer {self.user.api_key}"] if self.user.api_key else []
        try:
            ws = websocket.create_connection(
                realtime_url(self.user.host or "", self.model), header=headers, timeout=30
            )
            created = json.loads(ws.recv())
            if created.get("type") != "session.created":
                raise RuntimeError(f"expected session.created, got {created}")
        except Exception as exc:
            self.user._report(f"WS connect {self.model}", started, time.time() - started, exc)
            return
        self.user._report(f"WS connect {self.model}", started, time.time() - started, None)
        reader = gevent.spawn(self.read, ws)
        try:
            self.stream(ws)
            ws.send(json.dumps({"type": "session.close"}))
            if not self.closed.wait(SESSION_TIMEOUT_S):
                raise TimeoutError("no session.closed")
            if self.error is not None:
                raise self.error
            if self.finals == 0:
                raise RuntimeError("no transcript.final for a clip with speech")
        except Exception as exc:
            self.user._report(f"WS session {self.model}", started, time.time() - started, exc)
        else:
            self.user._report(f"WS session {self.model}", started, time.time() - started, None)
        finally:
            reader.kill(block=False)
            ws.close()

    def stream(self, ws: Any) -> None:
        import websocket

        audio = self.clip.pcm16 + b"\0\0" * int(TRAILING_SILENCE_S * SAMPLE_RATE)
        step = SAMPLE_RATE * 2 * CHUNK_MS // 1000
        self.sent_at = time.time()
        for index, offset in enumerate(range(0, len(audio), step)):
            due = self.sent_at + index * CHUNK_MS / 1000.0
            gevent.sleep(max(0.0, due - time.time()))
            if self.closed.is_set():
                return
            ws.send(audio[offset : offset + step], opcode=websocket.ABNF.OPCODE_BINARY)

    def read(self, ws: Any) -> None:
        try:
            while True:
                message = ws.recv()
                if not message:
                    raise ConnectionError("the server closed the socket")
                self.on_event(ws, json.loads(message))
                if self.closed.is_set():
                    return
        except Exception as exc:
            if not self.closed.is_set():
                self.error = exc
                self.closed.set()

    def on_event(self, ws: Any, event: dict[str, Any]) -> None:
        kind = event.get("type")
        now = time.time()
        if kind == "vad.speech_start":
            self.speech_starts.append(int(event["timestamp_ms"]))
        elif kind == "transcript.partial":
            segment = int(event["segment_id"])
            if segment not in self.first_partial and self.speech_starts:
                self.first_partial[segment] = now
                since = self.audio_sent_at(self.speech_starts[-1])
                self.user._report(f"WS first_partial {self.model}", since, now - since, None)
        elif kind == "transcript.final":
            self.finals += 1
            since = self.audio_sent_at(int(event["end_ms"]))
            error = None if event.get("text", "").strip() else RuntimeError("empty final")
            self.user._report(f"WS final {self.model}", since, max(0.0, now - since), error)
        elif kind == "session.ping":
            ws.send(json.dumps({"type": "session.pong"}))
        elif kind == "error" and not event.get("recoverable", False):
            self.error = RuntimeError(f"{event.get('code')}: {event.get('message')}")
            self.closed.set()
        elif kind == "session.closed":
            self.closed.set()
