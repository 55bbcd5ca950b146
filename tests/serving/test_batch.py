"""Batch scoring (`boite predict`) on the retail and income examples: scores equal the
in-process predictor on the same point-in-time frame, chunks change nothing, no future
feature value is used, lineage in the ledger, atomic output, and every bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from retail_copy import copy_retail
from typer.testing import CliRunner

from boite.cli.main import app
from boite.errors import RegistryError, UserError
from boite.pipeline.project import Project, open_project
from boite.pipeline.scoring import score_batch
from boite.serving.batch import BatchModel, log_table, prediction_columns, rechunk
from boite.serving.model import ServedModel
from boite.serving.predlog import PREDICTION_LOG, Entry, to_table

REPO = Path(__file__).resolve().parents[2]
AS_OF = "1998-03-31"


@pytest.fixture(scope="module")
def retail(retail_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A copy of the trained retail project: batch runs here touch no other test's ledger."""
    root = tmp_path_factory.mktemp("batch") / "retail"
    copy_retail(retail_root, root)
    project = open_project(root)
    yield project
    project.close()


@pytest.fixture(scope="module")
def customers(retail: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    labels = retail.dataset("repurchase_labels").to_pandas()
    ids = labels[["customer_id"]].drop_duplicates().head(3000).reset_index(drop=True)
    path = tmp_path_factory.mktemp("inputs") / "customers.parquet"
    ids.to_parquet(path, index=False)
    return path


def test_scores_equal_the_predictor_on_the_same_point_in_time_frame(
    retail: Project, customers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.parquet"
    result = score_batch(retail, "repurchase", customers, as_of=AS_OF, output=out)
    scores = pq.read_table(out).to_pandas()
    assert list(scores.columns) == ["customer_id", "as_of", "score"]
    assert result.rows == len(scores) == 3000
    assert result.model_version == "repurchase@1"  # production
    frame = scores[["customer_id"]].assign(as_of=pd.Timestamp(AS_OF))
    mv = retail.models.registry.get("repurchase@1")
    training = retail.training_set(frame, list(mv.meta["feature_refs"]), timestamp="as_of")
    expected = retail.models.predictor(mv).scores(training.to_pandas())
    np.testing.assert_allclose(scores["score"].to_numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("chunk_rows", [1, 7, 999, 3000, 10_000])
def test_chunked_output_equals_unchunked(
    retail: Project, customers: Path, tmp_path: Path, chunk_rows: int
) -> None:
    if chunk_rows == 1:
        small = tmp_path / "small.parquet"
        pq.write_table(pq.read_table(customers).slice(0, 40), small)
        source = small
    else:
        source = customers
    whole = score_batch(retail, "repurchase", source, as_of=AS_OF, output=tmp_path / "a.parquet")
    parts = score_batch(
        retail,
        "repurchase",
        source,
        as_of=AS_OF,
        output=tmp_path / "b.parquet",
        chunk_rows=chunk_rows,
    )
    assert parts.chunks == -(-whole.rows // chunk_rows)
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))


def test_rechunk_gives_exact_sizes() -> None:
    batches = [pa.record_batch({"x": list(range(i, i + n))}) for i, n in ((0, 5), (5, 0), (5, 8))]
    sizes = [t.num_rows for t in rechunk(batches, 4)]
    assert sizes == [4, 4, 4, 1]
    assert pa.concat_tables(rechunk(batches, 3)).column("x").to_pylist() == list(range(13))


def test_no_future_feature_values(retail: Project, tmp_path: Path) -> None:
    activity = retail.dataset("customer_activity").to_pandas()
    activity["as_of"] = pd.to_datetime(activity["as_of"])
    # a customer who bought again after the cut-off: their later rows must not leak in
    later = activity[activity["as_of"] > "1997-06-30"].groupby("customer_id")["orders_total"]
    earlier = activity[activity["as_of"] <= "1997-06-30"].groupby("customer_id")["orders_total"]
    grown = (later.max() - earlier.max()).dropna()
    customer = grown[grown > 0].index[0]
    rows = pd.DataFrame({"customer_id": [customer, customer], "when": ["1997-06-30", "1998-06-30"]})
    source = tmp_path / "one.csv"
    rows.to_csv(source, index=False)
    result = score_batch(retail, "repurchase", source, timestamp="when", output=tmp_path / "o.csv")
    assert result.rows == 2
    log = pq.read_table(
        retail.store.local_path(result.log.uri, result.log.content_hash)
    ).to_pandas()
    mine = activity[activity["customer_id"] == customer]
    then = mine[mine["as_of"] <= "1997-06-30"].iloc[-1]
    now = mine[mine["as_of"] <= "1998-06-30"].iloc[-1]
    assert log["orders_total"].tolist() == [then["orders_total"], now["orders_total"]]
    assert then["orders_total"] < now["orders_total"]
    assert log["time"].dt.strftime("%Y-%m-%d").tolist() == ["1997-06-30", "1998-06-30"]


def test_features_equal_the_point_in_time_join_at_every_time(
    retail: Project, customers: Path, tmp_path: Path
) -> None:
    """Rows in no order of time, before any feature, inside and past the view's TTL
    (365 days), cut into chunks: each row's features are the training set's."""
    ids = pq.read_table(customers).column("customer_id").to_pylist()[:300]
    rng = np.random.default_rng(3)
    when = rng.choice(
        pd.to_datetime(
            ["1996-06-30", "1997-02-15", "1997-09-30", "1998-03-31", "1999-03-31", "1999-09-30"]
        ),
        len(ids) * 2,
    )
    rows = pd.DataFrame({"customer_id": ids * 2, "when": when})
    source = tmp_path / "rows.parquet"
    rows.to_parquet(source, index=False)
    result = score_batch(retail, "repurchase", source, timestamp="when", chunk_rows=97)
    assert result.chunks == 7
    log = pq.read_table(retail.store.local_path(result.log.uri, result.log.content_hash))
    mv = retail.models.registry.get("repurchase@1")
    training = retail.training_set(rows, list(mv.meta["feature_refs"]), timestamp="when")
    want = training.to_pandas()
    features = [c for c in want.columns if c not in rows.columns]
    assert features and set(features) <= set(log.column_names)
    got, want = log.select(features).to_pandas(), want[features]
    pd.testing.assert_frame_equal(got, want, check_dtype=True)
    some = want[features[0]]
    assert some.isna().any() and some.notna().any()  # both sides of the time and the TTL


def test_lineage_in_the_ledger(retail: Project, customers: Path, tmp_path: Path) -> None:
    result = score_batch(
        retail, "repurchase", customers, as_of=AS_OF, output=tmp_path / "s.parquet", version=2
    )
    ledger = retail.ledger
    run = ledger.run(result.run_id)
    assert run.kind == "score" and run.status == "succeeded"
    consumed = {(a.kind, a.name) for a in ledger.inputs_of(result.run_id)}
    assert ("model", "repurchase") in consumed
    assert ("dataset", "customer_activity") in consumed
    model_in = [a for a in ledger.inputs_of(result.run_id) if a.kind == "model"]
    assert [a.version for a in model_in] == [2]
    produced = {a.kind for a in ledger.outputs_of(result.run_id)}
    assert produced == {"predictions", PREDICTION_LOG}
    assert result.log is not None and result.log.meta["roles"] == ["batch"]
    stored = pq.read_table(
        retail.store.local_path(result.predictions.uri, result.predictions.content_hash)
    )
    assert stored.equals(pq.read_table(tmp_path / "s.parquet"))


def test_log_rows_have_the_servers_layout(retail: Project, customers: Path) -> None:
    result = score_batch(retail, "repurchase", customers, as_of=AS_OF, chunk_rows=1000)
    assert result.output is None
    batch_log = pq.read_table(retail.store.local_path(result.log.uri, result.log.content_hash))
    mv = retail.models.registry.get("repurchase@1")
    features = tuple(mv.meta["features"])
    served = ServedModel(
        "repurchase",
        1,
        "binary_classification",
        features,
        {},
        lambda rows: [],
        (),
        entity_keys=("customer_id",),
    )
    entry = Entry(
        "r", 0, "champion", True, [{"customer_id": "1"}], [[1] * len(features)], [0.5], 1.0
    )
    live = to_table(served, [entry])
    assert batch_log.column_names == live.column_names
    assert batch_log.schema.field("time").type == live.schema.field("time").type
    assert batch_log.column("row").to_pylist()[:3] == [0, 1, 2]
    assert batch_log.num_rows == 3000


def test_failing_run_leaves_no_output(
    retail: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boite.serving.batch as batch

    out = tmp_path / "scores.parquet"
    out.write_bytes(b"the previous file")
    calls = {"n": 0}
    original = batch.prediction_columns

    def failing(model: BatchModel, raw: object) -> dict[str, pa.Array]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed half way")
        return original(model, raw)

    monkeypatch.setattr(batch, "prediction_columns", failing)
    rows = pd.DataFrame({"customer_id": ["00001", "00002", "00003"]})
    source = tmp_path / "in.parquet"
    rows.to_parquet(source, index=False)
    before = len(retail.ledger.versions("predictions", "repurchase"))
    with pytest.raises(RuntimeError):
        score_batch(retail, "repurchase", source, as_of=AS_OF, output=out, chunk_rows=1)
    assert out.read_bytes() == b"the previous file"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert len(retail.ledger.versions("predictions", "repurchase")) == before
    failed = retail.ledger.runs(step="score:repurchase", limit=1)[0]
    assert failed.status == "failed"


def test_prediction_columns_per_task() -> None:
    def model(task: str, classes: tuple[str, ...] | None = None) -> BatchModel:
        return BatchModel("m", 1, task, ("x",), classes=classes)

    assert list(prediction_columns(model("binary_classification"), np.array([0.2]))) == ["score"]
    assert list(prediction_columns(model("regression"), np.array([3.0]))) == ["prediction"]
    assert list(prediction_columns(model("clustering"), np.array([2]))) == ["segment"]
    assert list(prediction_columns(model("recommendation"), [["a", "b"]])) == ["items"]
    multi = prediction_columns(model("multiclass", ("a", "b")), np.array([[0.3, 0.7]]))
    assert multi["label"].to_pylist() == ["b"]
    assert multi["probabilities"].to_pylist() == [{"a": 0.3, "b": 0.7}]
    table = pa.table({"x": [1.0], "__boite_row": [0]})
    log = log_table(
        model("multiclass", ("a", "b")),
        table,
        multi,
        request_id="r",
        time_column=None,
        now_us=0,
        latency_ms=1.0,
    )
    assert log.column("output").to_pylist() == ['{"label":"b","probabilities":{"a":0.3,"b":0.7}}']


# --- bad input -----------------------------------------------------------------------


def test_bad_inputs(retail: Project, customers: Path, tmp_path: Path) -> None:
    def refused(match: str, error: type[Exception] = UserError, **kwargs: object) -> None:
        args = {"source": customers, "as_of": AS_OF, **kwargs}
        source = args.pop("source")
        with pytest.raises(error, match=match):
            score_batch(retail, str(args.pop("model", "repurchase")), source, **args)  # type: ignore[arg-type]

    refused("does not exist", source=tmp_path / "missing.parquet")
    refused("no input file or dataset named 'nope'", source="nope")
    wrong = tmp_path / "wrong.csv"
    pd.DataFrame({"customer": ["00001"]}).to_csv(wrong, index=False)
    refused("lacks the column 'customer_id' .*did you mean 'customer'", source=wrong)
    refused("no column 'when'", timestamp="when", as_of=None)
    bad_time = tmp_path / "bad_time.csv"
    pd.DataFrame({"customer_id": ["00001", "00002"], "when": ["1998-01-01", "soon"]}).to_csv(
        bad_time, index=False
    )
    refused("holds 'soon' \\(row 2\\)", source=bad_time, timestamp="when", as_of=None)
    refused("'yesterday' is not a date", as_of="yesterday")
    refused("needs the time", as_of=None)
    refused("no model named 'repurchas'.*", RegistryError, model="repurchas")
    refused("has no version 9", RegistryError, version=9)
    refused("has no staging version", RegistryError, alias="staging")
    refused("cannot write", output=tmp_path / "scores.xlsx")
    refused("output folder .* does not exist", output=tmp_path / "no" / "s.parquet")


def test_cli_predict(retail: Project, customers: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "s.csv"
    args = ["predict", "repurchase", "--input", str(customers), "-p", str(retail.root)]
    ok = runner.invoke(app, [*args, "--as-of", AS_OF, "--output", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "scored 3,000 rows with repurchase@1" in ok.output
    assert len(pd.read_csv(out)) == 3000
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2
    assert "Traceback" not in bad.output
    unknown = runner.invoke(app, [*args, "--as-of", AS_OF, "--version", "7"])
    assert unknown.exit_code == 2


# --- a model without feature views -----------------------------------------------------


@pytest.fixture(scope="module")
def income(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("batch") / "income"
    shutil.copytree(REPO / "examples" / "income", root, ignore=shutil.ignore_patterns(".boite"))
    project = open_project(root)
    project.run()
    version = project.train("income", trials=0).version
    project.promote(version.ref, to="production", reason="tests", force=True)
    yield project
    project.close()


def test_income_features_come_from_the_input(income: Project, tmp_path: Path) -> None:
    people = income.dataset("people").to_pandas().head(500)
    source = tmp_path / "people.jsonl"
    people.to_json(source, orient="records", lines=True)
    result = score_batch(income, "income", source, output=tmp_path / "s.parquet", chunk_rows=128)
    assert result.chunks == 4
    scores = pq.read_table(tmp_path / "s.parquet").to_pandas()
    assert list(scores.columns) == [*people.columns, "score"]
    mv = income.models.registry.get("income@1")
    expected = income.models.predictor(mv).scores(people)
    np.testing.assert_allclose(scores["score"].to_numpy(), expected, rtol=0, atol=1e-12)
    # a dataset of the project as the input, consumed by the run
    again = score_batch(income, "income", "people", chunk_rows=20_000)
    assert again.rows == income.dataset("people").rows
    assert ("dataset", "people") in {
        (a.kind, a.name) for a in income.ledger.inputs_of(again.run_id)
    }
    missing = tmp_path / "few.csv"
    people[["age"]].to_csv(missing, index=False)
    with pytest.raises(UserError, match="lacks the columns"):
        score_batch(income, "income", missing)
