"""The `boite` command line: a thin layer over the Project API.

Start-up stays fast because nothing heavy (DuckDB, pandas, SQLAlchemy) is
imported until a command needs it. A user error prints one paragraph and exits
2; a fault of boite exits 1 (set BOITE_DEBUG=1 for its traceback).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from boite.pipeline.project import Project

app = typer.Typer(
    name="boite",
    help="boite: from raw data to predictions in production, with every transformation on record.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
show_app = typer.Typer(help="Show one dataset or run in detail.", no_args_is_help=True)
app.add_typer(show_app, name="show")


def _features_app() -> typer.Typer:
    from boite.cli.features import features_app

    return features_app


app.add_typer(_features_app(), name="features")


def _models() -> None:
    from boite.cli.models import register

    register(app)


_models()


def _serving() -> None:
    from boite.cli.serving import register

    register(app)


_serving()


def _scoring() -> None:
    from boite.cli.scoring import register

    register(app)


_scoring()

F = TypeVar("F", bound=Callable[..., Any])

ProjectOption = Annotated[
    Path,
    typer.Option("--project", "-p", help="The project folder (or any folder inside it)."),
]


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Rich assumes 80 columns when piped; tables of paths and reasons need more.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, highlight=False, width=width)


def handles_errors(func: F) -> F:
    """Turn boite's errors into a message and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from boite.errors import BoiteError

        try:
            return func(*args, **kwargs)
        except BoiteError as exc:
            _print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("BOITE_DEBUG"):
                raise
            err = _console(stderr=True)
            err.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc}", markup=True)
            err.print("This is a fault of boite; rerun with BOITE_DEBUG=1 to see the traceback.")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _print_error(exc: Exception) -> None:
    from boite.errors import BoiteError, UserError

    err = _console(stderr=True)
    label = "error" if isinstance(exc, UserError) else "internal error"
    message = exc.message if isinstance(exc, BoiteError) else str(exc)
    err.print(f"[bold red]{label}:[/bold red] ", end="", markup=True)
    err.print(message, markup=False)
    hint = getattr(exc, "hint", None)
    if hint:
        err.print(hint, markup=False)


def _open(project: Path) -> Project:
    from boite.pipeline.project import open_project

    return open_project(project)


# --- init and quickstart -----------------------------------------------------


@app.command()
@handles_errors
def init(
    name: Annotated[str, typer.Argument(help="Folder to create; its name names the project.")],
    force: Annotated[bool, typer.Option(help="Write into a folder that is not empty.")] = False,
) -> None:
    """Create a new project: boite.yaml, transforms/, data/ and a .gitignore."""
    from boite.cli.scaffold import scaffold

    folder = scaffold(Path(name), force=force)
    out = _console()
    out.print(f"Created the project [bold]{folder.name}[/bold] in {folder}", markup=True)
    out.print("Next: declare a source in boite.yaml, add transforms/NAME.sql, then `boite run`.")


@app.command()
@handles_errors
def quickstart(
    folder: Annotated[Path, typer.Argument(help="Where to create the example project.")] = Path(
        "boite-quickstart"
    ),
    force: Annotated[
        bool, typer.Option(help="Replace the folder if it holds something else.")
    ] = False,
) -> None:
    """Build the retail example from the shipped CDNOW data, and say what to try next."""
    from boite.cli.quickstart import run_quickstart

    code = run_quickstart(folder, force=force, console=_console())
    if code:
        raise typer.Exit(code)


# --- run and status ----------------------------------------------------------


@app.command()
@handles_errors
def run(
    steps: Annotated[
        list[str] | None,
        typer.Argument(help="Steps to bring up to date (with what they need); all if none."),
    ] = None,
    project: ProjectOption = Path("."),
    wait: Annotated[
        bool,
        typer.Option(help="If another run holds the project, wait for it instead of refusing."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Steps to run at once (boite.yaml: run.workers)."),
    ] = None,
) -> None:
    """Run every stale step; a second run with nothing changed does nothing and says so."""
    from boite.cli.render import run_with_progress

    proj = _open(project)
    report = run_with_progress(proj, steps or None, wait=wait, workers=workers, console=_console())
    if not report.ok:
        codes = [o.error.exit_code for o in report.failed if o.error is not None]
        raise typer.Exit(max(codes) if codes else 2)


@app.command()
@handles_errors
def status(project: ProjectOption = Path(".")) -> None:
    """What is up to date, stale or failed, and why."""
    from boite.cli.render import print_status

    print_status(_open(project), _console())


@app.command()
@handles_errors
def runs(
    project: ProjectOption = Path("."),
    step: Annotated[str | None, typer.Option(help="Only the runs of this step.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
) -> None:
    """The latest runs on record, with their resources."""
    from boite.cli.render import print_runs

    print_runs(_open(project), _console(), step=step, limit=limit)


@show_app.command("dataset")
@handles_errors
def show_dataset(
    name: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
    project: ProjectOption = Path("."),
) -> None:
    """Schema, rows, statistics, version, producing run and inputs of a dataset."""
    from boite.cli.render import print_dataset

    print_dataset(_open(project), name, _console())


@show_app.command("run")
@handles_errors
def show_run(
    run_id: Annotated[str, typer.Argument(help="A run id, or its first characters.")],
    project: ProjectOption = Path("."),
) -> None:
    """Parameters, resources, inputs, outputs and error of one run."""
    from boite.cli.render import print_run

    print_run(_open(project), run_id, _console())


class LineageFormat(StrEnum):
    text = "text"
    json = "json"
    dot = "dot"


@app.command()
@handles_errors
def lineage(
    name: Annotated[str, typer.Argument(help="A dataset: NAME or NAME@VERSION.")],
    upstream: Annotated[
        bool, typer.Option("--upstream/--downstream", help="Where it came from, or what it fed.")
    ] = True,
    format: Annotated[LineageFormat, typer.Option("--format", "-f")] = LineageFormat.text,
    project: ProjectOption = Path("."),
) -> None:
    """The chain of runs and versions behind a dataset (back to the raw files), or built from it."""
    from boite.cli.render import print_lineage

    print_lineage(
        _open(project),
        name,
        direction="upstream" if upstream else "downstream",
        fmt=format.value,
        console=_console(),
    )


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True)
    ] = False,
) -> None:
    if version:
        from boite import __version__

        typer.echo(f"boite {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def main() -> None:
    app(prog_name="boite")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
