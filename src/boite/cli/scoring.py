"""`boite predict` (batch scoring), `boite feedback` (labels joined to the log) and
`boite log compact` (its small partitions merged)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ProjectOption = Annotated[
    Path,
    typer.Option("--project", "-p", help="The project folder (or any folder inside it)."),
]


def predict_command(
    model: Annotated[str, typer.Argument(help="The model to score with.")],
    input: Annotated[
        str,
        typer.Option(help="A Parquet, CSV or JSON lines file of entities, or a dataset name."),
    ],
    output: Annotated[
        Path | None, typer.Option(help="Where to write the predictions (.parquet or .csv).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="One time for every row's features.")
    ] = None,
    timestamp: Annotated[
        str | None, typer.Option(help="The input column holding each row's time.")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Score with model@VERSION.")] = None,
    alias: Annotated[
        str | None, typer.Option(help="Score with the version an alias names (production).")
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows scored at once: memory is bounded by this.")
    ] = 100_000,
    project: ProjectOption = Path("."),
) -> None:
    """Score a file or dataset of entities with point-in-time features, on record."""
    from boite.cli.main import handles_errors

    handles_errors(_predict)(
        model, input, output, as_of, timestamp, version, alias, chunk_rows, project
    )


def _predict(
    model: str,
    source: str,
    output: Path | None,
    as_of: str | None,
    timestamp: str | None,
    version: int | None,
    alias: str | None,
    chunk_rows: int,
    project: Path,
) -> None:
    from boite.cli.main import _console, _open
    from boite.errors import UserError
    from boite.pipeline.scoring import score_batch

    if version is not None and alias is not None:
        raise UserError("give either --version or --alias, not both")
    proj = _open(project)
    result = score_batch(
        proj,
        model,
        source,
        output=output,
        as_of=as_of,
        timestamp=timestamp,
        version=version,
        alias=alias,
        chunk_rows=chunk_rows,
    )
    out = _console()
    where = f" to {result.output}" if result.output else ""
    out.print(
        f"scored [bold]{result.rows:,}[/bold] rows with {result.model_version}{where} "
        f"in {result.seconds:.1f}s ({result.rows_per_second:,.0f} rows/s, "
        f"{result.chunks} chunk{'s' if result.chunks != 1 else ''})",
        markup=True,
    )
    out.print(
        f"predictions {result.predictions.kind} {result.predictions.ref}, "
        f"run {result.run_id[:12]}"
        + ("" if result.log is None else f", prediction log {result.log.ref}"),
        markup=False,
    )
    if result.rows_without_features:
        out.print(
            f"warning: {result.rows_without_features:,} row(s) had no feature values at "
            "their time (the entity was unknown then, or older than the view's ttl)",
            markup=False,
        )


def feedback_command(
    model: Annotated[str, typer.Argument(help="The model whose predictions the labels are for.")],
    labels: Annotated[Path, typer.Option(help="A CSV, Parquet or JSON lines file of labels.")],
    label_column: Annotated[
        str | None, typer.Option(help="The column with the truth (default: the model's label).")
    ] = None,
    timestamp: Annotated[
        str | None, typer.Option(help="The time column of labels given by entity.")
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Join late labels to the prediction log (by request id, or entity and time)."""
    from boite.cli.main import handles_errors

    handles_errors(_feedback)(model, labels, label_column, timestamp, project)


def _feedback(
    model: str, labels: Path, label_column: str | None, timestamp: str | None, project: Path
) -> None:
    from rich.table import Table

    from boite.cli.main import _console, _open
    from boite.pipeline.scoring import record_feedback

    summary = record_feedback(
        _open(project), model, labels, label_column=label_column, timestamp=timestamp
    )
    out = _console()
    out.print(
        f"{summary.rows:,} label rows: {summary.matched_by_id:,} matched by request id, "
        f"{summary.matched_by_entity:,} by entity and time, {summary.unmatched:,} unmatched"
        + (f", {summary.duplicates:,} duplicates dropped" if summary.duplicates else "")
        + f"; stored as feedback {summary.feedback.ref}",
        markup=False,
    )
    if summary.live:
        names = sorted({k for m in summary.live for k in m.metrics if k != "rows"})
        shown = [n for n in ("roc_auc", "accuracy", "log_loss", "rmse", "mae") if n in names]
        table = Table(title="On the matched predictions")
        for column in ("version", "role", "rows", *shown):
            table.add_column(column, justify="left" if column in ("version", "role") else "right")
        for m in summary.live:
            table.add_row(
                m.version,
                m.role,
                f"{m.rows:,}",
                *[f"{m.metrics[n]:.4f}" if n in m.metrics else "-" for n in shown],
            )
        out.print(table)


log_app = typer.Typer(help="The prediction log: what every served or scored row was.")


@log_app.command("compact")
def compact_command(
    model: Annotated[str, typer.Argument(help="The model whose log to compact.")],
    older_than: Annotated[
        str,
        typer.Option(
            help="Merge the partitions published longer ago than this (90s, 30m, 12h, 7d)."
        ),
    ] = "1d",
    project: ProjectOption = Path("."),
) -> None:
    """Merge a model's small log partitions into one per model version and day."""
    from boite.cli.main import handles_errors

    handles_errors(_compact)(model, older_than, project)


def _compact(model: str, older_than: str, project: Path) -> None:
    from boite.cli.main import _console, _open
    from boite.cli.render import _fmt_bytes
    from boite.core.durations import parse_duration
    from boite.errors import UserError
    from boite.pipeline.compaction import compact_log

    try:
        bound = parse_duration(older_than)
    except ValueError as exc:
        raise UserError(f"--older-than: {exc}", hint="e.g. --older-than 1d") from None
    result = compact_log(_open(project), model, older_than=bound)
    out = _console()
    if not result.merged:
        out.print(
            f"Nothing to compact: no model version of {model} has two or more partitions "
            f"published on one day more than {older_than} ago.",
            markup=False,
        )
        return
    out.print(
        f"Merged {result.partitions_in:,} partitions ({result.rows:,} rows, "
        f"{_fmt_bytes(result.bytes_in)}) into {len(result.merged):,} "
        f"({_fmt_bytes(result.bytes_out)}); run {result.run_id}.",
        markup=False,
    )
    for m in result.merged:
        out.print(
            f"  {m.model_version} {m.env or '-'} {m.day}: {m.partitions:,} partitions, "
            f"{m.rows:,} rows",
            markup=False,
        )
    for why in result.skipped:
        out.print(f"  not merged (left as it was): {why}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_command)
    app.command("feedback")(feedback_command)
    app.add_typer(log_app, name="log")
