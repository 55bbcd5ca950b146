"""The income and shop examples served from staging and production over real HTTP.

Each example is copied and built once, its served model trained twice (two parameter
sets, so two versions), and the versions promoted: the first to production, the second
to staging and, in production, to the challenger that scores every request in shadow.
Both environments are then served at once on two ports of 127.0.0.1, and the test
checks that the answers are the models' own in process, that the prediction log in the
ledger holds each champion row and each shadow row, and that labels posted to the
feedback endpoint land in the ledger as a ``feedback`` artifact. (retail is covered
by tests/serving.)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pandas as pd
import pytest

import boite
from boite.pipeline.project import Project
from boite.registry.registry import ModelVersion

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).parents[2] / "examples"


def build(tmp_path_factory: pytest.TempPathFactory, example: str) -> Path:
    root = tmp_path_factory.mktemp(example) / example
    shutil.copytree(
        EXAMPLES / example, root, ignore=shutil.ignore_patterns(".boite", "__pycache__")
    )
    project = boite.open_project(root)
    try:
        report = project.run()
        assert report.ok, [(o.name, o.detail) for o in report.outcomes]
    finally:
        project.close()
    return root


def train_twice(root: Path, model: str, params: str, other: str) -> tuple[int, int]:
    """``model`` trained with ``params`` (a line of boite.yaml), then with ``other`` in its
    place: two versions, whose numbers are returned."""
    versions = []
    for edit in (None, other):
        if edit is not None:
            config = root / "boite.yaml"
            text = config.read_text(encoding="utf-8")
            assert params in text
            config.write_text(text.replace(params, edit, 1), encoding="utf-8")
        project = boite.open_project(root)  # the configuration is read when opened
        try:
            result = project.train(model, trials=0)
            assert result.gates.passed, [g.message for g in result.gates.failed]
            versions.append(result.version.version)
        finally:
            project.close()
    first, second = versions
    assert first != second
    return first, second


def promote(project: Project, model: str, production: int, challenger: int) -> None:
    project.promote(f"{model}@{production}", to="production", reason="first")
    project.promote(f"{model}@{challenger}", to="staging", reason="the new parameters")
    # a challenger need not beat production: only its own gates must pass
    project.promote(f"{model}@{challenger}", to="challenger", reason="judge it on live traffic")


@dataclass
class Served:
    """An example's project, its two versions, and what its serving session sent and got."""

    project: Project
    production: int
    challenger: int
    sent: Any = None  # what each request asked about: a frame of features, or users
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # by request id
    feedback: dict[str, Any] = field(default_factory=dict)

    def version(self, model: str, number: int) -> ModelVersion:
        return self.project.models.registry.get(f"{model}@{number}")

    def predictor(self, model: str, number: int) -> Any:
        return self.project.models.predictor(self.version(model, number))


def post(client: httpx.Client, path: str, body: dict[str, Any], rid: str) -> dict[str, Any]:
    answer = client.post(path, json=body, headers={"x-request-id": rid})
    assert answer.status_code == 200, answer.text
    content = answer.json()
    assert content["request_id"] == rid
    return content


def log_rows(project: Project, model: str, prefix: str) -> list[tuple[Any, ...]]:
    """(env, role, version, served, rows) of the request ids starting with ``prefix``."""
    records = project.ledger.versions("prediction_log", model)
    envs = {r.id: (r.meta or {}).get("env") for r in records}
    paths = {str(project.store.local_path(r.uri, r.content_hash)): r.id for r in records}
    with duckdb.connect() as con:
        con.register(
            "envs", pd.DataFrame({"path": list(paths), "env": [envs[i] for i in paths.values()]})
        )
        return con.sql(
            "SELECT e.env, l.role, l.version, l.served, count(*) "
            f"FROM read_parquet({list(paths)!r}, union_by_name=true, filename=true) AS l "
            "JOIN envs AS e ON l.filename = e.path "
            f"WHERE l.request_id LIKE '{prefix}%' GROUP BY ALL ORDER BY ALL"
        ).fetchall()


def logged(project: Project, model: str, role: str, request_id: str) -> pd.DataFrame:
    records = project.ledger.versions("prediction_log", model)
    paths = [str(project.store.local_path(r.uri, r.content_hash)) for r in records]
    return (
        duckdb.sql(
            f"SELECT * FROM read_parquet({paths!r}, union_by_name=true) "
            f"WHERE role = '{role}' AND request_id = '{request_id}' ORDER BY row"
        )
        .df()
        .reset_index(drop=True)
    )


def feedback_landed(served: Served, model: str, rows: int) -> None:
    """The labels posted over HTTP are a ``feedback`` artifact, fed by the log."""
    body = served.feedback
    project = served.project
    (record,) = project.ledger.versions("feedback", model)
    assert body["feedback"] == record.ref
    assert (record.meta or {})["matched_by_id"] == rows
    stored = pd.read_parquet(project.store.local_path(record.uri, record.content_hash))
    assert len(stored) == rows
    consumed = project.ledger.inputs_of(body["run_id"])
    assert consumed and {a.kind for a in consumed} == {"prediction_log"}
    (run,) = project.ledger.runs(step=f"feedback:{model}")
    assert run.status == "succeeded"


