"""Model cards, Markdown and HTML, built from a version's record in a real ledger."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from boite.core.ledger import SUCCEEDED, Ledger, NewArtifact, Resources
from boite.registry.card import card_sections, model_card_html, model_card_markdown
from boite.registry.registry import MODEL, ModelVersion, Registry

META: dict[str, Any] = {
    "task": "binary_classification",
    "algorithm": "lightgbm",
    "description": "Who buys again <b>soon</b> & why",
    "intended_use": "Win-back offers",
    "owner": "growth",
    "params": {"n_estimators": 20, "num_leaves": 17, "objective_note": "a | b"},
    "features": ["age", "sex"],
    "label": "income",
    "training_data": "people@1",
    "split": {"by": "time", "train_rows": 80, "test_rows": 20, "test_from": "2024-01-01"},
    "metrics": {"roc_auc": 0.8123456, "rows": 20.0, "business_value": 1234.0},
    "production_baseline": {"version": "income@1", "metrics": {"roc_auc": 0.75}},
    "calibration": {
        "expected_calibration_error": 0.0421,
        "bins": [
            {
                "bin": 0,
                "from": 0.0,
                "to": 0.1,
                "rows": 12,
                "mean_score": 0.05,
                "observed_rate": 0.1,
            },
            {"bin": 9, "from": 0.9, "to": 1.0, "rows": 8, "mean_score": 0.95, "observed_rate": 0.9},
        ],
    },
    "slices": {
        "sex": [
            {"slice": "Female", "rows": 8, "roc_auc": 0.7, "accuracy": 0.75},
            {"slice": "Male", "rows": 12, "roc_auc": 0.85, "accuracy": 0.8},
        ]
    },
    "business": {
        "best_threshold": 0.2069,
        "best_value": 1234.0,
        "value_at_0_5": 900.0,
        "value_acting_on_none": 0.0,
        "value_per_1000": 61700.0,
        "rows": 20,
    },
    "fairness": {
        "groups": [
            {
                "attributes": ["sex"],
                "group": ["Female"],
                "size": 8,
                "selection_rate": 0.125,
                "true_positive_rate": None,
                "false_positive_rate": 0.1,
            },
            {
                "attributes": ["sex"],
                "group": ["Male"],
                "size": 12,
                "selection_rate": 0.5,
                "true_positive_rate": 0.9,
                "false_positive_rate": 0.3,
            },
        ],
        "demographic_parity_difference": {"sex": 0.375},
        "equalized_odds_difference": {"sex": 0.2},
    },
    "gates": {
        "passed": False,
        "results": [
            {"gate": "roc_auc >= 0.7", "passed": True, "message": "roc_auc is 0.8123"},
            {
                "gate": "fairness demographic_parity_difference",
                "passed": False,
                "message": "demographic parity difference by sex is 0.38, above the limit 0.05",
            },
        ],
    },
    "fit_seconds": 0.25,
}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[ModelVersion, Registry, Ledger]]:
    ledger = Ledger("sqlite:///ledger.db", root=tmp_path)
    ingest = ledger.start_run("people", "source")
    (people,) = ledger.finish_run(
        ingest,
        status=SUCCEEDED,
        produced=[
            NewArtifact(
                kind="dataset",
                name="people",
                content_hash="d" * 64,
                uri="people.parquet",
                format="parquet",
            )
        ],
    )
    run_id = ledger.start_run("train:income", "train")
    digest = hashlib.sha256(b"income").hexdigest()
    (record,) = ledger.finish_run(
        run_id,
        status=SUCCEEDED,
        resources=Resources(wall_s=3.5, cpu_s=2.25, peak_rss_bytes=300 * 2**20, rows_in=100),
        consumed=[people.id],
        produced=[
            NewArtifact(
                kind=MODEL,
                name="income",
                content_hash=digest,
                uri=f".boite/artifacts/{digest}.model.zip",
                format="boite-model",
                meta=META,
            )
        ],
    )
    version = ModelVersion(record)
    registry = Registry(ledger)
    registry.move(version, "staging", actor="ann", reason="look at it")
    registry.move(version, "production", actor="bob", reason="needed now", forced=True)
    yield version, registry, ledger
    ledger.close()


def test_markdown_card_holds_every_section(setup: tuple[ModelVersion, Registry, Ledger]) -> None:
    version, registry, ledger = setup
    text = model_card_markdown(version, registry, ledger)
    assert text.startswith("# Model card: income@1\n")
    titles = re.findall(r"^## (.+)$", text, flags=re.M)
    assert titles == [
        "Overview",
        "Data",
        "Parameters",
        "Metrics (held-out test rows)",
        "Calibration",
        "Slices by sex",
        "Business value",
        "Fairness",
        "Gates — FAILED",
        "Cost",
        "History",
    ]
    assert "- **Task:** binary_classification with lightgbm" in text
    assert "- **Intended use:** Win-back offers" in text and "- **Owner:** growth" in text
    assert "- **Aliases now:** production, staging" in text
    assert f"sha256 {version.record.content_hash[:16]}" in text
    assert "- **Training data:** people@1 (label `income`)" in text
    assert "- **Features (2):** `age`, `sex`" in text
    assert "time — 80 training rows, 20 test rows, test from 2024-01-01" in text
    assert "- **Lineage:** dataset people@1" in text
    assert "| num_leaves | 17 |" in text and "| objective_note | a \\| b |" in text
    assert "| roc_auc | 0.8123 |" in text
    assert "Production income@1 on the same test rows:" in text and "| roc_auc | 0.75 |" in text
    assert "Expected calibration error: 0.0421" in text
    assert "| Female | 8 | 0.7 | 0.75 |" in text
    assert "Best threshold 0.2069: value 1,234 on 20 test rows (61,700.0 per 1,000)" in text
    assert "| sex | Female | 8 | 0.125 | - | 0.1 |" in text  # an undefined TPR shows as '-'
    assert "| sex | 0.375 | 0.2 |" in text
    assert "- FAIL `fairness demographic_parity_difference`: demographic parity" in text
    assert "- pass `roc_auc >= 0.7`" in text
    assert "3.5 s wall, 2.2 s CPU, peak memory 300 MiB, 100 rows in" in text
    assert "Final fit: 0.25 s" in text
    assert "staging by ann: look at it" in text
    assert "production by bob: needed now (forced past failed gates)" in text


def test_markdown_tables_are_well_formed(setup: tuple[ModelVersion, Registry, Ledger]) -> None:
    version, registry, ledger = setup
    for _, body in card_sections(version, registry, ledger):
        tables: list[list[str]] = []
        previous = ""
        for line in body:
            if line.startswith("|"):
                if not previous.startswith("|"):
                    tables.append([])
                tables[-1].append(line)
            previous = line
        for table in tables:
            widths = {len(re.split(r"(?<!\\)\|", row)) for row in table}
            assert len(widths) == 1, table
            assert set(table[1]) <= {"|", "-"}  # the separator line


class _Tables(HTMLParser):
    """The cells of each <table>, row by row, and the text outside tables."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        (self._cell if self._cell is not None else self.text).append(data)


