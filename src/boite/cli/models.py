"""`boite train` and `boite models ...`: training, the registry, aliases and their history."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from boite.pipeline.project import Project
    from boite.registry.registry import AliasEvent, ModelVersion

models_app = typer.Typer(
    help="The model registry: versions, metrics, aliases and their history.",
    no_args_is_help=True,
)

ProjectOption = Annotated[
    Path,
    typer.Option("--project", "-p", help="The project folder (or any folder inside it)."),
]


def _ctx(project: Path) -> tuple[Console, Project]:
    from boite.cli.main import _console, _open

    return _console(), _open(project)


HEADLINE = (
    "roc_auc",
    "pr_auc",
    "accuracy",
    "macro_f1",
    "rmse",
    "r2",
    "ndcg",
    "silhouette",
    "business_value",
    "precision_at_10",
    "ndcg_at_10",
    "precision_lift_over_popularity",
)


def _verdict(event: AliasEvent) -> str:
    """'pass', 'FAIL' (with 're-judged vs NAME@N' when production had moved), or ''."""
    details = event.details or {}
    gates = details.get("gates")
    if not gates:
        return ""
    verdict = "pass" if gates.get("passed") else "FAIL"
    against = details.get("rejudged_against")
    return f"{verdict}, re-judged vs {against}" if against else verdict


def _metric_line(version: ModelVersion, keys: list[str] | None = None) -> str:
    metrics = version.metrics
    keys = keys or [k for k in HEADLINE if k in metrics]
    return ", ".join(f"{k}={metrics[k]:.4g}" for k in keys if k in metrics)


def train_command(
    name: Annotated[str, typer.Argument(help="A model of boite.yaml (models:).")],
    trials: Annotated[
        int | None, typer.Option(min=0, help="Search trials (boite.yaml: search.trials; 0: none).")
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Train a model (with its search), evaluate it, register NAME@N and judge its gates."""
    from boite.cli.main import handles_errors

    handles_errors(_train)(name, trials, project)


def _train(name: str, trials: int | None, project: Path) -> None:
    from rich.markup import escape

    console, proj = _ctx(project)
    with console.status(f"training {name}…"):
        result = proj.train(name, trials=trials)
    v = result.version
    state = "registered" if result.new else "identical to an existing version:"
    console.print(f"[bold]{escape(v.ref)}[/bold] {state} {_metric_line(v)}", markup=True)
    search = v.meta.get("search")
    if search:
        console.print(
            f"  search: {search['complete']}/{search['trials']} trials complete, best "
            f"{search['metric']} {search['best']:.4f} on validation rows",
            markup=False,
        )
    business = v.meta.get("business")
    if business:
        console.print(
            f"  business value on the test rows: {business['best_value']:,.0f} at threshold "
            f"{business['best_threshold']:.3f} (at 0.5: {business['value_at_0_5']:,.0f})",
            markup=False,
        )
    for gate in result.gates.results:
        mark = "[green]pass[/green]" if gate.passed else "[red]FAIL[/red]"
        console.print(f"  gate {mark} {escape(gate.gate)}: {escape(gate.message)}", markup=True)
    verdict = (
        "may be promoted to production"
        if result.gates.passed
        else "failed its gates: it cannot be promoted to production without --force"
    )
    console.print(f"{v.ref} {verdict}.", markup=False)


@models_app.command("list")
def list_models(project: ProjectOption = Path(".")) -> None:
    """Every model with its versions, aliases and headline metrics."""
    from boite.cli.main import handles_errors

    handles_errors(_list)(project)


def _list(project: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    console, proj = _ctx(project)
    registry = proj.models.registry
    aliases = registry.aliases()
    table = Table(show_edge=False, pad_edge=False)
    for col in ("model", "version", "aliases", "created", "gates", "metrics"):
        table.add_column(col)
    names = sorted(set(registry.models()) | set(proj.config.models))
    if not names:
        console.print("No models yet: declare one under 'models:' in boite.yaml.", markup=False)
        return
    for name in names:
        versions = registry.versions(name)
        if not versions:
            table.add_row(escape(name), "-", "-", "-", "-", "never trained")
            continue
        by_version: dict[int, list[str]] = {}
        for alias, number in aliases.get(name, {}).items():
            by_version.setdefault(number, []).append(alias)
        for v in versions:
            gates = v.gates.get("passed")
            table.add_row(
                escape(name),
                f"@{v.version}",
                ", ".join(sorted(by_version.get(v.version, []))) or "-",
                f"{v.record.created_at:%Y-%m-%d %H:%M}",
                "-" if gates is None else ("pass" if gates else "fail"),
                escape(_metric_line(v)),
            )
    console.print(table)


@models_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME@N (or NAME for the newest).")],
    project: ProjectOption = Path("."),
) -> None:
    """A version in detail: data, parameters, metrics, slices, business value, gates."""
    from boite.cli.main import handles_errors

    handles_errors(_show)(ref, project)