# --- income: inline features, no feature view ---------------------------------------

INCOME_ROWS = 6


@pytest.fixture(scope="module")
def income(tmp_path_factory: pytest.TempPathFactory, serve: Any) -> Iterator[Served]:
    root = build(tmp_path_factory, "income")
    first, second = train_twice(
        root,
        "income",
        "params: {n_estimators: 100, learning_rate: 0.1, num_leaves: 31}",
        "params: {n_estimators: 60, learning_rate: 0.15, num_leaves: 15}",
    )
    project = boite.open_project(root)
    promote(project, "income", first, second)
    served = Served(project, first, second)
    people = project.dataset("people").to_pandas()
    # both labels, and rows with an unknown occupation: missing values go through as null
    known = people.dropna()
    sample = pd.concat(
        [
            people[people["occupation"].isna()].head(2),
            known[known["high_income"] == 1].head(2),
            known[known["high_income"] == 0].head(2),
        ]
    )
    assert len(sample) == INCOME_ROWS
    features = list(served.predictor("income", first).features)
    assert list(served.predictor("income", second).features) == features
    inline = sample[features].astype(object).where(sample[features].notna(), None)
    body = {"features": inline.to_dict("records")}
    with (
        serve(root, "staging") as staging,
        serve(root, "production") as production,
        httpx.Client(base_url=staging.url, timeout=30) as to_staging,
        httpx.Client(base_url=production.url, timeout=30) as to_production,
    ):
        for i in range(3):
            for client, env in ((to_staging, "staging"), (to_production, "production")):
                rid = f"income-{env}-{i}"
                served.answers[rid] = post(client, "/v1/models/income/predict", body, rid)
        labels = [
            {"request_id": "income-production-0", "row": i, "high_income": int(y)}
            for i, y in enumerate(sample["high_income"])
        ]
        answer = to_production.post("/v1/models/income/feedback", json={"labels": labels})
        assert answer.status_code == 200, answer.text
        served.feedback = answer.json()
    served.sent = sample[features].reset_index(drop=True)
    yield served
    project.close()


def test_income_answers_are_the_models_in_process(income: Served) -> None:
    frame = income.sent
    for env, number in (("staging", income.challenger), ("production", income.production)):
        expected = income.predictor("income", number).scores(frame)
        for i in range(3):
            body = income.answers[f"income-{env}-{i}"]
            assert (body["version"], body["role"]) == (number, "champion")
            np.testing.assert_allclose(body["predictions"], expected, rtol=1e-12)
    staged = income.answers["income-staging-0"]["predictions"]
    assert staged != pytest.approx(income.answers["income-production-0"]["predictions"])


def test_income_log_holds_champion_and_shadow_rows(income: Served) -> None:
    n = 3 * INCOME_ROWS
    first, second = income.production, income.challenger
    assert log_rows(income.project, "income", "income-") == [
        ("production", "champion", first, True, n),
        ("production", "shadow", second, False, n),
        ("staging", "champion", second, True, n),
    ]
    # the shadow scored as the challenger does in process, on the features it was sent
    frame = income.sent
    shadow = logged(income.project, "income", "shadow", "income-production-1")
    np.testing.assert_allclose(
        shadow["prediction"], income.predictor("income", second).scores(frame), rtol=1e-12
    )
    assert shadow["age"].tolist() == frame["age"].tolist()
    # each partition came from a log run that consumed the version it logged
    ledger = income.project.ledger
    log_runs = ledger.runs(step="log:income")
    assert log_runs and all(r.status == "succeeded" for r in log_runs)
    consumed = {a.ref for r in log_runs for a in ledger.inputs_of(r.id)}
    assert consumed == {f"income@{first}", f"income@{second}"}
    for env in ("staging", "production"):
        (session,) = ledger.runs(step=f"serve:{env}")
        assert session.status == "succeeded"


def test_income_feedback_lands_in_the_ledger(income: Served) -> None:
    body = income.feedback
    assert body["matched_by_id"] == INCOME_ROWS and body["unmatched"] == 0
    champion = [m for m in body["live"] if m["role"] == "champion"]
    assert champion and champion[0]["version"] == f"income@{income.production}"
    assert champion[0]["rows"] == INCOME_ROWS and "roc_auc" in champion[0]["metrics"]
    feedback_landed(income, "income", INCOME_ROWS)


# --- shop: customer ids, recommendations, the best sellers for a new customer -------

