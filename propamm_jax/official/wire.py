"""Frames between a scoring or validation worker and its parent.

Length-prefixed (u32 little-endian) frames over pipes: pickles from the parent (trusted; the
worker may unpickle them), JSON from the worker, which the parent never unpickles because the
worker's process runs hostile code. JSON keeps floats exact (shortest round-trip form) and
carries bytes as hex. A frame the parent cannot parse is the worker's failure.
"""

from __future__ import annotations

import json
import os
import pickle
import struct

MAX_FRAME = 256 * 2**20   # a worker's frame larger than this is a protocol violation


def frame(payload: bytes) -> bytes:
    """A length-prefixed frame (u32 little-endian length, then the payload)."""
    return struct.pack("<I", len(payload)) + payload


def to_worker(obj) -> bytes:
    """A frame for the worker: a pickle (the parent is trusted; the worker may unpickle)."""
    return frame(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _json_default(obj):
    if isinstance(obj, (bytes, bytearray)):
        return {"__bytes__": bytes(obj).hex()}
    if hasattr(obj, "tolist"):  # NumPy scalars and arrays
        return obj.tolist()
    raise TypeError(f"cannot send {type(obj).__name__}")


def _json_hook(obj: dict):
    if len(obj) == 1 and "__bytes__" in obj:
        return bytes.fromhex(obj["__bytes__"])
    return obj


def from_worker_encode(obj) -> bytes:
    """A frame for the parent: JSON (floats round-trip exactly; bytes as hex)."""
    return frame(json.dumps(obj, default=_json_default).encode())


def from_worker_decode(payload: bytes):
    """Parses a worker's frame; raises ValueError on anything that is not our JSON."""
    return json.loads(payload.decode("utf-8"), object_hook=_json_hook)


def read_frame(fd: int) -> bytes | None:
    """One frame from a blocking fd (the worker's side), or None at end of input."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<I", head)[0])
    return body


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Channel:
    """The parent's end of a worker's output: bytes read as they come, split into frames.

    `feed` never blocks (call it when the fd is readable); a malformed frame raises
    ValueError, which the caller treats as the worker's failure."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False
        os.set_blocking(fd, False)

    def feed(self) -> list:
        try:
            chunk = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return []
        if not chunk:
            self.eof = True
            return []
        self.buffer += chunk
        messages = []
        while len(self.buffer) >= 4:
            n = struct.unpack_from("<I", self.buffer)[0]
            if n > MAX_FRAME:
                raise ValueError(f"frame of {n} bytes")
            if len(self.buffer) < 4 + n:
                break
            messages.append(from_worker_decode(bytes(self.buffer[4 : 4 + n])))
            del self.buffer[: 4 + n]
        return messages
