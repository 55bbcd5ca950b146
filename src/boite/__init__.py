"""boite: from raw data to predictions in production, with every transformation on record.

The public API is deliberately small::

    import boite
    project = boite.open_project("my-product")
    project.run()
    project.dataset("customer_daily").to_pandas()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from boite.errors import (
    ArtifactIntegrityError,
    BoiteError,
    CheckFailedError,
    ConfigError,
    CycleError,
    FeatureError,
    InternalError,
    LedgerError,
    MissingTableError,
    NotFoundError,
    PlanError,
    ProjectError,
    ProjectLockedError,
    RegistryError,
    RequestError,
    SourceError,
    SQLSyntaxError,
    TrainingError,
    TransformError,
    UserError,
)

if TYPE_CHECKING:
    from boite.pipeline.project import Project, open_project

__version__ = "0.1.0"

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
    "Project",
    "ProjectError",
    "ProjectLockedError",
    "RegistryError",
    "RequestError",
    "SQLSyntaxError",
    "SourceError",
    "TrainingError",
    "TransformError",
    "UserError",
    "__version__",
    "open_project",
]


def __getattr__(name: str) -> Any:
    # Project pulls in the engine and the ledger; importing it lazily keeps
    # `import boite` (and so `boite --help`) fast.
    if name in ("Project", "open_project"):
        from boite.pipeline import project

        return getattr(project, name)
    raise AttributeError(f"module 'boite' has no attribute {name!r}")
