"""A small module for the software-twin tests: functions, a class, hints, raises."""

from __future__ import annotations

__all__ = ["clamp", "parse_pair", "Stack", "ShapeError", "mean"]


class ShapeError(ValueError):
    """Raised for malformed input."""


def clamp(value: int, low: int = 0, high: int = 10) -> int:
    """Clamp value into [low, high]."""
    if low > high:
        raise ValueError("low > high")
    if value < low:
        return low
    if value > high:
        return high
    return value


def parse_pair(text: str) -> tuple[int, int]:
    """Parse 'a,b' into two integers."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ShapeError(f"expected two fields, got {len(parts)}")
    return int(parts[0]), int(parts[1])


def mean(values: list[float]) -> float | None:
    if not values:
        return None
    return sum(values) / len(values)


def _hidden(x):
    return x


class Stack:
    """A bounded stack."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self.items: list[int] = []

    def push(self, item: int) -> None:
        if len(self.items) >= self.capacity:
            raise OverflowError("full")
        self.items.append(item)

    def pop(self) -> int:
        if not self.items:
            raise IndexError("empty")
        return self.items.pop()

    @property
    def size(self) -> int:
        return len(self.items)
