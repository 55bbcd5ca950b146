"""Durations as people write them in boite.yaml: ``90s``, ``30m``, ``12h``, ``7d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")

ALLOWED = "a number followed by one unit: s, m, h, d or w (for example 90s, 30m, 12h, 7d, 2w)"


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse a duration; raise ``ValueError`` saying what is allowed otherwise."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"a duration must be {ALLOWED}; got {text!r}")
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"a duration must be {ALLOWED}; got {text!r}")
    value, unit = match.groups()
    return timedelta(**{_UNITS[unit]: float(value)})


def format_duration(delta: timedelta) -> str:
    """The shortest exact form of ``delta`` in the units above."""
    seconds = delta.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
