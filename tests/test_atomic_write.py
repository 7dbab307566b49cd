"""The one atomic write: whole new content or the old one, never a part; no temporary file left behind."""
import json
import os
import stat

import pytest

from syngrpo_jax.atomic_write import atomic_write, atomic_write_json


def test_writes_bytes_and_text_and_replaces(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    atomic_write(path, "h\u00e9")
    assert path.read_bytes() == "h\u00e9".encode("utf-8")
    atomic_write_json(tmp_path / "x.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1, 2]}
    assert sorted(os.listdir(tmp_path)) == ["sub", "x.json"] and os.listdir(tmp_path / "sub") == ["f.bin"]


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o644


def test_a_failed_write_keeps_the_old_content(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    atomic_write(path, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]
    with pytest.raises(TypeError, match="must be bytes or str"):
        atomic_write(path, 3)
