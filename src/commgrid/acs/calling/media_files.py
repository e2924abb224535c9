"""Recording files commgrid generates: real containers that players open, with a quiet tone or silence.

- WAV: PCM, 8 kHz, 16-bit mono, a 440 Hz tone at low volume.
- MP3: MPEG-1 Layer III frames (32 kbit/s, 44.1 kHz, mono) whose empty side information decodes as silence.
- MP4: an ISO base media file (`ftyp` + `moov`/`mvhd`) carrying the duration and no tracks.
Durations are capped at `MAX_SECONDS` to keep files small.
"""

from __future__ import annotations

import math
import struct

MAX_SECONDS = 30.0
WAV_RATE = 8000
_MP3_HEADER = bytes([0xFF, 0xFB, 0x10, 0xC0])
_MP3_FRAME = 104  # 144 * 32000 / 44100, no padding
_MP3_FRAME_SECONDS = 1152 / 44100

CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "mp4": "video/mp4"}


def media_file(format_type: str, duration_ms: int) -> bytes:
    seconds = min(max(duration_ms, 0) / 1000, MAX_SECONDS)
    return {"wav": wav, "mp3": mp3, "mp4": mp4}[format_type.lower()](seconds)


def wav(seconds: float) -> bytes:
    count = int(seconds * WAV_RATE)
    samples = (int(2000 * math.sin(2 * math.pi * 440 * n / WAV_RATE)) for n in range(count))
    data = struct.pack(f"<{count}h", *samples)
    fmt = struct.pack("<HHIIHH", 1, 1, WAV_RATE, WAV_RATE * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)


def mp3(seconds: float) -> bytes:
    frames = max(1, math.ceil(seconds / _MP3_FRAME_SECONDS))
    return (_MP3_HEADER + bytes(_MP3_FRAME - len(_MP3_HEADER))) * frames


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4(seconds: float) -> bytes:
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _box(b"mvhd", struct.pack(">IIIII", 0, 0, 0, 1000, int(seconds * 1000)) + struct.pack(">IH", 0x10000, 0x100)
                + bytes(10) + matrix + bytes(24) + struct.pack(">I", 1))
    return ftyp + _box(b"moov", mvhd)
