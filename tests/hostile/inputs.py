"""Hostile inputs built from scratch: WAV headers that lie, truncated containers, raw HTTP
requests (chunked bodies, a declared length nobody sends), and memory sampled while they run."""

from __future__ import annotations

import io
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from tests.rss import rss_mb, serve_processes

BOUNDARY = "theo-hostile-boundary"


def wav_header(rate: int, width: int, data_size: int, riff_size: int | None = None) -> bytes:
    """RIFF/WAVE mono PCM header whose sizes say whatever they are told to."""
    riff = 36 + data_size if riff_size is None else riff_size
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * width, width, width * 8)
    return (
        b"RIFF"
        + struct.pack("<I", riff & 0xFFFFFFFF)
        + b"WAVEfmt "
        + fmt
        + b"data"
        + (struct.pack("<I", data_size & 0xFFFFFFFF))
    )


def wav_u8(rate: int, seconds: float) -> bytes:
    """Unsigned 8-bit silence-with-a-tone WAV: the cheapest bytes per second of audio."""
    n = round(rate * seconds)
    tone = (128 + 20 * np.sin(np.arange(n) * 0.05)).astype(np.uint8).tobytes()
    return wav_header(rate, 1, n) + tone


def pcm16_wav(audio: np.ndarray, rate: int = 16_000, data_size: int | None = None) -> bytes:
    samples = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    size = len(samples) if data_size is None else data_size
    return wav_header(rate, 2, size, riff_size=36 + size) + samples


def encode(audio: np.ndarray, container: str) -> bytes:
    """16 kHz float audio -> a file of `container` (mp3, ogg, flac, webm, m4a, wav)."""
    import av

    codec, fmt, rate = {
        "mp3": ("mp3", "mp3", 44_100),
        "ogg": ("libopus", "ogg", 48_000),
        "flac": ("flac", "flac", 44_100),
        "webm": ("libopus", "webm", 48_000),
        "m4a": ("aac", "mp4", 44_100),
        "wav": ("pcm_s16le", "wav", 16_000),
    }[container]
    resampled = np.interp(
        np.arange(0, len(audio), 16_000 / rate), np.arange(len(audio)), audio
    ).astype(np.float32)[None, :]
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as file:
        stream = file.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(resampled, format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            file.mux(packet)
        for packet in stream.encode(None):
            file.mux(packet)
    return out.getvalue()


def multipart_head(model: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()


def request_head(port: int, api_key: str, headers: dict[str, str]) -> bytes:
    lines = [
        "POST /v1/audio/transcriptions HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Authorization: Bearer {api_key}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class RawAnswer:
    status: int
    body: bytes
    sent: int
    """Body bytes the client had sent when the answer arrived."""


def _parse(response: bytes, sent: int) -> RawAnswer:
    if not response:
        return RawAnswer(0, b"", sent)
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if
         line.lower().startswith(b"content-length:")),
        len(body),
    )  # fmt: skip
    return RawAnswer(status, body[:length], sent)


def chunked_upload(port: int, api_key: str, model: str, total: int, chunk: int) -> RawAnswer:
    """Send a multipart upload of `total` bytes with `Transfer-Encoding: chunked` (no
    `Content-Length`), reading while sending; stop sending as soon as an answer arrives."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request_head(port, api_key, {"Transfer-Encoding": "chunked"}))
        head = multipart_head(model)
        sock.sendall(f"{len(head):x}\r\n".encode() + head + b"\r\n")
        sock.setblocking(False)
        block = f"{chunk:x}\r\n".encode() + b"\0" * chunk + b"\r\n"
        pending = b""
        sent = 0
        response = b""
        deadline = time.monotonic() + 120
        sending = True
        while time.monotonic() < deadline:
            writers = [sock] if sending and sent < total else []
            readable, writable, _ = select.select([sock], writers, [], 1)
            if readable:
                try:
                    data = sock.recv(1 << 16)
                except ConnectionResetError:
                    break
                response += data
                sending = False  # an answer is coming: a client stops sending
                if not data or (b"\r\n\r\n" in response and _complete(response)):
                    break
            if writable:
                pending = pending or block
                try:
                    written = sock.send(pending)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    sending = False
                    continue
                pending = pending[written:]
                if not pending:
                    sent += chunk
        return _parse(response, sent)


def _complete(response: bytes) -> bool:
    answer = _parse(response, 0)
    head = response.partition(b"\r\n\r\n")[0].lower()
    return b"content-length:" not in head or len(answer.body) >= int(
        head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0]
    )


def declared_only(port: int, api_key: str, declared: int) -> RawAnswer:
    """Headers declaring a `Content-Length` of `declared` bytes, and no body at all."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request_head(port, api_key, {"Content-Length": str(declared)}))
        response = b""
        while not (b"\r\n\r\n" in response and _complete(response)):
            data = sock.recv(1 << 16)
            if not data:
                break
            response += data
    return _parse(response, 0)


@dataclass
class PeakMemory:
    baseline: dict[str, float]
    peak: dict[str, float] = field(default_factory=dict)

    def growth(self, role: str) -> float:
        return self.peak.get(role, 0.0) - self.baseline.get(role, 0.0)


@contextmanager
def peak_memory(interval_s: float = 0.02) -> Iterator[PeakMemory]:
    """Sample the RSS of Serve's proxy, gateway and engines while the block runs."""
    processes = serve_processes()
    result = PeakMemory(rss_mb(processes))
    result.peak = dict(result.baseline)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for role, mb in rss_mb(processes).items():
                result.peak[role] = max(result.peak.get(role, 0.0), mb)
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
