"""Feature views and feature references, resolved against the schema of their dataset.

A feature view names the entity key columns, the event timestamp (and optionally
a created timestamp) and the feature columns of one dataset. References are
``view:feature`` or ``view:*``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from boite.core.config import FeatureViewConfig
from boite.core.suggest import did_you_mean
from boite.errors import FeatureError

TIME_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
TZ_TYPES = ("TIMESTAMP WITH TIME ZONE",)
KEY_TYPES = (
    "VARCHAR",
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)


@dataclass(frozen=True)
class FeatureView:
    """A feature view resolved against one version of its dataset."""

    name: str
    source: str
    entities: tuple[str, ...]
    timestamp: str
    created_timestamp: str | None
    ttl: timedelta | None
    features: tuple[str, ...]
    types: dict[str, str] = field(hash=False)  # every column used: keys, times, features
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] = field(default_factory=dict, hash=False)
    freshness: timedelta | None = None
    online: bool = True

    @property
    def timezone_aware(self) -> bool:
        return self.types[self.timestamp] in TZ_TYPES

    @property
    def columns(self) -> tuple[str, ...]:
        extra = (self.created_timestamp,) if self.created_timestamp else ()
        return (*self.entities, self.timestamp, *extra, *self.features)


def resolve_view(
    name: str, config: FeatureViewConfig, schema: dict[str, str], *, dataset: str
) -> FeatureView:
    """Check the view's columns against ``schema`` (of ``dataset``, e.g. 'customer_activity@3')."""

    def need(column: str, role: str) -> str:
        if column not in schema:
            guess = did_you_mean(column, schema)
            raise FeatureError(
                f"feature view '{name}': its {role} column '{column}' is not in {dataset}",
                view=name,
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + "Columns there: "
                + ", ".join(schema)
                + ".",
            )
        return schema[column]

    for key in config.entities:
        kind = need(key, "entity")
        if kind not in KEY_TYPES:
            raise FeatureError(
                f"feature view '{name}': entity column '{key}' is {kind}; an entity key is text "
                "or an integer",
                view=name,
                hint="Cast it in the transform that makes the dataset (e.g. CAST(x AS VARCHAR)).",
            )
    for column, role in (
        (config.timestamp, "timestamp"),
        (config.created_timestamp, "created timestamp"),
    ):
        if column is None:
            continue
        kind = need(column, role)
        if kind not in TIME_TYPES + TZ_TYPES:
            raise FeatureError(
                f"feature view '{name}': its {role} column '{column}' is {kind}; it must be "
                "a DATE or a TIMESTAMP (with or without time zone)",
                view=name,
                hint="Convert it in its transform, e.g. CAST(strptime(d, '%Y%m%d') AS DATE).",
            )
    special = {*config.entities, config.timestamp, config.created_timestamp}
    if config.features is None:
        features = tuple(c for c in schema if c not in special)
        if not features:
            raise FeatureError(
                f"feature view '{name}': {dataset} has no columns besides the keys and timestamps",
                view=name,
            )
    else:
        for feature in config.features:
            need(feature, "feature")
        features = tuple(config.features)
    used = [*config.entities, config.timestamp, *features]
    if config.created_timestamp:
        used.append(config.created_timestamp)
    return FeatureView(
        name=name,
        source=config.source,
        entities=tuple(config.entities),
        timestamp=config.timestamp,
        created_timestamp=config.created_timestamp,
        ttl=config.ttl,
        features=features,
        types={c: schema[c] for c in used},
        description=config.description,
        owner=config.owner,
        tags=dict(config.tags),
        freshness=config.freshness,
        online=config.online,
    )


def parse_refs(
    refs: list[str] | tuple[str, ...], views: dict[str, FeatureView]
) -> dict[str, list[str]]:
    """``["v:a", "w:*"]`` -> ``{"v": ["a"], "w": [all of w's features]}``, in the order given."""
    if isinstance(refs, str):
        refs = [refs]
    if not refs:
        raise FeatureError("no features were asked for", hint="Pass references like 'view:*'.")
    out: dict[str, list[str]] = {}
    for ref in refs:
        view_name, sep, feature = str(ref).partition(":")
        if not sep or not view_name or not feature:
            raise FeatureError(
                f"'{ref}' is not a feature reference",
                hint="Write 'view:feature' for one feature or 'view:*' for all of a view's.",
            )
        if view_name not in views:
            guess = did_you_mean(view_name, views)
            raise FeatureError(
                f"'{ref}' names the feature view '{view_name}', which does not exist",
                view=view_name,
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + (
                    "Feature views: " + ", ".join(sorted(views)) + "."
                    if views
                    else "Declare one under 'feature_views:' in boite.yaml."
                ),
            )
        view = views[view_name]
        wanted = out.setdefault(view_name, [])
        if feature == "*":
            wanted.extend(f for f in view.features if f not in wanted)
            continue
        if feature not in view.features:
            guess = did_you_mean(feature, view.features)
            raise FeatureError(
                f"'{ref}': the feature view '{view_name}' has no feature '{feature}'",
                view=view_name,
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + "Its features: "
                + ", ".join(view.features)
                + ".",
            )
        if feature not in wanted:
            wanted.append(feature)
    return out
