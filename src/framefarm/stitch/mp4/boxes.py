"""ISO base media file boxes: reading a box tree out of a buffer, and writing boxes.

A box is a 32-bit size (1: a 64-bit size follows the type; 0: to the end of its parent), a
four-character type, then its body; a full box's body starts with a version byte and 24 bits of
flags. Reading never copies a body: ``Box`` is where one lies in the buffer (a file mapped into
memory, usually), and ``children`` walks a container's.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from framefarm.errors import StitchError

Buffer = bytes | bytearray | memoryview | mmap.mmap  # a file mapped into memory, mostly


class Mp4Error(StitchError):
    """The file is no MP4 this module can read: truncated, or a box that does not fit its parent."""


class Truncated(Mp4Error):
    """The file ends before its boxes or its samples do: cut short (ffmpeg cannot join it either)."""


@dataclass(frozen=True)
class Box:
    kind: bytes  # four characters, e.g. b"moov"
    start: int  # offset of the box's header in the buffer
    header: int  # 8, or 16 with a 64-bit size
    size: int  # header and body

    @property
    def body(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.start + self.size


def children(data: Buffer, start: int, end: int) -> Iterator[Box]:
    """The boxes one after the other in ``data[start:end]`` (a file, or a container's body)."""
    while start < end:
        if end - start < 8:
            raise Mp4Error(f"{end - start} stray bytes at offset {start}")
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            if end - start < 16:
                raise Mp4Error(f"box {kind!r} at offset {start} is cut short")
            (size,) = struct.unpack_from(">Q", data, start + 8)
            header = 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            raise Mp4Error(f"box {kind!r} at offset {start} claims {size} bytes, {end - start} are there")
        yield Box(kind, start, header, size)
        start += size


def inside(data: Buffer, parent: Box) -> Iterator[Box]:
    """A container box's children."""
    return children(data, parent.body, parent.end)


def find(data: Buffer, parent: Box, *path: bytes) -> Box | None:
    """The first box down ``path`` from ``parent`` (``find(d, moov, b"trak", b"tkhd")``), or None."""
    found: Box | None = parent
    for kind in path:
        assert found is not None
        found = next((box for box in inside(data, found) if box.kind == kind), None)
        if found is None:
            return None
    return found


def need(data: Buffer, parent: Box, *path: bytes) -> Box:
    """``find``, or Mp4Error naming the missing box."""
    found = find(data, parent, *path)
    if found is None:
        raise Mp4Error(f"no {b'/'.join(path).decode(errors='replace')} in {parent.kind.decode(errors='replace')}")
    return found


def version(data: Buffer, full_box: Box) -> int:
    return int(data[full_box.body])


def raw(data: Buffer, box: Box) -> bytes:
    """The whole box, header included, as bytes (to copy it into another file)."""
    return bytes(data[box.start:box.end])


def box(kind: bytes, *body: bytes) -> bytes:
    """A box of ``kind`` around ``body`` (a 64-bit size only when it does not fit 32 bits)."""
    length = sum(len(part) for part in body)
    if length + 8 <= 0xFFFFFFFF:
        return b"".join((struct.pack(">I4s", length + 8, kind), *body))
    return b"".join((struct.pack(">I4sQ", 1, kind, length + 16), *body))


def full_box(kind: bytes, version: int, flags: int, *body: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *body)
