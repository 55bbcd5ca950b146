"""Feedback (`boite feedback`): labels joined to prediction log partitions written by the
real LedgerSink and by batch scoring, by request id or by entity and time; lineage,
duplicates, live metrics by version and role, and bad labels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from retail_copy import copy_retail
from typer.testing import CliRunner

from boite.cli.main import app
from boite.errors import UserError
from boite.pipeline.project import Project, open_project
from boite.pipeline.scoring import joined, record_feedback, score_batch
from boite.serving.logsink import LedgerSink
from boite.serving.model import ServedModel
from boite.serving.predlog import PREDICTION_LOG, Entry, PredictionLog

AS_OF = "1998-03-31"


@pytest.fixture(scope="module")
def retail(retail_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("feedback") / "retail"
    copy_retail(retail_root, root)
    project = open_project(root)
    yield project
    project.close()


@pytest.fixture(scope="module")
def live(retail: Project) -> dict[str, object]:
    """Two served requests logged by champion @1 and shadow @2, through the real sink."""
    features = tuple(retail.models.registry.get("repurchase@1").meta["features"])
    sink = LedgerSink(
        retail.ledger, retail.store, env="production", directory=retail.state_dir / "log"
    )
    log = PredictionLog(sink)
    at = int(datetime(1998, 6, 1, tzinfo=UTC).timestamp() * 1_000_000)
    for version, role, scores in ((1, "champion", [0.9, 0.1]), (2, "shadow", [0.2, 0.8])):
        model = ServedModel(
            "repurchase",
            version,
            "binary_classification",
            features,
            {},
            lambda rows: [],
            (),
            entity_keys=("customer_id",),
        )
        entities = [{"customer_id": "00001"}, {"customer_id": "00002"}]
        rows = [[0] * len(features), [1] * len(features)]
        log.record(model, Entry("req-1", at, role, role == "champion", entities, rows, scores, 2.0))
    log.close()
    return {"request": "req-1"}


def test_labels_by_request_id_score_champion_and_shadow(retail: Project, live: dict) -> None:
    labels = [
        {"request_id": "req-1", "row": 0, "bought_again_90d": 1},
        {"request_id": "req-1", "row": 1, "bought_again_90d": 1},
        {"request_id": "req-1", "row": 1, "bought_again_90d": 0},  # a correction: wins
        {"request_id": "nope", "row": 0, "bought_again_90d": 1},
    ]
    summary = record_feedback(retail, "repurchase", labels)
    assert (summary.rows, summary.duplicates) == (4, 1)
    assert (summary.matched_by_id, summary.matched_by_entity, summary.unmatched) == (2, 0, 1)
    by_role = {(m.version, m.role): m for m in summary.live}
    assert set(by_role) == {("repurchase@1", "champion"), ("repurchase@2", "shadow")}
    assert by_role[("repurchase@1", "champion")].metrics["roc_auc"] == 1.0
    assert by_role[("repurchase@2", "shadow")].metrics["roc_auc"] == 0.0
    # lineage: the feedback run consumed the log partitions it matched
    inputs = retail.ledger.inputs_of(summary.run_id)
    assert {a.kind for a in inputs} == {PREDICTION_LOG}
    assert {a.meta["model_version"] for a in inputs} == {"repurchase@1", "repurchase@2"}
    assert summary.feedback.kind == "feedback"


def test_labels_by_entity_and_time_join_the_latest_prediction_before(
    retail: Project, live: dict, tmp_path: Path
) -> None:
    labels = retail.dataset("repurchase_labels").to_pandas()
    labels["as_of"] = pd.to_datetime(labels["as_of"])
    march = labels[labels["as_of"] == AS_OF].head(2000)
    source = tmp_path / "customers.parquet"
    march[["customer_id"]].to_parquet(source, index=False)
    result = score_batch(retail, "repurchase", source, as_of=AS_OF)
    outcomes = tmp_path / "outcomes.csv"
    march.to_csv(outcomes, index=False)
    summary = record_feedback(retail, "repurchase", outcomes)
    assert summary.matched_by_entity == 2000 and summary.unmatched == 0
    batch = next(m for m in summary.live if m.role == "batch")
    assert batch.rows == 2000 and batch.metrics["roc_auc"] > 0.7
    # a label before every prediction of its entity matches nothing
    early = march.head(3).assign(as_of=pd.Timestamp("1997-01-31"))
    with pytest.raises(UserError, match="none of the 3 label"):
        record_feedback(retail, "repurchase", early.to_dict("records"))
    table = joined(retail, "repurchase").to_pandas()
    mine = table[table["request_id"] == result.run_id]
    assert len(mine) == 2000
    assert set(mine["matched_by"]) == {"entity"}
    assert {"label", "label_time", "orders_total", "prediction"} <= set(table.columns)


def test_bad_labels(retail: Project, live: dict, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no label column 'bought_again_90d'"):
        record_feedback(retail, "repurchase", [{"request_id": "req-1", "outcome": 1}])
    with pytest.raises(UserError, match="neither a 'request_id' column nor the entity keys"):
        record_feedback(retail, "repurchase", [{"who": "x", "bought_again_90d": 1}])
    with pytest.raises(UserError, match="none of the 1 label"):
        record_feedback(retail, "repurchase", [{"request_id": "zzz", "bought_again_90d": 1}])
    with pytest.raises(UserError, match="does not exist"):
        record_feedback(retail, "repurchase", tmp_path / "missing.csv")
    bad_time = tmp_path / "bad.csv"
    pd.DataFrame({"customer_id": ["00001"], "as_of": ["later"], "bought_again_90d": [1]}).to_csv(
        bad_time, index=False
    )
    with pytest.raises(UserError, match="holds 'later'"):
        record_feedback(retail, "repurchase", bad_time, timestamp="as_of")


def test_cli_feedback(retail: Project, live: dict, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["req-1"], "row": [0], "y": [1]}).to_csv(labels, index=False)
    runner = CliRunner()
    args = ["feedback", "repurchase", "--labels", str(labels), "-p", str(retail.root)]
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2 and "no label column" in bad.output
    ok = runner.invoke(app, [*args, "--label-column", "y"])
    assert ok.exit_code == 0, ok.output
    assert "1 matched by request id" in ok.output
