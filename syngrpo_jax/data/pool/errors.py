"""Errors of the data pool and the argument checks its parts share."""
from __future__ import annotations

import json
from typing import Any

import numpy as np


class PoolError(ValueError):
    """A bad argument or state for the data pool. Carries `field`, `value` and `reason`."""

    def __init__(self, field: str, value: Any, reason: str):
        self.field, self.value, self.reason = field, value, reason
        text = repr(value)
        if len(text) > 200:
            text = text[:197] + "..."
        super().__init__(f"{field} = {text}: {reason}")


class UnknownSampleError(KeyError):
    """A sample id that is not in the pool."""

    def __init__(self, sample_id: Any, field: str = "sample_id"):
        self.field, self.value = field, sample_id
        super().__init__(sample_id)

    def __str__(self) -> str:
        return f"{self.field} = {self.value!r}: no such sample in the data pool"


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(field: str, value: Any, minimum: int = 0) -> int:
    if not is_int(value) or value < minimum:
        raise PoolError(field, value, f"must be an integer >= {minimum}")
    return int(value)


def check_json(field: str, value: Any) -> Any:
    """A JSON round-tripped copy (strict JSON: no NaN/inf), so state dicts stay plain data."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise PoolError(field, value, f"must be JSON-serialisable ({e})") from None
