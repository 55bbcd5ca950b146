"""``boite.yaml``: the typed schema of a project, and a loader with precise errors.

Every error names the file, the key path and line, what is allowed and what was
found, with "did you mean" for misspelled keys and names.
"""

from __future__ import annotations

import re
import types
import typing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from boite.core.durations import parse_duration
from boite.core.suggest import did_you_mean
from boite.errors import ConfigError

CONFIG_FILE = "boite.yaml"
STATE_DIR = ".boite"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_RULE = "letters, digits and underscores, not starting with a digit"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stores(_Strict):
    """Where the project keeps its state; every store is a URL with an embedded default."""

    ledger: str = f"sqlite:///{STATE_DIR}/ledger.db"
    artifacts: str = f"{STATE_DIR}/artifacts"
    engine: Literal["duckdb"] = "duckdb"
    online: str = f"sqlite:///{STATE_DIR}/online.db"


class SourceConfig(_Strict):
    """Raw data: files (with globs) or a table or query of a SQL database."""

    path: str | list[str] | None = None
    format: Literal["csv", "parquet", "json"] | None = None
    delimiter: str | None = None
    header: bool = True
    columns: dict[str, str] | None = None
    url: str | None = None
    table: str | None = None
    query: str | None = None
    description: str | None = None

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str | None) -> str | None:
        if value is None or value == "whitespace":
            return value
        if value == "\\t":
            return "\t"
        if len(value) != 1:
            raise ValueError(
                "a delimiter is one character (such as ',', ';', '|' or '\\t') or the word "
                f"'whitespace' (runs of spaces and tabs); got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> SourceConfig:
        if (self.path is None) == (self.url is None):
            raise ValueError(
                "a source needs exactly one of 'path' (files, globs allowed) or 'url' "
                "(a database, with 'table' or 'query')"
            )
        if self.url is not None:
            if (self.table is None) == (self.query is None):
                raise ValueError("a database source needs exactly one of 'table' or 'query'")
            file_only = [
                k for k in ("format", "delimiter", "columns") if getattr(self, k) is not None
            ]
            if not self.header:
                file_only.append("header")
            if file_only:
                raise ValueError(
                    f"{', '.join(repr(k) for k in file_only)} apply to file sources, not to 'url'; "
                    "cast columns in the query instead"
                )
        elif self.table is not None or self.query is not None:
            raise ValueError("'table' and 'query' need 'url' (the database to read them from)")
        return self

    @property
    def paths(self) -> list[str]:
        if self.path is None:
            return []
        return [self.path] if isinstance(self.path, str) else list(self.path)


def _columns(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return value


class NotNullCheck(_Strict):
    kind: Literal["not_null"]
    columns: list[str] = Field(min_length=1)

    _wrap = field_validator("columns", mode="before")(lambda v: _columns(v))


class UniqueCheck(_Strict):
    kind: Literal["unique"]
    columns: list[str] = Field(min_length=1)

    _wrap = field_validator("columns", mode="before")(lambda v: _columns(v))


class AcceptedValuesCheck(_Strict):
    kind: Literal["accepted_values"]
    column: str
    values: list[Any] = Field(min_length=1)


class RangeCheck(_Strict):
    kind: Literal["range"]
    column: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("a range check needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        return self


class RowCountCheck(_Strict):
    kind: Literal["row_count"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> RowCountCheck:
        if self.min is None and self.max is None:
            raise ValueError("a row_count check needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is greater than 'max' ({self.max})")
        return self


class FreshnessCheck(_Strict):
    kind: Literal["freshness"]
    column: str
    max_age: timedelta

    _age = field_validator("max_age", mode="before")(lambda v: parse_duration(v))


Check = Annotated[
    Union[  # noqa: UP007 - pydantic's discriminator wants a Union here
        NotNullCheck, UniqueCheck, AcceptedValuesCheck, RangeCheck, RowCountCheck, FreshnessCheck
    ],
    Field(discriminator="kind"),
]
CHECK_KINDS = ["not_null", "unique", "accepted_values", "range", "row_count", "freshness"]
# Checks whose value may be given directly instead of as a mapping: {not_null: id}.
_SHORT_FORM = {"not_null": "columns", "unique": "columns"}


class TransformConfig(_Strict):
    """Settings of a transform; its code lives in transforms/NAME.sql or NAME.py."""

    description: str | None = None
    checks: list[Check] = []
    tags: dict[str, str] = {}

    @field_validator("checks", mode="before")
    @classmethod
    def _check_form(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError(
                    f"check #{i + 1} must be a mapping with one key, the kind of check "
                    f"({', '.join(CHECK_KINDS)}), such as {{not_null: customer_id}}; got {item!r}"
                )
            ((kind, body),) = item.items()
            if kind not in CHECK_KINDS:
                guess = did_you_mean(str(kind), CHECK_KINDS)
                hint = f" Did you mean '{guess}'?" if guess else ""
                raise ValueError(
                    f"check #{i + 1}: unknown kind of check {kind!r}; allowed: "
                    f"{', '.join(CHECK_KINDS)}.{hint}"
                )
            if kind in _SHORT_FORM and not isinstance(body, dict):
                body = {_SHORT_FORM[kind]: body}
            if not isinstance(body, dict):
                raise ValueError(
                    f"check #{i + 1} ({kind}) needs a mapping of settings; got {body!r}"
                )
            out.append({"kind": kind, **body})
        return out


class FeatureViewConfig(_Strict):
    """Features of one entity, with an event time, defined on a dataset (source or transform)."""

    entity: str | list[str]
    timestamp: str
    source: str
    created_timestamp: str | None = None
    ttl: timedelta | None = None
    features: list[str] | None = None
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] = {}
    freshness: timedelta | None = None
    online: bool = True

    _durations = field_validator("ttl", "freshness", mode="before")(
        lambda v: None if v is None else parse_duration(v)
    )

    @field_validator("features")
    @classmethod
    def _features(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("'features' lists at least one column; leave it out for all")
            dupes = sorted({f for f in value if value.count(f) > 1})
            if dupes:
                raise ValueError(f"features listed twice: {', '.join(dupes)}")
        return value

    @property
    def entities(self) -> list[str]:
        return [self.entity] if isinstance(self.entity, str) else list(self.entity)

    @model_validator(mode="after")
    def _keys(self) -> FeatureViewConfig:
        if not self.entities:
            raise ValueError("'entity' names at least one key column")
        special = [*self.entities, self.timestamp, self.created_timestamp]
        clash = sorted(set(self.features or []) & {c for c in special if c})
        if clash:
            raise ValueError(
                f"{', '.join(clash)} is a key or timestamp column, not a feature; "
                "remove it from 'features'"
            )
        return self


TASKS = (
    "binary_classification",
    "multiclass",
    "regression",
    "ranking",
    "clustering",
    "recommendation",
)
_GATE = re.compile(r"^\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")


class LabelConfig(_Strict):
    """Where the examples come from: the rows of a dataset, and its label column.

    Clustering learns without a label: it names only the dataset.
    """

    dataset: str
    column: str | None = None
    timestamp: str | None = None
    # binary tasks: the value that counts as the positive class (default: the
    # larger of the two, so 1 over 0 and True over False)
    positive: str | int | bool | None = None


class SplitConfig(_Strict):
    """How examples are held out for testing."""

    by: Literal["random", "time", "group"] = "random"
    test_size: float = Field(default=0.2, gt=0, lt=1)
    test_from: datetime | None = None
    column: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _shape(self) -> SplitConfig:
        if self.by == "group" and not self.column:
            raise ValueError("a group split needs 'column' (rows of one group stay together)")
        if self.test_from is not None and self.by != "time":
            raise ValueError("'test_from' applies to 'by: time' only")
        return self


class SearchConfig(_Strict):
    """Hyperparameter search with Optuna: each trial is a run on record."""

    trials: int = Field(default=20, ge=1, le=10_000)
    metric: str | None = None
    direction: Literal["maximize", "minimize"] | None = None
    space: dict[str, Any] = {}
    timeout_s: float | None = Field(default=None, gt=0)
    seed: int = 0
    parallel: int = Field(default=1, ge=1, le=64)
    pruning: bool = True

    @field_validator("space")
    @classmethod
    def _space(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, spec in value.items():
            describe_space(name, spec)
        return value


def describe_space(name: str, spec: Any) -> tuple[str, Any]:
    """('int'|'float', (low, high, log)) or ('choice', [...]); ValueError when malformed."""
    allowed = (
        f"the search space of '{name}' must be [low, high], [low, high, log] or "
        "{choices: [a, b, ...]}"
    )
    if isinstance(spec, dict):
        if set(spec) != {"choices"} or not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ValueError(f"{allowed}; got {spec!r}")
        return "choice", list(spec["choices"])
    if not isinstance(spec, list) or len(spec) not in (2, 3):
        raise ValueError(f"{allowed}; got {spec!r}")
    low, high, *rest = spec
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers:
        raise ValueError(f"{allowed} (low and high numbers); got {spec!r}")
    if rest and rest != ["log"]:
        raise ValueError(f"{allowed}; the third item may only be 'log', got {rest[0]!r}")
    if low >= high:
        raise ValueError(f"the search space of '{name}' has low {low} >= high {high}")
    log = bool(rest)
    if log and low <= 0:
        raise ValueError(f"the search space of '{name}' is log-scaled, so low must be > 0")
    kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    return kind, (low, high, log)


class BusinessConfig(_Strict):
    """What each outcome of a binary decision is worth, to price a model and pick a threshold."""

    value_true_positive: float = 0.0
    cost_false_positive: float = 0.0
    cost_false_negative: float = 0.0
    value_true_negative: float = 0.0


class FairnessConfig(_Strict):
    sensitive: list[str] = Field(min_length=1)
    max_demographic_parity_difference: float | None = Field(default=None, ge=0, le=1)
    max_equalized_odds_difference: float | None = Field(default=None, ge=0, le=1)
    min_demographic_parity_ratio: float | None = Field(default=None, ge=0, le=1)
    min_group_size: int = Field(default=30, ge=1)
    intersections: bool = True

    @property
    def limits(self) -> dict[str, float]:
        keys = (
            "max_demographic_parity_difference",
            "max_equalized_odds_difference",
            "min_demographic_parity_ratio",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class Gate(_Strict):
    metric: str
    op: str
    threshold: float


class ModelConfig(_Strict):
    """A named model spec; each training makes a model version NAME@N."""

    task: Literal[
        "binary_classification",
        "multiclass",
        "regression",
        "ranking",
        "clustering",
        "recommendation",
    ]
    label: LabelConfig | None = None
    features: list[str] = Field(min_length=1)
    exclude: list[str] = []
    split: SplitConfig = SplitConfig()
    algorithm: str = "lightgbm"
    params: dict[str, Any] = {}
    search: SearchConfig | None = None
    gates: dict[str, Any] = {}
    fairness: FairnessConfig | None = None
    business: BusinessConfig | None = None
    slices: list[str] = []
    group: str | None = None
    user: str | None = None
    item: str | None = None
    # side features of a recommender: columns of its interactions, constant per user / item
    user_features: list[str] = []
    item_features: list[str] = []
    k: int = Field(default=10, ge=1, le=1000)
    description: str | None = None
    owner: str | None = None
    intended_use: str | None = None

    @field_validator("gates")
    @classmethod
    def _gates(cls, value: dict[str, Any]) -> dict[str, Any]:
        for metric, rule in value.items():
            if metric == "beat_production_by":
                if isinstance(rule, bool) or not isinstance(rule, int | float):
                    raise ValueError(
                        "'beat_production_by' is a number (the margin over production); "
                        f"got {rule!r}"
                    )
                continue
            if not isinstance(rule, str) or not _GATE.match(rule):
                raise ValueError(
                    f"the gate on '{metric}' must read like \">= 0.70\" (one of >=, >, <=, < and a "
                    f"number); got {rule!r}"
                )
        return value

    @property
    def metric_gates(self) -> list[Gate]:
        out = []
        for metric, rule in self.gates.items():
            if metric == "beat_production_by":
                continue
            match = _GATE.match(rule)
            assert match is not None
            out.append(Gate(metric=metric, op=match.group(1), threshold=float(match.group(2))))
        return out

    @model_validator(mode="after")
    def _label(self) -> ModelConfig:
        if self.label is None:
            raise ValueError(
                f"a {self.task} model needs 'label: {{dataset: ...}}' (the rows it learns from)"
            )
        if self.task not in ("clustering", "recommendation") and self.label.column is None:
            raise ValueError(
                f"a {self.task} model needs 'label.column' (what it learns to predict)"
            )
        if self.task == "recommendation" and not (self.user and self.item):
            raise ValueError(
                "a recommendation model needs 'user' and 'item': the columns of its "
                "interactions dataset that name who and what"
            )
        for section in ("user_features", "item_features"):
            columns = getattr(self, section)
            if columns and self.task != "recommendation":
                raise ValueError(
                    f"'{section}' describes the users or items of a recommendation model; "
                    f"a {self.task} model takes its inputs from 'features'"
                )
            keys = (self.user, self.item)
            bad = sorted({c for c in columns if columns.count(c) > 1 or c in keys})
            if bad:
                raise ValueError(
                    f"'{section}' lists {', '.join(map(repr, bad))} twice or as the user/item "
                    "column itself; list each side column once, apart from 'user' and 'item'"
                )
        both = sorted(set(self.user_features) & set(self.item_features))
        if both:
            raise ValueError(
                f"{', '.join(map(repr, both))} is in both 'user_features' and 'item_features': "
                "a side column describes either the users or the items"
            )
        for section in ("fairness", "business"):
            if getattr(self, section) is not None and self.task != "binary_classification":
                raise ValueError(
                    f"'{section}' judges yes/no decisions: it applies to binary_classification "
                    f"models, not to {self.task}"
                )
        if self.task == "ranking" and not self.group:
            raise ValueError(
                "a ranking model needs 'group': the column whose rows are ranked together "
                "(a query, a user)"
            )
        return self


class RunSettings(_Strict):
    workers: int = Field(default=2, ge=1, le=64)


AliasName = Literal["staging", "production", "challenger"]


class SplitTraffic(_Strict):
    """A share of the requests answered by another alias (a challenger)."""

    alias: AliasName = "challenger"
    share: float = Field(gt=0.0, lt=1.0)
    by: str | None = None  # an entity key; None: the request id


class LogSettings(_Strict):
    """The prediction log's batching: rows reach disk within either flush bound, and the
    ledger (as one partition per model version) within either publish bound."""

    flush_rows: int = Field(default=5000, ge=1, le=1_000_000)
    flush_seconds: float = Field(default=1.0, gt=0.0, le=3600.0)
    publish_rows: int = Field(default=1_000_000, ge=1, le=100_000_000)
    publish_seconds: float = Field(default=60.0, gt=0.0, le=86_400.0)


class EnvironmentConfig(_Strict):
    """What one environment (staging, production) serves, and how."""

    serve: dict[str, AliasName] = Field(min_length=1)
    shadow: dict[str, AliasName] = {}
    split: dict[str, SplitTraffic] = {}
    on_missing: dict[str, Literal["predict", "reject"]] = {}
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    token_env: str | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_rows: int = Field(default=10_000, ge=1)
    reload_seconds: float = Field(default=2.0, gt=0.0)
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _routes(self) -> EnvironmentConfig:
        for section in ("shadow", "split", "on_missing"):
            for model in getattr(self, section):
                if model not in self.serve:
                    raise ValueError(
                        f"'{section}' names the model '{model}', which this environment does "
                        f"not serve; add it to 'serve' (serves: {', '.join(self.serve)})"
                    )
        both = sorted(set(self.shadow) & set(self.split))
        if both:
            raise ValueError(
                f"{', '.join(both)} has both a shadow and a traffic split; a challenger either "
                "answers a share of the requests (split) or only scores them (shadow)"
            )
        for model, alias in {**self.shadow, **{m: s.alias for m, s in self.split.items()}}.items():
            if alias == self.serve[model]:
                raise ValueError(
                    f"the challenger of '{model}' is the alias '{alias}', which already answers; "
                    "name another alias (usually challenger)"
                )
        return self


class ProjectConfig(_Strict):
    """The whole of boite.yaml."""

    name: str
    description: str | None = None
    now: datetime | None = None
    stores: Stores = Stores()
    sources: dict[str, SourceConfig] = {}
    transforms: dict[str, TransformConfig] = {}
    feature_views: dict[str, FeatureViewConfig] = {}
    models: dict[str, ModelConfig] = {}
    environments: dict[str, EnvironmentConfig] = {}
    run: RunSettings = RunSettings()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the project name must not be empty")
        return value

    @field_validator("sources", "transforms", "feature_views", "models")
    @classmethod
    def _table_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"table name {name!r} is not allowed: use {NAME_RULE}")
        return value

    @field_validator("environments")
    @classmethod
    def _environment_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"environment name {name!r} is not allowed: use {NAME_RULE}")
        return value

    @model_validator(mode="after")
    def _served_models(self) -> ProjectConfig:
        for env_name, env in self.environments.items():
            for model in env.serve:
                if model not in self.models:
                    guess = did_you_mean(model, list(self.models))
                    raise ValueError(
                        f"environment '{env_name}' serves the model '{model}', which is not "
                        "declared under 'models'"
                        + (f"; did you mean '{guess}'?" if guess else "")
                        + (f" (models: {', '.join(self.models)})" if self.models else "")
                    )
        return self

    @model_validator(mode="after")
    def _disjoint(self) -> ProjectConfig:
        both = sorted({s.lower() for s in self.sources} & {t.lower() for t in self.transforms})
        if both:
            raise ValueError(
                f"{', '.join(both)} is declared both as a source and as a transform; "
                "a table has one producer, so rename one of them"
            )
        return self


# --- loading -----------------------------------------------------------------


def load_config(path: Path) -> ProjectConfig:
    """Read and validate ``boite.yaml`` at ``path``."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("the file does not exist", file=file) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the file is not UTF-8 text ({exc.reason})", file=file) from None
    return parse_config(text, file=file)


def parse_config(text: str, *, file: str = CONFIG_FILE) -> ProjectConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        col = f", column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(
            f"this is not valid YAML: {problem}{col}",
            file=file,
            line=line,
            hint="Check the indentation and the quoting around that line.",
        ) from None
    if data is None:
        raise ConfigError(
            "the file is empty", file=file, hint="It needs at least `name: my-product`."
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of keys (name, sources, transforms, ...); "
            f"found {type(data).__name__}",
            file=file,
            line=1,
        )
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, node, file) from None


def _config_error(exc: ValidationError, node: yaml.Node | None, file: str) -> ConfigError:
    # An unknown key usually explains the "missing" error next to it (a typo), so
    # it is the one to show.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    yaml_path = _yaml_path(loc, node)
    key = _dotted(yaml_path)
    line = _line_of(yaml_path, node)
    kind = first["type"]
    found = first.get("input")
    more = f" ({len(errors) - 1} more problem(s) after this one)" if len(errors) > 1 else ""
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        bad = str(loc[-1])
        guess = did_you_mean(bad, allowed)
        hint = (f"Did you mean '{guess}'? " if guess else "") + (
            "Allowed keys here: " + ", ".join(allowed) + "." if allowed else ""
        )
        return ConfigError(f"unknown key '{bad}'{more}", file=file, key=key, line=line, hint=hint)
    if kind == "missing":
        return ConfigError(
            f"the key '{loc[-1]}' is required here but missing{more}",
            file=file,
            key=_dotted(yaml_path[:-1]) or None,
            line=_line_of(yaml_path[:-1], node),
        )
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    shown = repr(found) if not isinstance(found, dict) else "a mapping"
    if kind not in ("value_error", "assertion_error"):
        message = f"{message}; found {shown}"
    return ConfigError(message + more, file=file, key=key or None, line=line)


def _yaml_path(loc: tuple[Any, ...], node: yaml.Node | None) -> list[Any]:
    # Check kinds are both the YAML key and the union tag, so pydantic's location
    # is already the key path in the file.
    del node
    return list(loc)


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == str(part):
                return value_node
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        return node.value[part] if 0 <= part < len(node.value) else None
    return None


def _line_of(path: list[Any], node: yaml.Node | None) -> int | None:
    current = node
    line = None if node is None else node.start_mark.line + 1
    for part in path:
        if isinstance(current, yaml.MappingNode):
            found = None
            for key_node, value_node in current.value:
                if key_node.value == str(part):
                    found = (key_node, value_node)
            if found is None:
                return line
            line = found[0].start_mark.line + 1
            current = found[1]
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(current.value):
                return line
            current = current.value[part]
            line = current.start_mark.line + 1
        else:
            return line
    return line


def _dotted(path: list[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys a mapping at ``loc`` accepts, found by walking the schema."""
    current: Any = ProjectConfig
    for part in loc:
        current = _step_type(current, part)
        if current is None:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [name for name in current.model_fields if name != "kind"]
    return []


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return tp


def _step_type(tp: Any, part: Any) -> Any:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return None if field is None else field.annotation
    if origin is dict:
        return typing.get_args(tp)[1]
    if origin is list:
        return typing.get_args(tp)[0]
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            arg = _unwrap(arg)
            kind = getattr(arg, "model_fields", {}).get("kind")
            if kind is not None and typing.get_args(kind.annotation) == (part,):
                return arg
    return None