def _show(ref: str, project: Path) -> None:
    from boite.registry.card import model_card_markdown

    console, proj = _ctx(project)
    version = proj.model(ref)
    text = model_card_markdown(version, proj.models.registry, proj.ledger)
    # the card shows the verdict stored at training; promotions after production moved
    # judged the version again, and those verdicts live on the alias moves
    lines = [
        line
        for e in proj.models.registry.history(version.name)
        if e.version == version.version
        for line in _rejudged_lines(e)
    ]
    if lines:
        text += "\n## Gates judged again at promotion\n\n" + "\n".join(lines) + "\n"
    console.file.write(text + "\n")


def _rejudged_lines(event: AliasEvent) -> list[str]:
    """The verdict an alias move judged afresh (production had moved), in words; [] if none."""
    details = event.details or {}
    if "rejudged_against" not in details:
        return []
    gates = details.get("gates") or {}
    passed = bool(gates.get("passed"))
    then = details.get("stale_baseline") or "no production model"
    lines = [
        f"- {event.at:%Y-%m-%d %H:%M:%S} {event.model}@{event.version} -> {event.alias}: "
        f"judged against production {details['rejudged_against']} (when trained: {then}), "
        + ("passed" if passed else "FAILED")
        + (", promoted by force" if event.forced else "")
    ]
    lines += [
        f"  - {'pass' if r['passed'] else 'FAIL'} `{r['gate']}`: {r['message']}"
        for r in gates.get("results", [])
        if r["gate"].startswith("beat production")
    ]
    return lines


@models_app.command("card")
def card(
    ref: Annotated[str, typer.Argument(help="NAME@N (or NAME for the newest).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (.md or .html).")
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """The model card of a version, as Markdown (or HTML with -o card.html)."""
    from boite.cli.main import handles_errors

    handles_errors(_card)(ref, output, project)


def _card(ref: str, output: Path | None, project: Path) -> None:
    from boite.registry.card import model_card_html, model_card_markdown

    console, proj = _ctx(project)
    version = proj.model(ref)
    registry, ledger = proj.models.registry, proj.ledger
    if output is not None and output.suffix.lower() in (".html", ".htm"):
        output.write_text(model_card_html(version, registry, ledger))
        console.print(f"wrote {output}", markup=False)
        return
    text = model_card_markdown(version, registry, ledger)
    if output is not None:
        output.write_text(text)
        console.print(f"wrote {output}", markup=False)
    else:
        console.file.write(text + "\n")


@models_app.command("compare")
def compare(
    refs: Annotated[list[str], typer.Argument(help="Two or more NAME@N (with --live: NAME).")],
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Compare the versions on live traffic: the prediction log and its labels.",
        ),
    ] = False,
    project: ProjectOption = Path("."),
) -> None:
    """Versions side by side: metrics, parameters, data and gates (or live traffic)."""
    from boite.cli.main import handles_errors

    handles_errors(_compare_live if live else _compare)(refs, project)


def _compare_live(refs: list[str], project: Path) -> None:
    import math

    from rich.table import Table

    from boite.errors import UserError
    from boite.pipeline.live import live_comparison, unpublished
    from boite.registry.registry import parse_ref

    names = {parse_ref(r)[0] for r in refs}
    if len(names) != 1:
        raise UserError(
            "--live compares the versions of one model on its traffic; name one model",
            hint="e.g. boite models compare repurchase --live",
        )
    console, proj = _ctx(project)
    (name,) = names
    frame = live_comparison(proj, name)
    wanted = {parse_ref(r)[1] for r in refs} - {None}
    if wanted:
        frame = frame[frame["version"].isin(wanted)]
    table = Table(show_edge=False, pad_edge=False, title=f"{name} on live traffic")
    table.add_column("")
    for _, row in frame.iterrows():
        table.add_column(f"{name}@{row['version']} {row['role']}")
    skip = {"version", "role"}

    def cell(value: object) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    for column in frame.columns:
        if column not in skip:
            table.add_row(column, *(cell(v) for v in frame[column]))
    console.print(table)
    pending = unpublished(proj, name)
    if pending:
        console.print(
            f"[dim]{pending} more row(s) are held by a running server and not counted yet; "
            "it publishes them every log.publish_seconds.[/dim]"
        )


