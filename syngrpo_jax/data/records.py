"""Reading annotation files record by record, with errors that say exactly where a record went wrong (plus the
one number-formatting rule the writers share).

Every reader in `syngrpo_jax.data` goes through here, so a bad record always fails the same way: a `RecordError`
naming the file, the place in it (1-based line number for JSONL; 0-based record index and id for JSON), the field
and the offending value. Readers never skip a bad record silently; a dataset with a broken line should be fixed,
not trained on.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from syngrpo_jax.data.sample import InvalidSampleError

_MISSING = object()


class RecordError(ValueError):
    """A record in an annotation file is malformed. Carries `path`, `location`, `field` and `value`."""

    def __init__(self, path: str, location: str, field: str | None, value: Any, reason: str):
        self.path, self.location, self.field, self.value, self.reason = path, location, field, value, reason
        where = f"{path}: {location}"
        what = f"field {field!r} = {_short_repr(value)}: " if field is not None else ""
        super().__init__(f"{where}: {what}{reason}")


def _short_repr(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Location:
    """Where a record sits in its file; turns field problems into `RecordError`s naming file and place."""

    def __init__(self, path: str, where: str):
        self.path, self.where = path, where

    def error(self, field: str | None, value: Any, reason: str) -> RecordError:
        return RecordError(self.path, self.where, field, value, reason)

    def wrap(self, exc: InvalidSampleError) -> RecordError:
        return self.error(exc.field, exc.value, exc.reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.where}"


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[Location, dict]]:
    """Yields (location, record) for every non-blank line of a JSONL file; each record must be a JSON object."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            loc = Location(path, f"line {lineno}")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise loc.error(None, line.strip(), f"not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict):
                raise loc.error(None, record, f"expected a JSON object, got {type(record).__name__}")
            yield loc, record


def write_jsonl(records: Iterable[Mapping], path: str | os.PathLike) -> None:
    """Writes one JSON object per line (the layout `iter_jsonl` reads)."""
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    """The parsed content of a JSON file; a syntax error names the file, line and column."""
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise RecordError(path, f"line {e.lineno} column {e.colno}", None, e.doc[e.pos : e.pos + 40],
                              f"not valid JSON ({e.msg})") from None


def iter_json_array(path: str | os.PathLike, id_field: str = "id") -> Iterator[tuple[Location, dict]]:
    """Yields (location, record) for each element of a file holding a JSON array of objects."""
    path = os.fspath(path)
    data = load_json(path)
    if not isinstance(data, list):
        raise RecordError(path, "top level", None, type(data).__name__, "expected a JSON array of records")
    for index, record in enumerate(data):
        yield located_record(path, f"record {index}", record, id_field)


def located_record(path: str, where: str, record: Any, id_field: str = "id") -> tuple[Location, dict]:
    """Location for one element of a JSON array (index plus id when it has one); checks it is an object."""
    if isinstance(record, dict) and id_field in record:
        where = f"{where} ({id_field}={record[id_field]!r})"
    loc = Location(path, where)
    if not isinstance(record, dict):
        raise loc.error(None, record, f"expected a JSON object, got {type(record).__name__}")
    return loc, record


def iter_records(path: str | os.PathLike, id_field: str = "id") -> Iterator[tuple[Location, dict]]:
    """JSONL (`.jsonl`) line by line, or a JSON array (`.json`), decided by the file suffix."""
    path = os.fspath(path)
    if path.endswith(".jsonl"):
        return iter_jsonl(path)
    if path.endswith(".json"):
        return iter_json_array(path, id_field)
    raise ValueError(f"annotation file {path!r}: expected a .jsonl or .json suffix")


# ---- field accessors: each raises a RecordError naming the field and value ----

def get_field(loc: Location, record: Mapping, field: str, types: type | tuple[type, ...], default: Any = _MISSING):
    """record[field], checked against `types` (bool is never accepted where a number is asked for)."""
    if field not in record:
        if default is _MISSING:
            raise loc.error(field, None, "missing required field")
        return default
    value = record[field]
    if isinstance(value, bool) and bool not in _as_tuple(types):
        raise loc.error(field, value, f"expected {_type_names(types)}, got bool")
    if not isinstance(value, types):
        raise loc.error(field, value, f"expected {_type_names(types)}, got {type(value).__name__}")
    return value


def get_str(loc: Location, record: Mapping, field: str, default: Any = _MISSING, nonempty: bool = True):
    value = get_field(loc, record, field, str, default)
    if nonempty and isinstance(value, str) and not value.strip():
        raise loc.error(field, value, "must be a non-empty string")
    return value


def get_number(loc: Location, record: Mapping, field: str, default: Any = _MISSING) -> float:
    value = get_field(loc, record, field, (int, float), default)
    if value is not default and not math.isfinite(value):
        raise loc.error(field, value, "must be a finite number")
    return value


def get_positive_int(loc: Location, record: Mapping, field: str, default: Any = _MISSING):
    value = get_field(loc, record, field, (int, float), default)
    if value is default:
        return value
    if not (math.isfinite(value) and value == int(value) and value > 0):
        raise loc.error(field, value, "must be a positive integer")
    return int(value)


def get_box4(loc: Location, record: Mapping, field: str) -> list[float]:
    """A list of 4 finite numbers (the caller decides whether they are xyxy or xywh)."""
    value = get_field(loc, record, field, list)
    return as_box4(loc, field, value)


def as_box4(loc: Location, field: str, value: Any) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise loc.error(field, value, "expected a list of 4 numbers")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise loc.error(field, value, "expected a list of 4 finite numbers")
    return [float(v) for v in value]


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _type_names(types) -> str:
    names = {int: "int", float: "float", str: "str", list: "list", dict: "object", bool: "bool"}
    return " or ".join(names.get(t, t.__name__) for t in _as_tuple(types))


def json_number(v: float) -> int | float:
    """A box coordinate for writing JSON: an int when integral, else the float32 value exactly (round-trips)."""
    f = float(np.float32(v))
    return int(f) if f.is_integer() else f


def resolve_image_path(root: str, image: str) -> str:
    """The absolute path of an image named relative to `root` (absolute names are kept as they are)."""
    return os.path.abspath(os.path.join(root, image))
