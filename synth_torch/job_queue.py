"""A bounded FIFO of jobs that hands the worker batches of jobs sharing a key (equal image size and params)."""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


class JobQueue(Generic[T]):
    """Thread-safe. `try_put` never blocks (False when full: the caller replies `overloaded`); `take_batch`
    blocks until a job is there, then also takes up to max_batch - 1 later jobs with the same key, keeping the
    order of the rest."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"queue_size={capacity} must be at least 1")
        self.capacity = capacity
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def try_put(self, item: T) -> bool:
        with self._cond:
            if self._closed or len(self._items) >= self.capacity:
                return False
            self._items.append(item)
            self._cond.notify()
            return True

    def take_batch(self, max_batch: int, key: Callable[[T], Hashable], timeout: float | None = None,
                   linger_s: float = 0.0) -> list[T]:
        """Up to max_batch jobs with the first job's key; [] on timeout or when closed and empty. With linger_s,
        a batch that is not full waits up to that long for more jobs with its key (latency for throughput)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return []
            if not self._items:
                return []
            first = self._items.popleft()
            batch = [first]
            if max_batch <= 1:
                return batch
            k = key(first)
            deadline = time.monotonic() + linger_s
            while True:
                rest = collections.deque()
                while self._items:
                    item = self._items.popleft()
                    if len(batch) < max_batch and key(item) == k:
                        batch.append(item)
                    else:
                        rest.append(item)
                self._items = rest
                left = deadline - time.monotonic()
                if len(batch) >= max_batch or left <= 0 or self._closed:
                    return batch
                n = len(self._items)
                self._cond.wait_for(lambda: len(self._items) > n or self._closed, left)

    def remove(self, predicate: Callable[[T], bool]) -> list[T]:
        """Takes out (and returns) every waiting job for which predicate is true, e.g. a departed client's."""
        with self._cond:
            out, rest = [], collections.deque()
            for item in self._items:
                (out if predicate(item) else rest).append(item)
            self._items = rest
            return out

    def drain(self) -> list[T]:
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items

    def close(self) -> None:
        """Refuses further puts and wakes the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
