"""The one way this project writes a file that someone may be reading: readers see the old content or the new,
never a part of either.

    atomic_write(path, b"...")            # bytes, or str (UTF-8)
    atomic_write_json(path, {"a": 1})     # json.dumps(obj, indent=2) + newline

The data goes to a temporary file in the same directory (same file system, so the rename is atomic), is flushed
and fsync'ed, then renamed over `path`. A crash at any point leaves `path` as it was; the temporary file is
removed on an exception (a hard kill can leave a hidden `.<name>.<random>.tmp`, which no reader looks at). The
temporary file is created with mode 0o666 minus the umask, like `open(path, "w")`, so the result has the usual
permissions.

Import-light on purpose (no jax, no numpy): the data server (synth_torch) may use it as well.
"""
from __future__ import annotations

import json
import os
import secrets
from typing import Any


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Replace `path` with `data` atomically (creating the parent directory if needed)."""
    path = os.fspath(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise TypeError(f"atomic_write({path!r}): data must be bytes or str, got {type(data).__name__}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, **kwargs) -> None:
    """`atomic_write(path, json.dumps(obj, indent=indent, **kwargs) + "\\n")`."""
    atomic_write(path, json.dumps(obj, indent=indent, **kwargs) + "\n")
