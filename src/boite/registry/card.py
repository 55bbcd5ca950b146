"""Model cards: what a version is for, what it learned from, how good, fair and valuable it is.

The card is built from the version's record (metrics, slices, fairness, business
value, gates, lineage, resources), as Markdown and as a self-contained HTML page.
"""

from __future__ import annotations

import html
import re
from typing import Any

from boite.core.ledger import Ledger
from boite.registry.registry import ModelVersion, Registry


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def card_sections(
    version: ModelVersion, registry: Registry, ledger: Ledger
) -> list[tuple[str, list[str]]]:
    meta = version.meta
    run = ledger.run(version.record.run_id) if version.record.run_id else None
    aliases = [
        a
        for a, v in registry.aliases(version.name).get(version.name, {}).items()
        if v == version.version
    ]
    sections: list[tuple[str, list[str]]] = []
    intro = [
        f"- **Task:** {meta.get('task')} with {meta.get('algorithm')}",
        f"- **Description:** {meta.get('description') or '-'}",
        f"- **Intended use:** {meta.get('intended_use') or '-'}",
        f"- **Owner:** {meta.get('owner') or '-'}",
        f"- **Registered:** {version.record.created_at:%Y-%m-%d %H:%M} UTC"
        + (f" by run {run.id[:8]} ({run.user}@{run.host})" if run else ""),
        f"- **Aliases now:** {', '.join(sorted(aliases)) or 'none'}",
        f"- **Model file:** {version.record.uri} (sha256 {version.record.content_hash[:16]}…)",
    ]
    sections.append(("Overview", intro))
    split = meta.get("split", {})
    data = [
        f"- **Training data:** {meta.get('training_data')} (label `{meta.get('label')}`)",
        f"- **Features ({len(meta.get('features', []))}):** "
        + ", ".join(f"`{f}`" for f in meta.get("features", [])),
        f"- **Split:** {split.get('by')} — {split.get('train_rows')} training rows, "
        f"{split.get('test_rows')} test rows"
        + (f", test from {split['test_from']}" if split.get("test_from") else ""),
    ]
    if run is not None:
        inputs = ledger.inputs_of(run.id)
        if inputs:
            data.append("- **Lineage:** " + ", ".join(f"{a.kind} {a.ref}" for a in inputs))
    sections.append(("Data", data))
    params = meta.get("params", {})
    sections.append(
        ("Parameters", _table(["parameter", "value"], [[k, v] for k, v in params.items()]))
    )
    metrics = meta.get("metrics", {})
    body = _table(["metric", "value"], [[k, v] for k, v in metrics.items()])
    base = meta.get("production_baseline")
    if base:
        body.append("")
        body.append(f"Production {base['version']} on the same test rows:")
        body += _table(["metric", "value"], [[k, v] for k, v in base["metrics"].items()])
    sections.append(("Metrics (held-out test rows)", body))
    calibration = meta.get("calibration")
    if calibration:
        rows = [
            [b["from"], b["to"], b["rows"], b["mean_score"], b["observed_rate"]]
            for b in calibration["bins"]
        ]
        sections.append(
            (
                "Calibration",
                [
                    f"Expected calibration error: {calibration['expected_calibration_error']:.4f}",
                    "",
                    *_table(["from", "to", "rows", "mean score", "observed rate"], rows),
                ],
            )
        )
    for column, rows in (meta.get("slices") or {}).items():
        keys = [
            k
            for k in ("rows", "roc_auc", "accuracy", "rmse", "positive_rate")
            if any(k in r for r in rows)
        ]
        sections.append(
            (
                f"Slices by {column}",
                _table(["slice", *keys], [[r["slice"], *(r.get(k) for k in keys)] for r in rows]),
            )
        )
    business = meta.get("business")
    if business:
        sections.append(
            (
                "Business value",
                [
                    f"- Best threshold {business['best_threshold']:.4f}: value "
                    f"{business['best_value']:,.0f} on {business['rows']} test rows "
                    f"({business['value_per_1000']:,.1f} per 1,000)",
                    f"- At threshold 0.5: {business['value_at_0_5']:,.0f}; acting on no one: "
                    f"{business['value_acting_on_none']:,.0f}",
                ],
            )
        )
    fairness = meta.get("fairness")
    if fairness:
        lines = _table(
            ["attributes", "group", "size", "selection rate", "TPR", "FPR"],
            [
                [
                    "×".join(g["attributes"]),
                    "×".join(g["group"]),
                    g["size"],
                    g["selection_rate"],
                    g["true_positive_rate"],
                    g["false_positive_rate"],
                ]
                for g in fairness.get("groups", [])
            ],
        )
        lines.append("")
        lines += _table(
            ["attributes", "demographic parity difference", "equalized odds difference"],
            [
                [k, v, fairness.get("equalized_odds_difference", {}).get(k)]
                for k, v in fairness.get("demographic_parity_difference", {}).items()
            ],
        )
        sections.append(("Fairness", lines))
    gates = meta.get("gates", {})
    sections.append(
        (
            "Gates" + (" — passed" if gates.get("passed") else " — FAILED"),
            [
                f"- {'pass' if g['passed'] else 'FAIL'} `{g['gate']}`: {g['message']}"
                for g in gates.get("results", [])
            ]
            or ["- no gates declared"],
        )
    )
    if run is not None:
        sections.append(
            (
                "Cost",
                [
                    f"- Training run: {run.wall_s or 0:.1f} s wall, {run.cpu_s or 0:.1f} s CPU, "
                    f"peak memory {(run.peak_rss_bytes or 0) / 2**20:.0f} MiB, "
                    f"{run.rows_in or 0:,} rows in",
                    f"- Final fit: {meta.get('fit_seconds', 0):.2f} s",
                ],
            )
        )
    history = [e for e in registry.history(version.name) if e.version == version.version]
    if history:
        sections.append(
            (
                "History",
                [
                    f"- {e.at:%Y-%m-%d %H:%M} {e.alias} by {e.actor}: {e.reason}"
                    + (" (forced past failed gates)" if e.forced else "")
                    for e in history
                ],
            )
        )
    return sections


def model_card_markdown(version: ModelVersion, registry: Registry, ledger: Ledger) -> str:
    lines = [f"# Model card: {version.ref}", ""]
    for title, body in card_sections(version, registry, ledger):
        lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines)


def model_card_html(version: ModelVersion, registry: Registry, ledger: Ledger) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Model card {html.escape(version.ref)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;}"
        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;"
        "padding:.2rem .5rem;text-align:left}code{background:#f4f4f4}</style></head><body>",
        f"<h1>Model card: {html.escape(version.ref)}</h1>",
    ]
    for title, body in card_sections(version, registry, ledger):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(_lines_html(body))
    parts.append("</body></html>")
    return "\n".join(parts)


def _lines_html(lines: list[str]) -> str:
    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, *rows = table
            out.append(
                "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
            )
            out.extend(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
            )
            out.append("</table>")
            table.clear()

    for line in lines:
        if line.startswith("|"):
            if set(line.strip()) <= {"|", "-"}:
                continue  # the Markdown header separator
            cells = [
                c.strip().replace("\\|", "|")
                for c in re.split(r"(?<!\\) \| ", line.strip().strip("|").strip())
            ]
            table.append(cells)
            continue
        flush()
        if line.startswith("- "):
            text = html.escape(line[2:]).replace("**", "")
            out.append(f"<p>• {text}</p>")
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)
