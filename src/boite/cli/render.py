"""How the CLI shows runs, status, datasets and lineage (Rich tables and trees)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from boite.pipeline.project import Project
    from boite.pipeline.runner import RunReport, StepOutcome

_STATE_STYLE = {
    "built": "green",
    "unchanged": "cyan",
    "up to date": "dim",
    "failed": "bold red",
    "blocked": "yellow",
    "stale": "yellow",
    "never built": "yellow",
}


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _fmt_s(s: float | None) -> str:
    return "-" if s is None else (f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s")


def run_with_progress(
    project: Project,
    steps: list[str] | None,
    *,
    wait: bool,
    workers: int | None,
    console: Console,
) -> RunReport:
    plan = project.plan()
    selection = plan.select(steps)
    started = time.perf_counter()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        console=Console(stderr=True, width=console.width),
        transient=True,
    )
    running: set[str] = set()
    with progress:
        task = progress.add_task("planning", total=len(selection))

        def hook(name: str, outcome: StepOutcome | None) -> None:
            if outcome is None:
                running.add(name)
            else:
                running.discard(name)
                progress.advance(task)
            label = ", ".join(sorted(running)) or "finishing"
            progress.update(task, description=f"running {label}")

        report = project.run(steps, wait=wait, workers=workers, on_progress=hook)
    print_report(report, console, time.perf_counter() - started)
    return report


def print_report(report: RunReport, console: Console, elapsed: float) -> None:
    executed = report.executed
    if not executed and report.ok:
        console.print(
            f"Nothing to do: all {len(report.outcomes)} steps are up to date.", markup=False
        )
        return
    table = Table(title=None, show_edge=False, pad_edge=False)
    for col in ("step", "kind", "result", "version", "rows", "time"):
        table.add_column(col, justify="right" if col in ("rows", "time") else "left")
    for o in report.outcomes:
        style = _STATE_STYLE.get(o.state, "")
        table.add_row(
            escape(o.name),
            o.kind,
            f"[{style}]{o.state}[/{style}]" if style else o.state,
            "-" if o.version is None else f"v{o.version}",
            "-" if o.rows is None else f"{o.rows:,}",
            _fmt_s(o.wall_s),
        )
    console.print(table)
    counts: dict[str, int] = {}
    for o in report.outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in counts.items())
    console.print(f"{summary} in {_fmt_s(elapsed)}.", markup=False)
    for o in report.outcomes:
        if o.state == "failed" and o.error is not None:
            console.print(f"\n[bold red]{o.name} failed:[/bold red] ", end="", markup=True)
            console.print(o.error.message, markup=False)
            if o.error.hint:
                console.print(o.error.hint, markup=False)
        elif o.state == "blocked":
            console.print(f"{o.name} did not run: {o.detail}.", markup=False)


def print_status(project: Project, console: Console) -> None:
    rows = project.status()
    if not rows:
        console.print(
            "This project has no steps yet: declare sources in boite.yaml and add "
            "transforms/NAME.sql.",
            markup=False,
        )
        return
    table = Table(show_edge=False, pad_edge=False)
    for col in ("step", "kind", "state", "version", "last run", "why"):
        table.add_column(col)
    for s in rows:
        style = _STATE_STYLE.get(s.state, "")
        last = "-"
        if s.last_run is not None:
            last = f"{s.last_run.started_at:%Y-%m-%d %H:%M} {s.last_run.status}"
        table.add_row(
            escape(s.name),
            s.kind,
            f"[{style}]{s.state}[/{style}]",
            "-" if s.version is None else f"v{s.version}",
            last,
            escape(s.reason),
        )
    console.print(table)
    stale = [s for s in rows if s.state != "up to date"]
    if stale:
        console.print(f"{len(stale)} of {len(rows)} steps need `boite run`.", markup=False)
    else:
        console.print(f"All {len(rows)} steps are up to date.", markup=False)


def print_runs(project: Project, console: Console, *, step: str | None, limit: int) -> None:
    table = Table(show_edge=False, pad_edge=False)
    for col in ("run", "step", "kind", "status", "started", "wall", "cpu", "peak mem", "rows out"):
        table.add_column(col)
    for r in project.ledger.runs(step=step, limit=limit):
        table.add_row(
            r.id[:8],
            escape(r.step),
            r.kind,
            r.status,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            _fmt_s(r.wall_s),
            _fmt_s(r.cpu_s),
            _fmt_bytes(r.peak_rss_bytes),
            "-" if r.rows_out is None else f"{r.rows_out:,}",
        )
    console.print(table)


def print_dataset(project: Project, name: str, console: Console) -> None:
    ds = project.dataset(name)
    rec = ds.record
    console.print(f"[bold]dataset {ds.ref}[/bold]", markup=True)
    console.print(f"  rows      {ds.rows:,}", markup=False)
    console.print(f"  size      {_fmt_bytes(rec.bytes)}", markup=False)
    console.print(f"  sha256    {rec.content_hash}", markup=False)
    console.print(f"  uri       {rec.uri}", markup=False)
    console.print(f"  created   {rec.created_at:%Y-%m-%d %H:%M:%S} UTC", markup=False)
    context = rec.time_context or {}
    if context.get("data_from"):
        console.print(
            f"  time      {context['time_column']}: {context['data_from']} .. {context['data_to']}",
            markup=False,
        )
    versions = project.ledger.versions(ds.record.kind, ds.name)
    console.print(f"  versions  {', '.join(f'v{v.version}' for v in versions)}", markup=False)
    run = ds.run
    if run is not None:
        console.print(
            f"  made by   run {run.id[:8]} ({run.kind} '{run.step}', {_fmt_s(run.wall_s)}, "
            f"peak {_fmt_bytes(run.peak_rss_bytes)})",
            markup=False,
        )
        inputs = ds.inputs
        if inputs:
            console.print(
                "  inputs    " + ", ".join(f"{a.kind} {a.ref}" for a in inputs), markup=False
            )
    table = Table(show_edge=False, pad_edge=False, title="columns", title_justify="left")
    for col in ("column", "type", "nulls", "min", "max", "from"):
        table.add_column(col)
    lineage = ds.column_lineage
    for column, kind in ds.schema.items():
        s: dict[str, Any] = ds.stats.get(column, {})
        sources = ", ".join(f"{t}.{c}" for t, c in lineage.get(column, []))
        table.add_row(
            escape(column),
            kind,
            f"{s.get('nulls', 0):,}",
            escape(_short(s.get("min"))),
            escape(_short(s.get("max"))),
            escape(sources),
        )
    console.print(table)


def _short(value: Any) -> str:
    if value is None:
        return "-"
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 24 else text[:23] + "…"


def print_run(project: Project, run_id: str, console: Console) -> None:
    r = project.ledger.run(run_id)
    console.print(f"[bold]run {r.id}[/bold]", markup=True)
    for label, value in (
        ("step", f"{r.step} ({r.kind})"),
        ("status", r.status),
        ("started", f"{r.started_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("wall", _fmt_s(r.wall_s)),
        ("cpu", _fmt_s(r.cpu_s)),
        ("peak mem", _fmt_bytes(r.peak_rss_bytes)),
        ("in", f"{r.rows_in or 0:,} rows, {_fmt_bytes(r.bytes_in)}"),
        ("out", f"{r.rows_out or 0:,} rows, {_fmt_bytes(r.bytes_out)}"),
        ("by", f"{r.user}@{r.host} pid {r.pid}"),
        ("code", r.code_fingerprint or "-"),
        ("fingerprint", r.fingerprint or "-"),
    ):
        console.print(f"  {label:<11} {value}", markup=False)
    for title, items in (
        ("inputs", project.ledger.inputs_of(r.id)),
        ("outputs", project.ledger.outputs_of(r.id)),
    ):
        if items:
            console.print(
                f"  {title:<11} " + ", ".join(f"{a.kind} {a.ref}" for a in items), markup=False
            )
    shown = {k: v for k, v in r.params.items() if k != "fingerprint_parts"}
    if shown:
        console.print("  params", markup=False)
        for key, value in shown.items():
            console.print(f"    {key}: {json.dumps(value, default=str)[:200]}", markup=False)
    parts = r.params.get("fingerprint_parts", {})
    for name, digest in parts.get("inputs", {}).items():
        console.print(f"    input {name}: sha256 {digest[:16]}", markup=False)
    if r.error:
        console.print("  error", markup=False)
        console.print("    " + r.error.replace("\n", "\n    "), markup=False)


def print_lineage(
    project: Project, name: str, *, direction: str, fmt: str, console: Console
) -> None:
    graph = project.lineage(name, direction=direction)  # type: ignore[arg-type]
    # Machine formats go out as plain text: a console would wrap long lines.
    if fmt == "json":
        text = json.dumps(graph.to_dict(), indent=2, default=str)
    elif fmt == "dot":
        text = graph.to_dot()
    else:
        text = graph.to_text()
    console.file.write(text + "\n")
