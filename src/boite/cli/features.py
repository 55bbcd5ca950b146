"""`boite features ...`: the feature library, online lookups and materialization."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from boite.pipeline.project import Project

features_app = typer.Typer(
    help="The feature library: views, features, freshness, online values.",
    no_args_is_help=True,
)

ProjectOption = Annotated[
    Path,
    typer.Option("--project", "-p", help="The project folder (or any folder inside it)."),
]


def _fmt_age(age: timedelta | None) -> str:
    if age is None:
        return "-"
    seconds = age.total_seconds()
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _setup() -> tuple[Any, Any]:
    from boite.cli.main import _console, _open

    return _console, _open


@features_app.command("list")
def list_features(project: ProjectOption = Path(".")) -> None:
    """Every feature: its view, type, entity, owner, freshness and who uses it."""
    from boite.cli.main import handles_errors

    handles_errors(_list)(project)


def _list(project: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    console_factory, open_project = _setup()
    console = console_factory()
    proj: Project = open_project(project)
    infos = proj.features.library()
    if not infos:
        console.print(
            "No feature views yet: declare one under 'feature_views:' in boite.yaml.", markup=False
        )
        return
    table = Table(show_edge=False, pad_edge=False)
    for col in ("view", "feature", "type", "entity", "owner", "newest", "age", "fresh", "used by"):
        table.add_column(col)
    for f in infos:
        fresh = "-" if f.fresh is None else ("[green]yes[/green]" if f.fresh else "[red]no[/red]")
        table.add_row(
            escape(f.view),
            escape(f.feature),
            f.type,
            escape(", ".join(f.entities)),
            escape(f.owner or "-"),
            "-" if f.newest is None else str(f.newest)[:19],
            _fmt_age(f.age),
            fresh,
            escape(", ".join(f.used_by) or "-"),
        )
    console.print(table)


@features_app.command("show")
def show(
    view: Annotated[str, typer.Argument(help="A feature view.")],
    project: ProjectOption = Path("."),
) -> None:
    """A view in detail: its dataset and versions, features with statistics, online state."""
    from boite.cli.main import handles_errors

    handles_errors(_show)(view, project)


def _show(view_name: str, project: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    from boite.core.durations import format_duration
    from boite.features.online import from_micros

    console_factory, open_project = _setup()
    console: Console = console_factory()
    proj: Project = open_project(project)
    fs = proj.features
    view = fs.view(view_name)
    record = proj.ledger.artifact("dataset", view.source.lower())
    newest = fs.newest_event(view, record)
    now = proj.clock.now()
    console.print(f"[bold]feature view {escape(view.name)}[/bold]", markup=True)
    rows = [
        ("description", view.description or "-"),
        ("owner", view.owner or "-"),
        ("entity", ", ".join(view.entities)),
        (
            "timestamp",
            view.timestamp
            + (f" (created: {view.created_timestamp})" if view.created_timestamp else ""),
        ),
        ("ttl", format_duration(view.ttl) if view.ttl else "none"),
        ("dataset", f"{record.ref} ({record.rows:,} rows)"),
        (
            "versions",
            ", ".join(f"v{v.version}" for v in proj.ledger.versions("dataset", record.name)),
        ),
        ("pushed", f"{len(proj.ledger.versions('push', view.name))} batch(es)"),
        ("newest", "-" if newest is None else str(newest)),
    ]
    if newest is not None:
        moment = newest if newest.tzinfo else newest.replace(tzinfo=now.tzinfo)
        age = now - moment
        sla = ""
        if view.freshness is not None:
            ok = age <= view.freshness
            sla = f" (SLA {format_duration(view.freshness)}: {'met' if ok else 'MISSED'})"
        rows.append(("age", f"{_fmt_age(age)} as of {now:%Y-%m-%d %H:%M} UTC{sla}"))
    if view.tags:
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in view.tags.items())))
    state = fs.online.state(view.name) if view.online else None
    if not view.online:
        rows.append(("online", "no (offline only)"))
    elif state is None:
        rows.append(("online", "not materialized yet: run `boite run`"))
    else:
        mark = "-" if state.watermark_us is None else str(from_micros(state.watermark_us))[:19]
        rows.append(("online", f"{state.rows:,} entities, newest event {mark}"))
    for label, value in rows:
        console.print(f"  {label:<12} {value}", markup=False)
    stats = record.stats or {}
    used = {f.feature: f.used_by for f in fs.library() if f.view == view.name}
    table = Table(show_edge=False, pad_edge=False, title="features", title_justify="left")
    for col in ("feature", "type", "nulls", "min", "max", "used by"):
        table.add_column(col)
    for feature in view.features:
        s = stats.get(feature, {})
        table.add_row(
            escape(feature),
            view.types[feature],
            f"{s.get('nulls', 0):,}",
            escape(str(s.get("min", "-"))[:20]),
            escape(str(s.get("max", "-"))[:20]),
            escape(", ".join(used.get(feature, [])) or "-"),
        )
    console.print(table)
    graph = proj.lineage(record.name)
    console.print("lineage", markup=False)
    console.file.write(graph.to_text() + "\n")


@features_app.command("get")
def get(
    view: Annotated[str, typer.Argument(help="A feature view.")],
    entity: Annotated[
        list[str],
        typer.Option(
            "--entity", "-e", help="KEY=VALUE (comma-separated for several keys); repeat for more."
        ),
    ],
    feature: Annotated[
        list[str] | None, typer.Option("--feature", "-f", help="Only these features.")
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Online values of a view for one or more entities, as of the project's clock."""
    from boite.cli.main import handles_errors

    handles_errors(_get)(view, entity, feature, project)


