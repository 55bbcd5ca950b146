"""The server's work without HTTP: which versions answer, how a request becomes rows,
scoring, the missing-value policy, the log, and switching versions when an alias moves.

Both endpoints (the Open Inference Protocol and the simple JSON one) come here
with plain Python values, so the rules are the same whichever way a request
arrives.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from boite.core.config import EnvironmentConfig
from boite.core.suggest import did_you_mean
from boite.errors import BoiteError, RequestError
from boite.serving.model import Loader, ServedModel
from boite.serving.predlog import Entry, PredictionLog
from boite.serving.routing import Route

logger = logging.getLogger("boite.serving")

AliasLookup = Callable[[], dict[str, dict[str, int]]]  # {model: {alias: version}}


@dataclass
class Scored:
    """The answer to one request, and what to do once it has been sent."""

    model: ServedModel
    role: str
    predictions: list[Any]
    warnings: list[dict[str, Any]] = field(default_factory=list)
    after: Callable[[], None] | None = None  # shadow scoring, off the hot path


def _field(source: str, row: int, column: str | None = None) -> str:
    return f"{source}[{row}]" + (f".{column}" if column else "")


class Service:
    def __init__(
        self,
        env_name: str,
        env: EnvironmentConfig,
        *,
        loader: Loader,
        aliases: AliasLookup,
        log: PredictionLog | None,
    ) -> None:
        self.env_name = env_name
        self.env = env
        self.loader = loader
        self.alias_lookup = aliases
        self.log = log
        self.routes: dict[str, Route] = {}
        self._loaded: dict[tuple[str, int], ServedModel] = {}
        self._reload_lock = threading.Lock()
        self.reloads = 0

    # --- versions ---------------------------------------------------------------------

    def _wanted(self, aliases: Mapping[str, Mapping[str, int]]) -> dict[str, Route]:
        """The routes the aliases name now, with the versions already loaded reused."""
        routes = {}
        for name, alias in self.env.serve.items():
            current = aliases.get(name, {})
            champion = self._model(name, current.get(alias))
            route = Route(name=name, alias=alias, champion=champion)
            other, mode = None, None
            if name in self.env.shadow:
                other, mode = self.env.shadow[name], "shadow"
            elif name in self.env.split:
                other, mode = self.env.split[name].alias, "split"
            if other is not None:
                split = self.env.split.get(name)
                route = replace(
                    route,
                    challenger_alias=other,
                    challenger=self._model(name, current.get(other)),
                    mode=mode,  # type: ignore[arg-type]
                    share=split.share if split else 0.0,
                    by=split.by if split else None,
                )
            routes[name] = route
        return routes

    def _model(self, name: str, version: int | None) -> ServedModel | None:
        if version is None:
            return None
        key = (name, version)
        if key not in self._loaded:
            self._loaded[key] = self.loader(name, version)
        return self._loaded[key]

    def load(self) -> None:
        """Load every version the environment's aliases point at."""
        with self._reload_lock:
            self.routes = self._wanted(self.alias_lookup())

    def refresh(self) -> list[str]:
        """Follow alias moves: load new versions first, then switch in one assignment,
        so a request in flight finishes on the version it started with."""
        with self._reload_lock:
            aliases = self.alias_lookup()
            changed = []
            for name, route in self.routes.items():
                now = aliases.get(name, {})
                before = {route.alias: route.champion, route.challenger_alias: route.challenger}
                for alias, model in before.items():
                    if alias is None:
                        continue
                    if now.get(alias) != (None if model is None else model.version):
                        changed.append(f"{name}:{alias}")
            if not changed:
                return []
            routes = self._wanted(aliases)
            self.routes = routes
            live = {(m.name, m.version) for r in routes.values() for m in r.versions().values()}
            self._loaded = {k: v for k, v in self._loaded.items() if k in live}
            self.reloads += 1
            logger.info("aliases moved (%s): now serving %s", ", ".join(changed), self.summary())
            return changed

    def summary(self) -> str:
        parts = []
        for route in self.routes.values():
            text = f"{route.name}:{route.alias}=" + (
                route.champion.ref if route.champion else "none"
            )
            if route.mode:
                text += f" {route.mode} {route.challenger_alias}=" + (
                    route.challenger.ref if route.challenger else "none"
                )
            parts.append(text)
        return "; ".join(parts)

    @property
    def ready(self) -> bool:
        return all(r.champion is not None for r in self.routes.values())

    def route(self, name: str) -> Route:
        route = self.routes.get(name)
        if route is None:
            guess = did_you_mean(name, self.routes)
            raise RequestError(
                f"there is no model named '{name}' in the {self.env_name} environment",
                field="model_name",
                status=404,
                hint=(f"Did you mean '{guess}'? " if guess else "")
                + "Models served here: "
                + ", ".join(sorted(self.routes))
                + ".",
            )
        return route

    def version(self, name: str, version: str | int | None) -> tuple[ServedModel, str]:
        """The model that answers an explicit version, or the champion; and its role."""
        route = self.route(name)
        if version is None:
            if route.champion is None:
                raise RequestError(
                    f"no version of '{name}' is {route.alias} yet, so the {self.env_name} "
                    "environment cannot answer for it",
                    field="model_name",
                    status=503,
                    hint=f"Promote one: boite models promote {name}@N --to {route.alias}.",
                )
            return route.champion, "champion"
        text = str(version)
        for model, role in ((route.champion, "champion"), (route.challenger, "challenger")):
            if model is not None and text == str(model.version):
                return model, role
        served = [str(m.version) for m in route.versions().values()]
        raise RequestError(
            f"version '{text}' of '{name}' is not served in the {self.env_name} environment",
            field="model_version",
            status=404,
            hint="Versions served: " + (", ".join(served) if served else "none") + ".",
        )

    # --- scoring ----------------------------------------------------------------------

    def score(
        self,
        name: str,
        *,
        version: str | int | None = None,
        entities: Sequence[Mapping[str, Any]] | None,
        features: Sequence[Mapping[str, Any]] | None,
        request_id: str,
    ) -> Scored:
        started = time.perf_counter()
        if version is not None:
            model, role = self.version(name, version)
            route = None
        else:
            route = self.route(name)
            model, role = self.version(name, None)
            if route.mode == "split" and route.challenger is not None:
                key = request_id
                if route.by and entities and route.by in entities[0]:
                    key = str(entities[0][route.by])
                if route.to_challenger([key])[0]:
                    model, role = route.challenger, "challenger"
        rows, missing, warnings = self.rows(model, entities, features)
        predictions = self.predict(model, rows, entities, features)
        self._log(model, role, True, request_id, entities, rows, predictions, started, missing)
        after = None
        if route is not None and route.mode == "shadow" and route.challenger is not None:
            shadow = route.challenger

            def after() -> None:
                self._shadow(shadow, entities, features, request_id)

        return Scored(model, role, predictions, warnings, after)

    def _shadow(
        self,
        model: ServedModel,
        entities: Sequence[Mapping[str, Any]] | None,
        features: Sequence[Mapping[str, Any]] | None,
        request_id: str,
    ) -> None:
        started = time.perf_counter()
        try:
            rows, missing, _ = self.rows(model, entities, features, policy="predict")
            predictions = self.predict(model, rows, entities, features)
        except BoiteError as exc:
            # the champion answered; a challenger that cannot score is worth a line
            logger.warning("shadow %s could not score request %s: %s", model.ref, request_id, exc)
            return
        self._log(model, "shadow", False, request_id, entities, rows, predictions, started, missing)

    def _log(
        self,
        model: ServedModel,
        role: str,
        served: bool,
        request_id: str,
        entities: Sequence[Mapping[str, Any]] | None,
        rows: list[list[Any]],
        predictions: list[Any],
        started: float,
        missing: list[str | None] | None,
    ) -> None:
        if self.log is None:
            return
        latency_ms = (time.perf_counter() - started) * 1000.0
        entry = Entry(
            request_id,
            time.time_ns() // 1000,
            role,
            served,
            entities,
            rows,
            predictions,
            latency_ms,
            missing,
        )
        self.log.record(model, entry)

    def rows(
        self,
        model: ServedModel,
        entities: Sequence[Mapping[str, Any]] | None,
        features: Sequence[Mapping[str, Any]] | None,
        *,
        policy: str | None = None,
    ) -> tuple[list[list[Any]], list[str | None] | None, list[dict[str, Any]]]:
        """The model's input rows: online values, then entity keys, then inline features."""
        count = len(entities) if entities is not None else len(features or [])
        if entities is not None and features is not None and len(entities) != len(features):
            raise RequestError(
                f"'entities' has {len(entities)} rows and 'features' {len(features)}; "
                "they describe the same rows, so they must be as long",
                field="features",
            )
        if count == 0:
            raise RequestError(
                "the request has no rows", field="entities", hint="Send at least one entity."
            )
        if count > self.env.max_rows:
            raise RequestError(
                f"the request has {count} rows; this server takes at most {self.env.max_rows} "
                "per request",
                field="entities",
                status=413,
                hint="Split it, or score a file in bulk with `boite predict`.",
            )
        inputs = model.inputs
        if entities is not None:
            if not model.entity_keys:
                raise RequestError(
                    f"{model.ref} reads no feature view, so it takes no entities",
                    field="entities",
                    hint="Send its inputs as 'features': " + ", ".join(inputs) + ".",
                )
            for i, entity in enumerate(entities):
                absent = [k for k in model.entity_keys if k not in entity]
                if absent:
                    raise RequestError(
                        f"entity {i} lacks the key {absent[0]!r}",
                        field=_field("entities", i, absent[0]),
                        hint="Each entity gives: " + ", ".join(model.entity_keys) + ".",
                    )
                for key, value in entity.items():
                    if key not in model.entity_keys:
                        raise RequestError(
                            f"entity {i} has the key {key!r}, which is not an entity key "
                            f"of {model.ref}",
                            field=_field("entities", i, key),
                            hint="Entity keys: "
                            + ", ".join(model.entity_keys)
                            + "; put features under 'features'.",
                        )
                    if not isinstance(value, str | int) or isinstance(value, bool):
                        raise RequestError(
                            f"the entity key {key!r} must be a text or an integer; got "
                            f"{type(value).__name__}",
                            field=_field("entities", i, key),
                        )
        if features is not None:
            known = set(inputs) | set(model.entity_keys)
            for i, row in enumerate(features):
                for column in row:
                    if column not in known:
                        guess = did_you_mean(column, inputs)
                        raise RequestError(
                            f"{model.ref} has no feature {column!r}",
                            field=_field("features", i, column),
                            hint=(f"Did you mean '{guess}'? " if guess else "")
                            + "Its features: "
                            + ", ".join(inputs)
                            + ".",
                        )
        online_rows: list[tuple[Any, ...]] | None = None
        absent_views: dict[int, list[str]] = {}
        online_index = model.online_positions
        if model.online is not None and entities is not None:
            got = model.online.get(entities)
            online_rows = got.rows
            for view, rows_missing in got.missing.items():
                for i in rows_missing:
                    absent_views.setdefault(i, []).append(view)
        warnings: list[dict[str, Any]] = []
        missing: list[str | None] | None = None
        if absent_views:
            policy = policy or self.env.on_missing.get(model.name, "predict")
            first = min(absent_views)
            if policy == "reject":
                raise RequestError(
                    f"entity {first} has no online features in "
                    f"{', '.join(absent_views[first])} (unknown, or expired by the TTL), and "
                    f"the {self.env_name} environment rejects such rows for {model.name}",
                    field=_field("entities", first),
                    status=422,
                    hint="Send its features inline under 'features', or set "
                    f"environments.{self.env_name}.on_missing.{model.name}: predict.",
                )
            missing = [
                ",".join(absent_views[i]) if i in absent_views else None for i in range(count)
            ]
            for i, views in sorted(absent_views.items()):
                warnings.append(
                    {
                        "row": i,
                        "missing_views": views,
                        "message": "no online features for this entity (unknown or expired); "
                        "scored with them missing",
                    }
                )
        if features is None and online_rows is not None:
            order = model.online_order
            if order is not None:
                # every input read online: values the store holds, no client value to check
                return [[online[j] for j in order] for online in online_rows], missing, warnings
        rows: list[list[Any]] = []
        for i in range(count):
            inline = features[i] if features is not None else None
            entity = entities[i] if entities is not None else None
            online = online_rows[i] if online_rows is not None else None
            row = []
            for name in inputs:
                if inline is not None and name in inline:
                    value = inline[name]
                elif online is not None and name in online_index:
                    value = online[online_index[name]]
                elif entity is not None and name in entity:
                    value = entity[name]
                else:
                    where = "entities" if name in model.entity_keys else "features"
                    raise RequestError(
                        f"row {i} lacks the feature {name!r}",
                        field=_field(where, i, name),
                        hint=f"{model.ref} needs: " + ", ".join(model.request_inputs) + ".",
                    )
                if isinstance(value, float) and not math.isfinite(value):
                    raise RequestError(
                        f"the feature {name!r} of row {i} is {value}; only finite numbers "
                        "(or null for a missing value) are allowed",
                        field=_field("features", i, name),
                    )
                row.append(value)
            rows.append(row)
        return rows, missing, warnings

    def predict(
        self,
        model: ServedModel,
        rows: list[list[Any]],
        entities: Sequence[Mapping[str, Any]] | None,
        features: Sequence[Mapping[str, Any]] | None,
    ) -> list[Any]:
        try:
            return model.predict(rows)
        except ValueError as exc:  # BadValue: a value of the wrong kind
            column = getattr(exc, "column", None)
            row = getattr(exc, "row", 0)
            source = (
                "features"
                if features is not None and column in features[row]
                else ("entities" if entities is not None else "features")
            )
            raise RequestError(str(exc), field=_field(source, row, column)) from None
