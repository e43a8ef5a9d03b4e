"""One rule for truncated files, applied to every container: audio that ends before its own
header says it does, or that breaks off with a decode error after its start, is refused with
400 `truncated_audio`; it is never transcribed in part.

What "its header says" depends on the container (pure functions over the file's bytes):
- WAV: the size of the `data` chunk. Streaming writers that cannot seek back leave a
  placeholder there (0, or 2 GiB and more); a placeholder declares nothing.
- Ogg (Opus, Vorbis, Speex, FLAC in Ogg): every page complete, the last one marked
  end-of-stream.
- FLAC, MP4/M4A/MOV, Matroska/WebM, and MP3 with a Xing/Info/VBRI header: the duration the
  header declares, against the decoded duration.
Formats that declare no length (raw ADTS AAC, MP3 without a length header, WebM recorded live)
are caught only by a decode error after their start.
"""

from __future__ import annotations

import struct

TOLERANCE_S = 0.5
TOLERANCE_RATIO = 0.02
"""Decoded audio may fall short of the declared duration by max(0.5 s, 2 %): encoder priming,
padding and rounding of frame counts stay well inside that."""

WAV_PLACEHOLDER_MIN = 0x7FFF0000
DECLARING_FORMATS = frozenset({"flac", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
MP3_LENGTH_TAGS = (b"Xing", b"Info", b"VBRI")
OGG_END_OF_STREAM = 0x04


def falls_short(declared_s: float, decoded_s: float) -> bool:
    return decoded_s < declared_s - max(TOLERANCE_S, TOLERANCE_RATIO * declared_s)


def wav_declared_seconds(data: bytes) -> float | None:
    """Seconds the `data` chunk of a RIFF/WAVE file declares, or None (not WAV, placeholder)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    byte_rate = 0
    position = 12
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        (size,) = struct.unpack_from("<I", data, position + 4)
        if chunk_id == b"fmt " and position + 16 <= len(data):
            (byte_rate,) = struct.unpack_from("<I", data, position + 16)
        if chunk_id == b"data":
            if size == 0 or size >= WAV_PLACEHOLDER_MIN or byte_rate <= 0:
                return None
            return float(size) / float(byte_rate)
        position += 8 + size + (size & 1)
    return None


def ogg_truncated(data: bytes) -> bool:
    """An Ogg file whose last page is cut short or is not marked end-of-stream."""
    position = 0
    flags = OGG_END_OF_STREAM
    while position < len(data):
        if data[position : position + 4] != b"OggS":
            return False  # not a page boundary: the demuxer judges the rest
        if position + 27 > len(data):
            return True
        segments = data[position + 26]
        table_end = position + 27 + segments
        if table_end > len(data):
            return True
        end = table_end + sum(data[position + 27 : table_end])
        if end > len(data):
            return True
        flags = data[position + 5]
        position = end
    return not flags & OGG_END_OF_STREAM


def mp3_declares_length(data: bytes) -> bool:
    """An MP3 whose first frame carries a Xing/Info/VBRI header (frame count and size)."""
    start = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        size = data[6:10]
        start = 10 + ((size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3])
    first_frame = data[start : start + 2048]
    return any(tag in first_frame for tag in MP3_LENGTH_TAGS)


def declared_seconds(
    data: bytes,
    format_name: str,
    stream_seconds: float | None,
    container_seconds: float | None,
    audio_only: bool,
) -> float | None:
    """The duration the file's header declares for its audio, where the format has one."""
    if format_name == "wav":
        return wav_declared_seconds(data)
    if format_name == "mp3" and not mp3_declares_length(data):
        return None
    if format_name not in DECLARING_FORMATS and format_name != "mp3":
        return None
    if stream_seconds is not None:
        return stream_seconds
    return container_seconds if audio_only else None
