"""Debouncing and stale-result filtering as plain logic, so slider behaviour is testable without a display.

A slider emits dozens of values a second; predicting each would queue work the user has already
moved past. :class:`Debouncer` keeps only the latest value and releases it once the input has been
quiet for ``delay`` seconds. :class:`LatestOnly` numbers requests so a result that arrives after a
newer request was made is recognised as stale and dropped.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Debouncer", "LatestOnly"]

T = TypeVar("T")


class Debouncer(Generic[T]):
    def __init__(self, delay: float = 0.15) -> None:
        self.delay = delay
        self._pending: T | None = None
        self._has_pending = False
        self._last_input = 0.0

    def push(self, value: T, now: float) -> None:
        self._pending, self._has_pending, self._last_input = value, True, now

    @property
    def pending(self) -> bool:
        return self._has_pending

    def time_left(self, now: float) -> float:
        return max(0.0, self._last_input + self.delay - now) if self._has_pending else 0.0

    def pop_due(self, now: float) -> T | None:
        """The latest value if the input has been quiet long enough, else None (and keep waiting)."""
        if not self._has_pending or now - self._last_input < self.delay:
            return None
        value, self._pending, self._has_pending = self._pending, None, False
        return value


class LatestOnly:
    def __init__(self) -> None:
        self._issued = 0

    def next(self) -> int:
        self._issued += 1
        return self._issued

    def is_current(self, ticket: int) -> bool:
        return ticket == self._issued

    def invalidate(self) -> None:
        self._issued += 1
