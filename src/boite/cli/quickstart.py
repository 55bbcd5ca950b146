"""`boite quickstart`: copy the retail example into a folder, build it, say what to try next."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from boite.errors import InternalError, UserError

EXAMPLE = "retail"


def example_dir(name: str) -> Path:
    """The shipped example: inside the installed package, or in the source checkout."""
    packaged = resources.files("boite").joinpath("_examples", name)
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[3] / "examples" / name
    if checkout.is_dir():
        return checkout
    raise InternalError(f"the '{name}' example is missing from this installation of boite")


def copy_example(name: str, folder: Path, *, force: bool) -> Path:
    source = example_dir(name)
    folder = folder.resolve()
    marker = folder / "boite.yaml"
    if folder.exists():
        same = marker.exists() and marker.read_text() == (source / "boite.yaml").read_text()
        if same:
            return folder  # the quickstart ran here before: build it again, incrementally
        if any(folder.iterdir()):
            if not force:
                raise UserError(
                    f"{folder} already exists and holds something else than the {name} example",
                    hint="Pass another folder, or --force to replace its contents.",
                )
            shutil.rmtree(folder)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".boite", "__pycache__"))
    return folder


def run_quickstart(folder: Path, *, force: bool, console: Console) -> int:
    from boite.cli.render import run_with_progress
    from boite.pipeline.project import open_project

    target = copy_example(EXAMPLE, folder, force=force)
    console.print(
        f"[bold]boite quickstart[/bold]: the retail example (CDNOW purchases, 1997-98) in {target}",
        markup=True,
    )
    project = open_project(target)
    report = run_with_progress(project, None, wait=False, workers=None, console=console)
    if not report.ok:
        return 2
    table = Table(title="What it built", show_edge=False, pad_edge=False, title_justify="left")
    for col in ("dataset", "version", "rows", "columns"):
        table.add_column(col)
    for ds in project.datasets():
        table.add_row(ds.name, f"v{ds.version}", f"{ds.rows:,}", ", ".join(ds.schema)[:70])
    console.print(table)
    _feature_store_tour(project, console)
    _train_and_promote(project, console)
    _serve_and_score(project, console)
    rel = _display(target)
    console.print("\n[bold]Try next[/bold]", markup=True)
    for line in (
        f"cd {rel}",
        "boite status                                  # everything is up to date",
        "boite run                                     # a second run does nothing",
        "boite show dataset customer_activity          # schema, stats, version, inputs",
        "boite lineage customer_activity --upstream    # back to the raw CDNOW file",
        "boite features list                           # the feature library, with freshness",
        "boite features get customer_activity --entity customer_id=00164",
        "boite models list                             # versions, aliases, metrics",
        "boite models show repurchase@1                # the model card",
        "boite train repurchase --trials 8             # a new version, judged by its gates",
        "boite serve --env production                  # the REST server on 127.0.0.1:8080",
        "boite models compare repurchase --live        # champion and shadow on live traffic",
        "boite predict repurchase --input customers.parquet --as-of 1998-06-30 "
        "--output scores.parquet",
        "python -c \"import boite; print(boite.open_project().dataset('repurchase_labels')"
        '.to_pandas().head())"',
        "edit transforms/customer_daily.sql, then `boite status` and `boite run`",
    ):
        console.print("  " + line, markup=False)
    project.close()
    return 0


def _feature_store_tour(project: Any, console: Console) -> None:
    """A point-in-time training set and an online lookup, as a model would use them."""
    training = project.training_set(
        "repurchase_labels", ["customer_activity:*"], name="repurchase_training"
    )
    frame = training.to_pandas()
    share = frame["bought_again_90d"].mean()
    console.print(
        f"\nTraining set [bold]{training.ref}[/bold]: {training.rows:,} label rows joined "
        f"point-in-time to {len(frame.columns) - 3} features of customer_activity "
        f"({share:.1%} bought again within 90 days).",
        markup=True,
    )
    online = project.online_features(
        [
            "customer_activity:orders_365d",
            "customer_activity:spend_365d",
            "customer_activity:days_since_last",
        ],
        [{"customer_id": "00164"}],
    )
    values = ", ".join(f"{k}={v}" for k, v in online.to_records()[0].items())
    console.print(
        f"Online features of customer 00164 as of {project.clock.now():%Y-%m-%d}: {values}",
        markup=False,
    )


def _train_and_promote(project: Any, console: Console) -> None:
    """Train the repurchase model with a short search, and promote it if its gates pass."""
    with console.status("training repurchase (LightGBM, a short Optuna search)…"):
        result = project.train("repurchase")
    version = result.version
    metrics = version.metrics
    console.print(
        f"Trained [bold]{version.ref}[/bold]: ROC AUC {metrics['roc_auc']:.3f} on the 1998 "
        f"test months; business value {metrics.get('business_value', 0):,.0f} "
        f"(gates {'passed' if result.gates.passed else 'failed'}).",
        markup=True,
    )
    current = project.models.registry.alias("repurchase", "production")
    if result.gates.passed and (current is None or current.version != version.version):
        event = project.promote(version.ref, to="production", reason="quickstart: gates passed")
        console.print(f"Promoted {version.ref} to production.", markup=False)
        del event
    elif current is not None:
        console.print(f"Production stays {current.ref}.", markup=False)


def _serve_and_score(project: Any, console: Console) -> None:
    """Serve production (with a challenger in shadow), send traffic (a share of it
    drifted, so that monitoring has something to find), stop, and score a batch."""
    from boite.serving.traffic import TrafficReport, send_traffic, serve_in_background

    challenger = _challenger(project, console)
    customers = _customers(project)
    with (
        console.status("serving production and sending traffic…"),
        serve_in_background(project.root, "production") as url,
    ):
        report: TrafficReport = send_traffic(
            url, "repurchase", customers, requests=400, drifted_share=0.2, seconds=60
        )
    console.print(
        f"Served {report.ok:,} requests on {url} (p50 {report.p50_ms:.2f} ms, "
        f"p99 {report.p99_ms:.2f} ms, {report.errors} errors): mean score "
        f"{report.mean_score:.3f} on usual customers, {report.mean_drifted:.3f} on the "
        f"{report.drifted} drifted ones"
        + (f"; {challenger} scored every request in shadow." if challenger else "."),
        markup=False,
    )
    from boite.pipeline.compaction import current_partitions

    log_rows = sum(r.rows or 0 for r in current_partitions(project, "repurchase"))
    console.print(f"The prediction log holds {log_rows:,} rows in the ledger.", markup=False)
    from boite.pipeline.scoring import score_batch

    with console.status("scoring every customer as of 1998-06-30…"):
        result = score_batch(
            project,
            "repurchase",
            project.root / "customers.parquet",
            as_of="1998-06-30",
            output=project.root / "scores.parquet",
        )
    console.print(
        f"Batch: {result.rows:,} customers scored with {result.model_version} in "
        f"{result.seconds:.1f} s into scores.parquet (with its lineage in the ledger).",
        markup=False,
    )


def _challenger(project: Any, console: Console) -> str | None:
    """A second version (no search) as challenger, if its gates let it."""
    from boite.errors import RegistryError

    current = project.models.registry.alias("repurchase", "challenger")
    if current is not None:
        return str(current.ref)
    with console.status("training a challenger (no search)…"):
        version = project.train("repurchase", trials=0).version
    production = project.models.registry.alias("repurchase", "production")
    if production is None or version.version == production.version:
        return None
    try:
        project.promote(version.ref, to="challenger", reason="quickstart: watch it in shadow")
    except RegistryError as exc:
        console.print(f"{version.ref} stays out of the challenger seat: {exc.message}")
        return None
    return str(version.ref)


def _customers(project: Any) -> list[str]:
    """Every customer with features, written to customers.parquet for the batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = project.dataset("customer_activity").to_pandas()
    ids = sorted(frame["customer_id"].astype(str).unique())
    pq.write_table(pa.table({"customer_id": ids}), project.root / "customers.parquet")
    return ids


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
