"""Champion and challenger on live traffic: what each version answered, how fast,
how much the two agree on the same requests, and how right each was once labels
came back. Read from the prediction log and the feedback, with DuckDB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from boite.errors import UserError

if TYPE_CHECKING:
    from boite.pipeline.project import Project


def live_comparison(project: Project, model: str) -> pd.DataFrame:
    """One row per (version, role) in ``model``'s prediction log.

    Columns: rows, requests, first and last time, mean prediction, latency p50 and
    p99 (ms); for each version that is not the champion and shares request rows
    with it (shadow scoring), ``paired_rows``, the mean absolute difference and
    the correlation of its predictions with the champion's on those rows; and,
    where labels have arrived (``boite feedback``), ``labelled`` and the task's
    metrics on them.
    """
    from boite.pipeline.scoring import joined, log_partitions

    project.models.registry.get(model)  # a clear error for an unknown model
    _, paths = log_partitions(project, model)
    if not paths:
        pending = unpublished(project, model)
        hint = (
            "Serve it (`boite serve`) with a challenger in shadow or split, or score a "
            "batch (`boite predict`)."
        )
        if pending:
            hint = (
                f"A running server holds {pending} row(s) of it, published every "
                "log.publish_seconds (60 s unless the environment says otherwise): try again "
                "then, or stop the server."
            )
        raise UserError(
            f"the model '{model}' has no prediction log yet, so there is no live traffic "
            "to compare",
            hint=hint,
        )
    files = ", ".join(f"'{p}'" for p in paths)
    log = f"read_parquet([{files}], union_by_name = true)"
    con = project.engine.connect()
    try:
        summary = con.sql(
            f"""
            SELECT version, role, count(*) AS rows, count(DISTINCT request_id) AS requests,
                   min(time) AS first, max(time) AS last,
                   avg(prediction) AS mean_prediction,
                   quantile_cont(latency_ms, 0.5) AS latency_p50_ms,
                   quantile_cont(latency_ms, 0.99) AS latency_p99_ms
            FROM {log} GROUP BY ALL ORDER BY version, role
            """
        ).df()
        paired = con.sql(
            f"""
            WITH l AS (SELECT * FROM {log})
            SELECT o.version, o.role, count(*) AS paired_rows,
                   avg(abs(o.prediction - c.prediction)) AS mean_abs_difference,
                   corr(o.prediction, c.prediction) AS correlation,
                   avg(CASE WHEN o.output IS NOT NULL THEN (o.output = c.output)::INT END)
                       AS same_answer
            FROM l AS o JOIN l AS c
              ON o.request_id = c.request_id AND o.row = c.row
             AND c.role = 'champion' AND o.role <> 'champion'
            GROUP BY ALL
            """
        ).df()
    finally:
        con.close()
    out = summary.merge(paired, on=["version", "role"], how="left")
    # the servers were asked to publish a moment ago, above
    labelled = _labelled_metrics(project, model, joined(project, model, publish_wait_s=0))
    if labelled is not None:
        out = out.merge(labelled, on=["version", "role"], how="left")
    return out


def _labelled_metrics(project: Project, model: str, table: Any) -> pd.DataFrame | None:
    from boite.training.metrics import task_metrics

    if table.num_rows == 0:
        return None
    frame = table.to_pandas()
    task = project.models.registry.get(model).meta.get("task")
    if task not in ("binary_classification", "regression") or "prediction" not in frame:
        return None
    rows = []
    for (version, role), group in frame.groupby(["version", "role"]):
        group = group.dropna(subset=["prediction", "label"])
        entry: dict[str, Any] = {"version": version, "role": role, "labelled": len(group)}
        y = pd.to_numeric(group["label"], errors="coerce").to_numpy(np.float64)
        scores = group["prediction"].to_numpy(np.float64)
        if len(group) and not (task == "binary_classification" and len(np.unique(y)) < 2):
            metrics = task_metrics(task, y, scores)
            entry.update({k: v for k, v in metrics.items() if k not in entry and k != "rows"})
        rows.append(entry)
    return pd.DataFrame(rows)


def unpublished(project: Project, model: str) -> int:
    """Rows of ``model`` that running servers have logged but not published yet."""
    from boite.serving.logsink import LOG_DIR, unpublished_rows

    return unpublished_rows(project.state_dir / LOG_DIR, model)
