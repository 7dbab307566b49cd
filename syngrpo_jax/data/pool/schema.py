"""A declarative schema for the pool's state dict: what each field must be, checked in one walk.

    check(STATE_SCHEMA, state)      # PoolError("state.<path>", value, reason) at the first field that fails

A schema is a tree of small specs (Int, Real, Str, Const, OneOf, Optional, AnyDict, ListOf, DictOf, Struct). The walk checks
types and ranges only; what needs the pool itself (ids of this pool, paths under this workdir, files on disk) is
checked by the parts that load each piece.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Mapping

from syngrpo_jax.data.pool.errors import PoolError, is_int


class Spec:
    def check(self, value: Any, path: str) -> None:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Int(Spec):
    minimum: int = 0

    def check(self, value, path):
        if not is_int(value) or value < self.minimum:
            raise PoolError(path, value, f"must be an integer >= {self.minimum}")


@dataclasses.dataclass(frozen=True)
class Real(Spec):
    low: float
    high: float

    def check(self, value, path):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not self.low <= value <= self.high:
            raise PoolError(path, value, f"must be a number in [{self.low:g}, {self.high:g}]")


@dataclasses.dataclass(frozen=True)
class Str(Spec):
    def check(self, value, path):
        if not isinstance(value, str):
            raise PoolError(path, value, "must be a string")


@dataclasses.dataclass(frozen=True)
class Const(Spec):
    value: Any
    reason: str

    def check(self, value, path):
        if value != self.value:
            raise PoolError(path, value, self.reason)


@dataclasses.dataclass(frozen=True)
class OneOf(Spec):
    choices: tuple

    def check(self, value, path):
        if value not in self.choices:
            raise PoolError(path, value, f"must be one of {list(self.choices)}")


@dataclasses.dataclass(frozen=True)
class Optional(Spec):
    inner: Spec

    def check(self, value, path):
        if value is not None:
            self.inner.check(value, path)


@dataclasses.dataclass(frozen=True)
class AnyDict(Spec):
    def check(self, value, path):
        if not isinstance(value, dict):
            raise PoolError(path, value, "must be a dict or None")


@dataclasses.dataclass(frozen=True)
class ListOf(Spec):
    item: Spec
    distinct: bool = False

    def check(self, value, path):
        if not isinstance(value, list):
            raise PoolError(path, value, "must be a list")
        if self.distinct and len({repr(v) for v in value}) != len(value):
            raise PoolError(path, value, "must hold distinct items")
        for i, v in enumerate(value):
            self.item.check(v, f"{path}[{i}]")


@dataclasses.dataclass(frozen=True)
class DictOf(Spec):
    value_spec: Spec

    def check(self, value, path):
        if not isinstance(value, Mapping):
            raise PoolError(path, value, "must be a mapping")
        for k, v in value.items():
            if not isinstance(k, str):
                raise PoolError(f"{path} key", k, "must be a string")
            self.value_spec.check(v, f"{path}[{k!r}]")


class Struct(Spec):
    """A mapping with these fields (extra keys are allowed: later format versions may add some)."""

    def __init__(self, **fields: Spec):
        self.fields = fields

    def check(self, value, path):
        if not isinstance(value, Mapping):
            raise PoolError(path, value, f"must be a mapping with the fields {sorted(self.fields)}")
        for name, spec in self.fields.items():
            spec.check(value.get(name), f"{path}.{name}")


def check(spec: Spec, value: Any, path: str = "state") -> None:
    spec.check(value, path)
