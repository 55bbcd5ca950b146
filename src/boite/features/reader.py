"""Online reads: features of many entities from the online store, TTL applied.

A reader is built once for a list of feature references (resolution, SQL and
key coercion are prepared then), so that each read is one store query per view
and a little tuple work: the path a serving request takes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from boite.errors import FeatureError
from boite.features.online import SQLiteOnlineStore, from_micros, to_micros
from boite.features.views import FeatureView


@dataclass
class OnlineFeatures:
    """The answer to one online read: one row per entity asked for, in order."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    event_us: dict[str, list[int | None]]  # per view, when each row's values happened
    missing: dict[str, list[int]]  # per view, rows with no (or an expired) value

    @property
    def event_times(self) -> dict[str, list[datetime | None]]:
        # converted on demand: building datetimes costs more than the read itself
        return {
            view: [None if us is None else from_micros(us) for us in values]
            for view, values in self.event_us.items()
        }

    def to_dict(self) -> dict[str, list[Any]]:
        return {c: [r[i] for r in self.rows] for i, c in enumerate(self.columns)}

    def to_records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)


def _coercer(kind: str) -> Callable[[Any], Any]:
    if kind == "VARCHAR":
        return lambda v: v if isinstance(v, str) else str(v)
    if "INT" in kind:
        return lambda v: v if isinstance(v, int) else int(v)
    return lambda v: v


class OnlineReader:
    def __init__(
        self,
        store: SQLiteOnlineStore,
        views: Mapping[str, FeatureView],
        wanted: Mapping[str, Sequence[str]],
        now: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.now = now
        self.plan: list[tuple[FeatureView, tuple[str, ...], list[Callable[[Any], Any]]]] = []
        self.columns: list[str] = []
        self.entity_columns: list[str] = []
        for view_name, features in wanted.items():
            view = views[view_name]
            if not view.online:
                raise FeatureError(
                    f"feature view '{view_name}' is offline only (online: false)",
                    view=view_name,
                    hint="Set 'online: true' on it and run `boite run` to materialize it.",
                )
            for key in view.entities:
                if key not in self.entity_columns:
                    self.entity_columns.append(key)
            coerce = [_coercer(view.types[k]) for k in view.entities]
            self.plan.append((view, tuple(features), coerce))
            self.columns.extend(features)
        if len(set(self.columns)) != len(self.columns):
            dupes = sorted({c for c in self.columns if self.columns.count(c) > 1})
            raise FeatureError(
                f"features from several views share the names {', '.join(dupes)}",
                hint="Ask for them in separate reads, or rename them in their transforms.",
            )

    def get(self, entities: Sequence[Mapping[str, Any]]) -> OnlineFeatures:
        now_us = to_micros(self.now())
        assert now_us is not None
        rows: list[list[Any]] = [[] for _ in entities]
        times: dict[str, list[int | None]] = {}
        missing: dict[str, list[int]] = {}
        for view, names, coerce in self.plan:
            try:
                if len(view.entities) == 1:
                    # the common case, kept free of per-row generators
                    key, to_key = view.entities[0], coerce[0]
                    keys = [(to_key(e[key]),) for e in entities]
                else:
                    keys = [
                        tuple(c(e[k]) for c, k in zip(coerce, view.entities, strict=True))
                        for e in entities
                    ]
            except KeyError as exc:
                raise FeatureError(
                    f"an entity lacks the key {exc.args[0]!r} of feature view '{view.name}'",
                    view=view.name,
                    hint="Give every entity all of: " + ", ".join(view.entities) + ".",
                ) from None
            except (TypeError, ValueError) as exc:
                raise FeatureError(
                    f"an entity key of feature view '{view.name}' has the wrong type: {exc}",
                    view=view.name,
                ) from None
            oldest = None if view.ttl is None else now_us - int(view.ttl.total_seconds() * 1e6)
            found = self.store.read(view.name, keys, names)
            view_times: list[int | None] = []
            absent: list[int] = []
            empty = [None] * len(names)
            for i, value in enumerate(found):
                if value is None or (oldest is not None and value[0] < oldest):
                    rows[i].extend(empty)
                    view_times.append(None)
                    absent.append(i)
                else:
                    rows[i].extend(value[1:])
                    view_times.append(value[0])
            times[view.name] = view_times
            missing[view.name] = absent
        return OnlineFeatures(list(self.columns), [tuple(r) for r in rows], times, missing)
