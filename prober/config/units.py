"""Durations ("30s", "1h30m") and sizes ("256KiB") as users write them, and their JSON schema."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from prober.config.source import _quote

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h|d))+")
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_SIZE = re.compile(rf"({_NUMBER})([kmg]i?b|b)?", re.IGNORECASE)
_DURATION_HINT = "is not a duration (write e.g. 500ms, 30s, 5m, 1h, 14d, or a number of seconds)"
_SIZE_HINT = "is not a size (write e.g. 512B, 256KiB, 1MiB, 10MB, 1GiB, or a number of bytes)"


# -- value parsers: each raises ValueError whose text follows the quoted value ----------------------


def _parser(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The public form of a predicate parser: the ValueError names the value."""

    def parse(value: Any) -> Any:
        try:
            return check(value)
        except ValueError as exc:
            raise ValueError(f"{_quote(value)} {exc}") from None

    parse.__doc__ = check.__doc__
    return parse


def _duration(value: Any) -> float:
    """Seconds from "500ms", "30s", "5m", "1h", "14d", "1h30m" or a number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(_DURATION_HINT)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(_NUMBER, text):
            seconds = float(text)
        elif _DURATION.fullmatch(text):
            seconds = sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
        else:
            raise ValueError(_DURATION_HINT)
    else:
        try:
            seconds = float(value)
        except OverflowError:  # an integer past 1e308: no duration, and not a crash
            seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("is not a duration: it must be a finite, non-negative number of seconds")
    return seconds


def _size(value: Any) -> int:
    """Bytes from "512B", "256KiB", "1MiB", "10MB", "1GiB" or a number of bytes."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(_SIZE_HINT)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("is not a size: it must not be negative")
        return value
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ValueError(_SIZE_HINT)
    number = float(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()]
    if not math.isfinite(number):
        raise ValueError(_SIZE_HINT)
    return round(number)


def parse_duration(value: str | int | float) -> float:
    """Seconds from "500ms", "30s", "5m", "1h", "14d", "1h30m" or a number of seconds."""
    return float(_parser(_duration)(value))


def parse_size(value: str | int) -> int:
    """Bytes from "512B", "256KiB", "1MiB", "10MB", "1GiB" or a number of bytes."""
    return int(_parser(_size)(value))


def _at_least(minimum: float, text: str, check: Callable[[Any], float]) -> Callable[[Any], float]:
    """`check`, and the result must be positive and at least `minimum` (`text` says it to users)."""

    def bounded(value: Any) -> float:
        number = check(value)
        if number < minimum or number <= 0:
            raise ValueError(f"is too small: it must be at least {text}")
        return number

    return bounded


def _at_most(maximum: float, text: str, check: Callable[[Any], float]) -> Callable[[Any], float]:
    """`check`, and the result must be at most `maximum` (`text` says it to users)."""

    def bounded(value: Any) -> float:
        number = check(value)
        if number > maximum:
            raise ValueError(f"is too large: it must be at most {text}")
        return number

    return bounded


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+|((\d+(\.\d*)?|\.\d+)(ms|s|m|h|d))+)\s*$|\$\{"},
        {"type": "number", "minimum": 0},
    ]
}
_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)([KkMmGg][Ii]?[Bb]|[Bb])?\s*$|\$\{"},
        {"type": "integer", "minimum": 0},
    ]
}