def _parse(page: str) -> _Tables:
    parser = _Tables()
    parser.feed(page)
    return parser


def test_html_card_is_one_escaped_page(setup: tuple[ModelVersion, Registry, Ledger]) -> None:
    version, registry, ledger = setup
    page = model_card_html(version, registry, ledger)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<title>Model card income@1</title>" in page
    assert "<h2>Business value</h2>" in page and "<h2>Gates — FAILED</h2>" in page
    # text from the record is escaped, never markup
    assert "<b>soon</b>" not in page and "&lt;b&gt;soon&lt;/b&gt; &amp; why" in page
    parsed = _parse(page)
    assert "• Owner: growth" in parsed.text  # list items without Markdown bold marks
    params = parsed.tables[0]
    assert params[0] == ["parameter", "value"]
    assert ["num_leaves", "17"] in params


def test_html_tables_have_no_markdown_separator_rows(
    setup: tuple[ModelVersion, Registry, Ledger],
) -> None:
    version, registry, ledger = setup
    parsed = _parse(model_card_html(version, registry, ledger))
    assert parsed.tables
    for table in parsed.tables:
        header, *rows = table
        for row in rows:
            assert len(row) == len(header), (header, row)
            assert not all(set(cell) <= {"-", "|"} for cell in row), row
    metrics = parsed.tables[1]
    assert metrics[1] == ["roc_auc", "0.8123"]


def test_html_cells_show_a_pipe_as_it_was(setup: tuple[ModelVersion, Registry, Ledger]) -> None:
    """Markdown escapes '|' in cells; the HTML page shows the value itself."""
    version, registry, ledger = setup
    parsed = _parse(model_card_html(version, registry, ledger))
    assert ["objective_note", "a | b"] in parsed.tables[0]


def test_a_card_without_optional_parts(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///ledger.db", root=tmp_path)
    run_id = ledger.start_run("train:hours", "train")
    (record,) = ledger.finish_run(
        run_id,
        status=SUCCEEDED,
        produced=[
            NewArtifact(
                kind=MODEL,
                name="hours",
                content_hash="e" * 64,
                uri="hours.model.zip",
                format="boite-model",
                meta={
                    "task": "regression",
                    "algorithm": "lightgbm",
                    "metrics": {"rmse": 10.5},
                    "gates": {"passed": True, "results": []},
                },
            )
        ],
    )
    version = ModelVersion(record)
    registry = Registry(ledger)
    text = model_card_markdown(version, registry, ledger)
    titles = re.findall(r"^## (.+)$", text, flags=re.M)
    assert titles == [
        "Overview",
        "Data",
        "Parameters",
        "Metrics (held-out test rows)",
        "Gates — passed",
        "Cost",
    ]
    assert "- **Description:** -" in text and "- **Aliases now:** none" in text
    assert "- no gates declared" in text
    page = model_card_html(version, registry, ledger)
    assert "<h2>Gates — passed</h2>" in page
    ledger.close()
