"""The public API stays small: a change here is a decision, not an accident."""

from __future__ import annotations

import subprocess
import sys

import boite

EXPECTED = {
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
}


def test_public_names() -> None:
    assert set(boite.__all__) == EXPECTED


def test_every_public_name_resolves() -> None:
    for name in boite.__all__:
        assert getattr(boite, name) is not None


def test_errors_form_one_tree() -> None:
    for name in boite.__all__:
        value = getattr(boite, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, boite.BoiteError)
    assert issubclass(boite.ConfigError, boite.UserError)
    assert boite.UserError.exit_code == 2
    assert boite.InternalError.exit_code == 1


def test_import_boite_is_light() -> None:
    # `import boite` must not drag in the engine, the ledger or pandas: the CLI
    # starts on it.
    code = (
        "import sys, boite, boite.cli.main; "
        "heavy = [m for m in ('duckdb', 'pandas', 'sqlalchemy', 'pyarrow', 'sqlglot') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_unknown_attribute() -> None:
    try:
        boite.nothing_here  # noqa: B018
    except AttributeError as exc:
        assert "nothing_here" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
