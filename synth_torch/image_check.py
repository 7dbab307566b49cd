"""What an image frame is, read from its structure alone, at a cost bounded before any pixel is decoded.

`sniff_image` runs on the router thread for every synthesize request; its work is bounded by fixed counts,
whatever the bytes say:

    PNG   signature, IHDR (the size), then a walk over chunk headers to IEND: at most limits.max_png_chunks
          chunks (a file of millions of empty ancillary chunks is refused after that many steps); nothing may
          follow IEND (padding would let every queued job carry the message limit for free).
    JPEG  SOI, then marker segments up to the first scan: at most limits.max_jpeg_markers of them (a file of
          empty COM markers is refused after that many); the frame header (SOF) gives the size; the frame must
          end with the end-of-image marker.

`check_scans` runs on the worker just before a JPEG is decoded. It reads the whole frame, at C speed (two
passes, bytes.count and bytes.find: ~5 ms per 10 MB, up to ~100 ms for a 32 MB frame of stuffed FF bytes --
which is why it is not on the router thread, where every client's ping waits): the number of FF DA pairs, an
upper bound on the scans the decoder will run (inside entropy-coded data an FF byte is always followed by 00 or
a restart marker), must be at most limits.max_jpeg_scans -- a progressive file that repeats one scan thousands
of times costs the decoder a full-image pass per scan -- and the first end-of-image marker after the first scan
must be the frame's last two bytes.
"""
from __future__ import annotations

import re
import struct

from syngrpo_jax.protocol.synthesis import Limits, ProtocolError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0-7 carry no length
_FILL = re.compile(rb"\xff+")  # a marker may be preceded by any number of FF fill bytes


def _bad(message: str) -> ProtocolError:
    return ProtocolError("bad_image", message, field="image")


def sniff_image(data: bytes | memoryview, limits: Limits) -> tuple[str, int, int]:
    """("png" | "jpeg", width, height) of an image frame (bytes, or a memoryview of the received frame: no copy);
    raises ProtocolError (field "image") for anything else, for a structure over the limits above, and for bytes
    after the image's end."""
    if not len(data):
        raise _bad("image frame is empty")
    if data[:8] == PNG_SIGNATURE:
        fmt, (width, height) = "png", _png_size(data, limits)
    elif data[:2] == b"\xff\xd8":
        fmt, ((width, height), _) = "jpeg", _jpeg_header(data, limits)
    else:
        raise _bad(f"image frame ({len(data)} bytes, starting {bytes(data[:8])!r}) is neither PNG nor JPEG")
    if width * height > limits.max_image_pixels:
        raise ProtocolError(
            "limit_exceeded", f"image is {width}x{height} = {width * height} pixels, over "
            f"max_image_pixels={limits.max_image_pixels}", field="image", limit="max_image_pixels")
    return fmt, width, height


def _png_size(data: bytes, limits: Limits) -> tuple[int, int]:
    n = len(data)
    pos, chunks, size, idat = len(PNG_SIGNATURE), 0, None, False
    while True:
        if pos + 12 > n:
            raise _bad(f"PNG is truncated: {n} bytes end inside chunk {chunks} (no IEND)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > 2**31 - 1 or end > n:
            raise _bad(f"PNG chunk {chunks} ({kind!r}) claims {length} bytes, past the end of the {n}-byte frame")
        chunks += 1
        if chunks > limits.max_png_chunks:
            raise ProtocolError("limit_exceeded", f"PNG has more than max_png_chunks={limits.max_png_chunks} chunks",
                                field="image", limit="max_png_chunks")
        if size is None:
            if kind != b"IHDR" or length != 13:
                raise _bad(f"PNG must start with a 13-byte IHDR chunk, not {kind!r} of {length} bytes")
            size = struct.unpack_from(">II", data, pos + 8)
            if not (0 < size[0] < 2**31 and 0 < size[1] < 2**31):
                raise _bad(f"PNG IHDR size {size[0]}x{size[1]} is invalid")
        idat |= kind == b"IDAT"
        if kind == b"IEND":
            if end != n:
                raise _bad(f"{n - end} bytes follow the PNG's IEND chunk; nothing may follow the image")
            if not idat:
                raise _bad("PNG has no IDAT chunk (no pixel data)")
            return size
        pos = end


def _jpeg_header(data: bytes, limits: Limits) -> tuple[tuple[int, int], int]:
    """((width, height), offset of the first SOS marker), from the segments before the first scan."""
    n = len(data)
    pos, markers, size = 2, 0, None
    while True:
        fill = _FILL.match(data, pos)
        if fill is None or fill.end() >= n:
            raise _bad(f"JPEG is truncated or malformed: expected a marker at byte {pos} of {n}")
        marker, pos = data[fill.end()], fill.end() + 1
        markers += 1
        if markers > limits.max_jpeg_markers:
            raise ProtocolError(
                "limit_exceeded", f"JPEG has more than max_jpeg_markers={limits.max_jpeg_markers} markers before "
                "its first scan", field="image", limit="max_jpeg_markers")
        if marker in _STANDALONE:
            continue
        if marker in (0x00, 0xD8, 0xD9):
            raise _bad(f"JPEG has marker FF{marker:02X} at byte {pos - 2} before its first scan")
        if pos + 2 > n:
            raise _bad(f"JPEG is truncated in the length of marker FF{marker:02X}")
        length = struct.unpack_from(">H", data, pos)[0]
        if length < 2 or pos + length > n:
            raise _bad(f"JPEG marker FF{marker:02X} at byte {pos - 2} has a bad length {length}")
        if marker in _SOF:
            if size is not None:
                raise _bad("JPEG has more than one frame header (SOF)")
            if length < 8:
                raise _bad(f"JPEG frame header is {length} bytes, too short")
            height, width = struct.unpack_from(">HH", data, pos + 3)
            if not (width and height):
                raise _bad(f"JPEG frame header gives a size of {width}x{height}")
            size = (width, height)
        pos += length
        if marker == 0xDA:
            if size is None:
                raise _bad("JPEG scan (SOS) comes before any frame header (SOF)")
            if data[-2:] != b"\xff\xd9":
                raise _bad("JPEG does not end with the end-of-image marker (truncated, or bytes follow it)")
            return size, fill.end() - 1


def check_scans(data: bytes | memoryview, limits: Limits) -> None:
    """For a JPEG frame that passed `sniff_image`: the FF DA count bounds its scans, and its first end-of-image
    marker after the first scan ends the frame. PNG frames pass unchanged. Raises ProtocolError."""
    if data[:2] != b"\xff\xd8":
        return
    data = bytes(data)  # count / find (a copy of a memoryview, on the worker)
    _, first_sos = _jpeg_header(data, limits)  # not data.find: an EXIF thumbnail before it has scans too
    scans = data.count(b"\xff\xda", first_sos)
    if scans > limits.max_jpeg_scans:
        raise ProtocolError(
            "limit_exceeded", f"JPEG has {scans} scan markers, over max_jpeg_scans={limits.max_jpeg_scans} "
            "(each scan costs the decoder a pass over the whole image)", field="image", limit="max_jpeg_scans")
    eoi = data.find(b"\xff\xd9", first_sos + 4)
    if eoi < 0:
        raise _bad("JPEG has no end-of-image marker (truncated)")
    if eoi + 2 != len(data):
        raise _bad(f"{len(data) - eoi - 2} bytes follow the JPEG's end-of-image marker; nothing may follow the image")
