"""The model registry: versions ``name@N`` (ledger artifacts of kind 'model'), the aliases
that point at them (staging, production, challenger), and the history of every move.

An alias move is one transaction: the alias and its history event change together,
so "what was in production on a given day" always has one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from boite.core import ledger_schema as t
from boite.core.ledger import ArtifactRecord, Ledger, utcnow
from boite.core.suggest import did_you_mean
from boite.errors import RegistryError

MODEL = "model"
ALIASES = ("staging", "production", "challenger")


@dataclass(frozen=True)
class ModelVersion:
    record: ArtifactRecord

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def ref(self) -> str:
        return self.record.ref

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.record.meta or {})

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.meta.get("metrics", {}))

    @property
    def gates(self) -> dict[str, Any]:
        return dict(self.meta.get("gates", {}))


@dataclass(frozen=True)
class AliasEvent:
    model: str
    alias: str
    version: int | None
    previous_version: int | None
    actor: str
    at: datetime
    reason: str
    forced: bool
    details: dict[str, Any] | None


def parse_ref(ref: str) -> tuple[str, int | None]:
    """'name@3' -> ('name', 3); 'name' -> ('name', None)."""
    name, sep, text = ref.partition("@")
    if not sep:
        return name, None
    if not text.isdigit():
        raise RegistryError(
            f"'{ref}' is not a model version",
            hint="Write NAME@N, for example repurchase@3.",
        )
    return name, int(text)


class Registry:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def versions(self, name: str) -> list[ModelVersion]:
        return [ModelVersion(r) for r in self.ledger.versions(MODEL, name)]

    def models(self) -> dict[str, ModelVersion]:
        return {n: ModelVersion(r) for n, r in self.ledger.latest_artifacts(MODEL).items()}

    def get(self, ref: str) -> ModelVersion:
        name, version = parse_ref(ref)
        known = self.ledger.latest_artifacts(MODEL)
        if name not in known:
            guess = did_you_mean(name, known)
            raise RegistryError(
                f"there is no model named '{name}' in the registry",
                model_version=ref,
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + (
                    "Models: " + ", ".join(sorted(known)) + "."
                    if known
                    else "Train one with `boite train NAME`."
                ),
            )
        if version is None:
            return ModelVersion(known[name])
        versions = self.ledger.versions(MODEL, name)
        for record in versions:
            if record.version == version:
                return ModelVersion(record)
        raise RegistryError(
            f"the model '{name}' has no version {version}",
            model_version=ref,
            hint=f"It has {', '.join(f'@{r.version}' for r in versions)}.",
        )

    def aliases(self, name: str | None = None) -> dict[str, dict[str, int]]:
        """{model: {alias: version}}."""
        query = sa.select(t.aliases.c.model, t.aliases.c.alias, t.aliases.c.version)
        if name is not None:
            query = query.where(t.aliases.c.model == name)
        out: dict[str, dict[str, int]] = {}
        with self.ledger.engine.connect() as conn:
            for model, alias, version in conn.execute(query):
                out.setdefault(model, {})[alias] = version
        return out

    def alias(self, name: str, alias: str) -> ModelVersion | None:
        version = self.aliases(name).get(name, {}).get(alias)
        return None if version is None else self.get(f"{name}@{version}")

    def move(
        self,
        version: ModelVersion,
        alias: str,
        *,
        actor: str,
        reason: str,
        forced: bool = False,
        details: dict[str, Any] | None = None,
    ) -> AliasEvent:
        if alias not in ALIASES:
            guess = did_you_mean(alias, ALIASES)
            raise RegistryError(
                f"'{alias}' is not an alias",
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + "Aliases: "
                + ", ".join(ALIASES)
                + ".",
            )
        if not reason.strip():
            raise RegistryError("a move needs a reason", hint='Pass --reason "...".')
        now = utcnow()
        with self.ledger.engine.begin() as conn:
            previous = conn.execute(
                sa.select(t.aliases.c.version).where(
                    t.aliases.c.model == version.name, t.aliases.c.alias == alias
                )
            ).scalar()
            conn.execute(
                t.aliases.delete().where(
                    t.aliases.c.model == version.name, t.aliases.c.alias == alias
                )
            )
            conn.execute(
                t.aliases.insert().values(
                    model=version.name,
                    alias=alias,
                    artifact_id=version.record.id,
                    version=version.version,
                    updated_at=now,
                )
            )
            conn.execute(
                t.alias_events.insert().values(
                    model=version.name,
                    alias=alias,
                    version=version.version,
                    previous_version=previous,
                    actor=actor,
                    at=now,
                    reason=reason,
                    forced=forced,
                    details=details,
                )
            )
        return AliasEvent(
            version.name, alias, version.version, previous, actor, now, reason, forced, details
        )

    def history(self, name: str, *, alias: str | None = None) -> list[AliasEvent]:
        query = (
            sa.select(t.alias_events)
            .where(t.alias_events.c.model == name)
            .order_by(t.alias_events.c.at, t.alias_events.c.id)
        )
        if alias is not None:
            query = query.where(t.alias_events.c.alias == alias)
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for row in rows:
            m = row._mapping
            at = m["at"] if m["at"].tzinfo else m["at"].replace(tzinfo=utcnow().tzinfo)
            out.append(
                AliasEvent(
                    m["model"],
                    m["alias"],
                    m["version"],
                    m["previous_version"],
                    m["actor"],
                    at,
                    m["reason"],
                    bool(m["forced"]),
                    m["details"],
                )
            )
        return out

    def alias_at(self, name: str, alias: str, when: datetime) -> int | None:
        """The version ``alias`` pointed at, at the moment ``when``."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=utcnow().tzinfo)
        version = None
        for event in self.history(name, alias=alias):
            if event.at <= when:
                version = event.version
        return version
