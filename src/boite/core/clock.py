"""An injectable clock, so that historical examples see the time they describe."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """``Clock()`` is the real time; ``Clock(fixed)`` always answers ``fixed`` (UTC if naive)."""

    def __init__(self, fixed: datetime | None = None) -> None:
        if fixed is not None and fixed.tzinfo is None:
            fixed = fixed.replace(tzinfo=UTC)
        self.fixed = fixed

    def now(self) -> datetime:
        return self.fixed if self.fixed is not None else datetime.now(UTC)