def _compare(refs: list[str], project: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    from boite.errors import UserError

    if len(refs) < 2:
        raise UserError("compare needs two or more versions", hint="e.g. repurchase@1 repurchase@2")
    console, proj = _ctx(project)
    versions = [proj.model(r) for r in refs]
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("")
    for v in versions:
        table.add_column(v.ref)
    keys = sorted({k for v in versions for k in v.metrics})
    for key in keys:
        values = [v.metrics.get(key) for v in versions]
        table.add_row(key, *("-" if x is None else f"{x:.4g}" for x in values))
    params = sorted({k for v in versions for k in v.meta.get("params", {})})
    for key in params:
        table.add_row(
            f"param {key}", *(escape(str(v.meta.get("params", {}).get(key, "-"))) for v in versions)
        )
    table.add_row("training data", *(escape(str(v.meta.get("training_data"))) for v in versions))
    table.add_row("gates", *("pass" if v.gates.get("passed") else "fail" for v in versions))
    console.print(table)


@models_app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(help="NAME@N.")],
    to: Annotated[str, typer.Option(help="staging, production or challenger.")],
    reason: Annotated[str, typer.Option(help="Why; kept in the history.")],
    force: Annotated[
        bool, typer.Option(help="Overrule failed gates (the override is kept in the history).")
    ] = False,
    project: ProjectOption = Path("."),
) -> None:
    """Point an alias at a version; refused if a gate failed, unless --force with a reason."""
    from boite.cli.main import handles_errors

    handles_errors(_promote)(ref, to, reason, force, project)


def _promote(ref: str, to: str, reason: str, force: bool, project: Path) -> None:
    console, proj = _ctx(project)
    event = proj.promote(ref, to=to, reason=reason, force=force)
    before = "nothing" if event.previous_version is None else f"@{event.previous_version}"
    forced = " (FORCED past failed gates)" if event.forced else ""
    console.print(
        f"{event.model} {event.alias}: {before} -> @{event.version}{forced}", markup=False
    )
    for line in _rejudged_lines(event):
        console.print(line.replace("- ", "", 1), markup=False, soft_wrap=True)


@models_app.command("rollback")
def rollback(
    name: Annotated[str, typer.Argument(help="A model.")],
    env: Annotated[str, typer.Option("--env", help="The alias to move back.")] = "production",
    reason: Annotated[str, typer.Option(help="Why; kept in the history.")] = "",
    project: ProjectOption = Path("."),
) -> None:
    """Move an alias back to the version it pointed at before."""
    from boite.cli.main import handles_errors

    handles_errors(_rollback)(name, env, reason, project)


def _rollback(name: str, env: str, reason: str, project: Path) -> None:
    console, proj = _ctx(project)
    event = proj.rollback(name, alias=env, reason=reason)
    console.print(
        f"{event.model} {event.alias}: @{event.previous_version} -> @{event.version} "
        f"({event.reason})",
        markup=False,
    )


@models_app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="A model.")],
    at: Annotated[
        str | None,
        typer.Option(help="Also say what each alias pointed at then (ISO date or time)."),
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Every alias move: version, who, when, why; and what was in production at a moment."""
    from boite.cli.main import handles_errors

    handles_errors(_history)(name, at, project)


def _history(name: str, at: str | None, project: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    from boite.errors import UserError

    console, proj = _ctx(project)
    registry = proj.models.registry
    registry.get(name)
    table = Table(show_edge=False, pad_edge=False)
    for col in ("when (UTC)", "alias", "from", "to", "who", "forced", "gates", "why"):
        table.add_column(col)
    events = registry.history(name)
    for e in events:
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.alias,
            "-" if e.previous_version is None else f"@{e.previous_version}",
            "-" if e.version is None else f"@{e.version}",
            escape(e.actor),
            "yes" if e.forced else "",
            escape(_verdict(e)),
            escape(e.reason),
        )
    console.print(table)
    rejudged = [line for e in events for line in _rejudged_lines(e)]
    if rejudged:
        console.print("Gates judged again at promotion (production had moved):", markup=False)
        for line in rejudged:
            console.print(line, markup=False, soft_wrap=True)
    if at is None:
        return
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise UserError(
            f"--at {at!r} is not an ISO date or time", hint="e.g. 2026-11-29T10:00"
        ) from None
    for alias in ("production", "staging", "challenger"):
        number = registry.alias_at(name, alias, moment)
        if number is None:
            console.print(f"{alias} at {at}: no version", markup=False)
            continue
        version = registry.get(f"{name}@{number}")
        run = proj.ledger.run(version.record.run_id) if version.record.run_id else None
        trained = (
            "" if run is None else f", trained by run {run.id[:8]} on {run.started_at:%Y-%m-%d}"
        )
        console.print(
            f"{alias} at {at}: {version.ref}, on {version.meta.get('training_data')}{trained}",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.add_typer(models_app, name="models")
