"""Champion and challenger: which loaded version answers each row.

A traffic split sends a fixed share of the rows to the challenger, chosen by a
hash of an entity key (the same customer always meets the same model) or of the
request id; in shadow mode the champion answers every row and the challenger
scores the same rows after the answer has left, for the log only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from boite.serving.model import ServedModel

Mode = Literal["split", "shadow"]


def bucket(model: str, value: str) -> float:
    """A stable number in [0, 1) for a routing key; the model name salts it, so two
    models' splits are independent."""
    digest = hashlib.blake2b(f"{model}\x00{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True)
class Route:
    """One served model name: its aliases, and the versions they point at now."""

    name: str
    alias: str  # the champion's alias
    champion: ServedModel | None
    challenger_alias: str | None = None
    challenger: ServedModel | None = None
    mode: Mode | None = None
    share: float = 0.0
    by: str | None = None

    def versions(self) -> dict[int, ServedModel]:
        out = {}
        for model in (self.champion, self.challenger):
            if model is not None:
                out[model.version] = model
        return out

    def to_challenger(self, keys: list[str]) -> list[bool]:
        """For each row's routing key: does the challenger answer it?"""
        if self.mode != "split" or self.challenger is None:
            return [False] * len(keys)
        return [bucket(self.name, k) < self.share for k in keys]
