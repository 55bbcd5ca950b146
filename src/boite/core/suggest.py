""" "Did you mean" for misspelled names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, if one is close enough to be a typo."""
    candidates = list(known)
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    # an abbreviation ('prod' for 'production') is a typo of its own kind
    starts = [c for c in candidates if len(name) >= 3 and c.lower().startswith(name.lower())]
    return starts[0] if len(starts) == 1 else None