def _get(view_name: str, entity: list[str], feature: list[str] | None, project: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    from boite.errors import UserError

    console_factory, open_project = _setup()
    console: Console = console_factory()
    proj: Project = open_project(project)
    entities = []
    for text in entity:
        keys: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise UserError(
                    f"--entity {text!r} is not KEY=VALUE",
                    hint="For example --entity customer_id=00042 (a,b=1,2 is not allowed: "
                    "write k1=v1,k2=v2).",
                )
            keys[key.strip()] = value.strip()
        entities.append(keys)
    refs = [f"{view_name}:{f}" for f in feature] if feature else [f"{view_name}:*"]
    result = proj.online_features(refs, entities)
    table = Table(show_edge=False, pad_edge=False)
    key_columns = list(dict.fromkeys(k for e in entities for k in e))
    for col in [*key_columns, "event time", *result.columns]:
        table.add_column(col)
    times = result.event_times[view_name]
    for i, row in enumerate(result.rows):
        stamp = "missing" if times[i] is None else str(times[i])[:19]
        cells = [escape(str(entities[i].get(k, ""))) for k in key_columns]
        table.add_row(*cells, stamp, *(escape("-" if v is None else str(v)) for v in row))
    console.print(table)
    missing = result.missing[view_name]
    if missing:
        console.print(
            f"{len(missing)} of {len(entities)} entities have no value (never seen, or older "
            f"than the view's TTL as of {proj.clock.now():%Y-%m-%d %H:%M} UTC).",
            markup=False,
        )


@features_app.command("materialize")
def materialize(
    views: Annotated[
        list[str] | None, typer.Argument(help="Views; all online ones if none.")
    ] = None,
    full: Annotated[
        bool, typer.Option(help="Rebuild from all of the offline history, not just new events.")
    ] = False,
    project: ProjectOption = Path("."),
) -> None:
    """Bring the online store up to date now (`boite run` does this for you)."""
    from boite.cli.main import handles_errors

    handles_errors(_materialize)(views, full, project)


def _materialize(views: list[str] | None, full: bool, project: Path) -> None:
    console_factory, open_project = _setup()
    console: Console = console_factory()
    proj: Project = open_project(project)
    for result in proj.materialize(views, full=full):
        console.print(
            f"{result.view}: {result.rows_read:,} entities read, {result.rows_written:,} updated"
            + (" (full rebuild)" if result.full else ""),
            markup=False,
        )