NEW = "no-such-customer"
SHOP_REQUESTS = 3


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, serve: Any) -> Iterator[Served]:
    root = build(tmp_path_factory, "shop")
    first, second = train_twice(
        root,
        "recommend",
        "params: {factors: 64, iterations: 15, regularization: 0.05, alpha: 10}",
        "params: {factors: 32, iterations: 10, regularization: 0.1, alpha: 10}",
    )
    project = boite.open_project(root)
    promote(project, "recommend", first, second)
    popular = project.train("popular").version
    assert popular.version == 1  # the tests below name it popular@1
    project.promote(popular.ref, to="production", reason="the baseline")
    served = Served(project, first, second)
    recommender = served.predictor("recommend", first)
    users = recommender.users.tolist()
    # the customer who bought the most products has bought some of the best sellers
    busiest = users[int(np.argmax(np.diff(recommender.state["seen_indptr"])))]
    served.sent = [users[0], busiest, users[-1], NEW]
    entities = [{"customer_id": u} for u in served.sent]
    with (
        serve(root, "staging") as staging,
        serve(root, "production") as production,
        httpx.Client(base_url=staging.url, timeout=30) as to_staging,
        httpx.Client(base_url=production.url, timeout=30) as to_production,
    ):
        body = {"entities": entities}
        for i in range(SHOP_REQUESTS):
            for client, env in ((to_staging, "staging"), (to_production, "production")):
                rid = f"shop-{env}-{i}"
                served.answers[rid] = post(client, "/v1/models/recommend/predict", body, rid)
            rid = f"shop-popular-{i}"
            served.answers[rid] = post(to_production, "/v1/models/popular/predict", body, rid)
        # an integer customer id is the same customer as its text
        as_number = [{"customer_id": int(served.sent[0])}]
        served.answers["shop-number"] = post(
            to_production, "/v1/models/recommend/predict", {"entities": as_number}, "shop-number"
        )
        # staging serves only the recommender
        missing = to_staging.post("/v1/models/popular/predict", json=body)
        assert missing.status_code == 404 and missing.json()["field"] == "model_name"
        labels = [
            {"request_id": "shop-production-0", "row": i, "quantity": i + 1}
            for i in range(len(entities))
        ]
        answer = to_production.post("/v1/models/recommend/feedback", json={"labels": labels})
        assert answer.status_code == 200, answer.text
        served.feedback = answer.json()
    yield served
    project.close()


def test_shop_answers_are_the_models_in_process(shop: Served) -> None:
    users = shop.sent
    for env, number in (("staging", shop.challenger), ("production", shop.production)):
        expected = shop.predictor("recommend", number).recommend(users, 10)
        for i in range(SHOP_REQUESTS):
            body = shop.answers[f"shop-{env}-{i}"]
            assert (body["version"], body["role"]) == (number, "champion")
            assert body["predictions"] == expected
            assert all(len(items) == 10 for items in body["predictions"])
    staged, produced = (
        shop.answers[f"shop-{env}-0"]["predictions"] for env in ("staging", "production")
    )
    assert staged[:3] != produced[:3]  # two versions, two answers for known customers
    assert shop.answers["shop-number"]["predictions"] == produced[:1]
    popular = shop.predictor("popular", 1)
    assert shop.answers["shop-popular-0"]["predictions"] == popular.recommend(users, 10)


def test_shop_new_customer_gets_the_best_sellers(shop: Served) -> None:
    new = shop.sent.index(NEW)
    best = shop.answers["shop-popular-0"]["predictions"][new]
    for env in ("staging", "production"):
        assert shop.answers[f"shop-{env}-0"]["predictions"][new] == best
    popular = shop.predictor("popular", 1)
    counts = dict(zip(popular.items.tolist(), popular.state["popularity"].tolist(), strict=True))
    rest = [c for item, c in counts.items() if item not in best]
    assert len(best) == 10 and min(counts[item] for item in best) >= max(rest)
    # a known customer is not offered what they already bought
    busiest = shop.answers["shop-popular-0"]["predictions"][1]
    bought = popular.items[popular._seen(popular.users.tolist().index(shop.sent[1]))]
    assert busiest != best and not set(busiest) & set(bought.tolist())


def test_shop_log_holds_champion_and_shadow_rows(shop: Served) -> None:
    n = SHOP_REQUESTS * len(shop.sent)
    first, second = shop.production, shop.challenger
    assert log_rows(shop.project, "recommend", "shop-") == [
        ("production", "champion", first, True, n + 1),
        ("production", "shadow", second, False, n + 1),
        ("staging", "champion", second, True, n),
    ]
    assert log_rows(shop.project, "popular", "shop-") == [("production", "champion", 1, True, n)]
    shadow = logged(shop.project, "recommend", "shadow", "shop-production-1")
    assert shadow["customer_id"].tolist() == shop.sent
    expected = shop.predictor("recommend", second).recommend(shop.sent, 10)
    assert [json.loads(o) for o in shadow["output"]] == expected


def test_shop_feedback_lands_in_the_ledger(shop: Served) -> None:
    rows = len(shop.sent)
    body = shop.feedback
    assert body["matched_by_id"] == rows and body["unmatched"] == 0
    assert f"recommend@{shop.production}" in {m["version"] for m in body["live"]}
    feedback_landed(shop, "recommend", rows)
