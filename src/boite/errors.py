"""The exceptions boite raises, in one tree.

Every error a user can cause says what was wrong, where, what is allowed and
what to do next. The CLI exits 2 for a :class:`UserError` and 1 for anything
else.

    BoiteError
    ├── UserError                     the input was wrong; exit 2
    │   ├── ProjectError              no project here, or not a boite project
    │   ├── ConfigError               boite.yaml: .file, .key, .line
    │   ├── PlanError                 the steps cannot be planned
    │   │   ├── CycleError            .cycle
    │   │   └── MissingTableError     .step, .table
    │   ├── TransformError            a transform file is wrong: .file, .line, .column
    │   │   └── SQLSyntaxError
    │   ├── SourceError               raw data cannot be read: .source, .file, .line
    │   ├── CheckFailedError          a data check failed: .step, .report
    │   ├── FeatureError              a feature view, reference or frame is wrong: .view
    │   ├── TrainingError             a model cannot be trained as specified: .model
    │   ├── RegistryError             a model version or alias move is refused: .model_version
    │   ├── NotFoundError             an unknown dataset, run or version: .kind, .name
    │   ├── ProjectLockedError        another `boite run` holds the project: .holder
    │   ├── RequestError              a request to the server is wrong: .field, .status
    │   └── ArtifactIntegrityError    a stored file no longer matches its hash: .uri
    └── InternalError                 a fault of boite itself; exit 1
        └── LedgerError               the ledger cannot be read or written
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArtifactIntegrityError",
    "BoiteError",
    "CheckFailedError",
    "ConfigError",
    "CycleError",
    "FeatureError",
    "InternalError",
    "LedgerError",
    "MissingTableError",
    "NotFoundError",
    "PlanError",
    "ProjectError",
    "ProjectLockedError",
    "RegistryError",
    "RequestError",
    "SQLSyntaxError",
    "SourceError",
    "TrainingError",
    "TransformError",
    "UserError",
]


class BoiteError(Exception):
    """Base of every error boite raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n{self.hint}"
        return self.message


class UserError(BoiteError):
    """The input was wrong; the message says how to fix it."""

    exit_code = 2


class ProjectError(UserError):
    """No boite project where one was expected."""


class ConfigError(UserError):
    """``boite.yaml`` is malformed or invalid."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = file or "boite.yaml"
        if line is not None:
            where += f":{line}"
        if key:
            where += f" (at {key})"
        super().__init__(f"{where}: {message}", hint=hint)
        self.file = file
        self.key = key
        self.line = line


class PlanError(UserError):
    """The project's steps cannot be put in an order that runs."""


class CycleError(PlanError):
    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(
            "the transforms read each other in a cycle: " + " -> ".join(cycle),
            hint="A transform may only read sources and transforms that do not read it back; "
            "break the cycle by removing one of these reads.",
        )


class MissingTableError(PlanError):
    def __init__(
        self,
        step: str,
        table: str,
        *,
        file: str | None = None,
        line: int | None = None,
        known: list[str] | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.step = step
        self.table = table
        where = file or step
        if line is not None:
            where += f":{line}"
        msg = (
            f"{where}: transform '{step}' reads table '{table}', "
            "which is neither a source nor a transform of this project"
        )
        hint_parts = []
        if suggestion:
            hint_parts.append(f"Did you mean '{suggestion}'?")
        if known:
            hint_parts.append("Known tables: " + ", ".join(sorted(known)) + ".")
        hint_parts.append(
            "Declare it under 'sources:' in boite.yaml or add transforms/" + table + ".sql."
        )
        super().__init__(msg, hint=" ".join(hint_parts))


class TransformError(UserError):
    """A transform file cannot be used as written."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = file or "transform"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {message}", hint=hint)
        self.file = file
        self.line = line
        self.column = column


class SQLSyntaxError(TransformError):
    """The SQL of a transform does not parse."""


class SourceError(UserError):
    """Raw data cannot be read as declared."""

    def __init__(
        self,
        message: str,
        *,
        source: str,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"source '{source}'"
        if file:
            where += f" ({file}" + (f", line {line}" if line is not None else "") + ")"
        super().__init__(f"{where}: {message}", hint=hint)
        self.source = source
        self.file = file
        self.line = line


class CheckFailedError(UserError):
    """A data check declared in boite.yaml failed."""

    def __init__(self, step: str, report: Any, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.step = step
        self.report = report


class FeatureError(UserError):
    """A feature view, a feature reference, or a frame given to the feature store is wrong."""

    def __init__(self, message: str, *, view: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.view = view


class TrainingError(UserError):
    """A model cannot be trained as its spec says."""

    def __init__(self, message: str, *, model: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.model = model


class RegistryError(UserError):
    """A model version does not exist, or an alias move is refused (a failed gate)."""

    def __init__(
        self, message: str, *, model_version: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.model_version = model_version


class NotFoundError(UserError):
    """An unknown dataset, run, step or version was asked for."""

    def __init__(
        self, kind: str, name: str, *, suggestion: str | None = None, known: list[str] | None = None
    ) -> None:
        self.kind = kind
        self.name = name
        hint = None
        if suggestion:
            hint = f"Did you mean '{suggestion}'?"
        elif known:
            hint = f"Known {kind}s: " + ", ".join(sorted(known)[:20]) + "."
        elif known is not None:
            hint = f"There is no {kind} yet; run `boite run` first."
        super().__init__(f"no {kind} named '{name}'", hint=hint)


class ProjectLockedError(UserError):
    """Another process is running steps of this project."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        super().__init__(
            f"another `boite run` is running on this project ({holder})",
            hint="Wait for it to finish, or run again with --wait to queue behind it.",
        )


class RequestError(UserError):
    """A request to the model server is wrong; it is answered with ``status`` (4xx).

    ``field`` names the part of the request at fault, as a JSON path
    (``entities[3].customer_id``, ``inputs[0].shape``).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status: int = 400,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.field = field
        self.status = status


class ArtifactIntegrityError(UserError):
    """A stored artifact file no longer matches the hash it was written with."""

    def __init__(self, uri: str, expected: str, found: str, *, what: str | None = None) -> None:
        self.uri = uri
        self.expected = expected
        self.found = found
        subject = f"{what} " if what else ""
        super().__init__(
            f"the artifact file of {subject}at {uri} was changed after it was written "
            f"(expected sha256 {expected[:16]}…, found {found[:16]}…)",
            hint="Delete that file and run `boite run`: the step that produced it "
            "will write it again.",
        )


class InternalError(BoiteError):
    """A fault of boite itself; please report it."""


class LedgerError(InternalError):
    """The ledger cannot be read or written."""
