"""Every task over HTTP: inline features (no feature view), multiclass, clustering, and
top-k recommendations, each equal to the model in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import boite

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
ADULT = REPO / "examples/income/data/adult/adult.csv.gz"

PROJECT = """\
name: tasks
sources:
  people: {path: data/people.csv}
  bought: {path: data/bought.csv}
models:
  income:
    task: binary_classification
    label: {dataset: people, column: income}
    features: [age, workclass, education_num, sex, hours_per_week]
    params: {n_estimators: 20}
  work:
    task: multiclass
    label: {dataset: people, column: workclass}
    features: [age, education_num, hours_per_week]
    params: {n_estimators: 10}
  segments:
    task: clustering
    label: {dataset: people}
    features: [age, education_num, hours_per_week]
    algorithm: kmeans
    params: {n_clusters: 4, n_init: 2, random_state: 0}
  shelf:
    task: recommendation
    label: {dataset: bought, column: n}
    user: user_id
    item: item_id
    features: [user_id, item_id]
    k: 5
    split: {by: random, test_size: 0.2, seed: 0}
    algorithm: als
    params: {factors: 8, iterations: 5}
environments:
  production:
    serve: {income: production, work: production, segments: production, shelf: production}
"""


def bought() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for user in range(200):
        group = user % 4
        items = np.concatenate([rng.choice(np.arange(group, 120, 4), 12), rng.choice(120, 4)])
        rows += [(f"u{user}", f"i{item}", 1) for item in np.unique(items)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "n"])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, make_project: Any) -> Any:
    people = pd.read_csv(ADULT, nrows=2000).drop(columns=["split"])
    people = people[people.workclass.isin(["Private", "Self-emp-not-inc", "Local-gov"])]
    root = make_project(
        tmp_path_factory.mktemp("tasks") / "p",
        PROJECT,
        files={
            "data/people.csv": people.to_csv(index=False),
            "data/bought.csv": bought().to_csv(index=False),
        },
    )
    proj = boite.open_project(root)
    proj.run()
    for name in ("income", "work", "segments", "shelf"):
        version = proj.train(name).version
        proj.promote(version.ref, to="production", reason="test", force=True)
    yield proj
    proj.close()


@pytest.fixture(scope="module")
def client(project: Any, serve: Any) -> Any:
    with serve(project.root) as server, httpx.Client(base_url=server.url) as c:
        yield c


ROWS = [
    {"age": 39, "workclass": "Private", "education_num": 13, "sex": "Male", "hours_per_week": 40},
    {"age": 52, "workclass": "Unknown", "education_num": 9, "sex": None, "hours_per_week": 60},
]


def in_process(project: Any, name: str, frame: pd.DataFrame) -> np.ndarray:
    version = project.models.registry.alias(name, "production")
    return project.models.predictor(version).scores(frame)


def test_inline_features(project: Any, client: Any) -> None:
    body = client.post("/v1/models/income/predict", json={"features": ROWS}).json()
    np.testing.assert_allclose(
        body["predictions"], in_process(project, "income", pd.DataFrame(ROWS))
    )
    entity = client.post("/v1/models/income/predict", json={"entities": [{"id": 1}]})
    assert entity.status_code == 400 and "takes no entities" in entity.json()["error"]
    infer = client.post(
        "/v2/models/income/infer",
        json={
            "inputs": [
                {"name": "age", "shape": [1], "datatype": "INT64", "data": [39]},
                {"name": "workclass", "shape": [1], "datatype": "BYTES", "data": ["Private"]},
                {"name": "education_num", "shape": [1], "datatype": "INT64", "data": [13]},
                {"name": "sex", "shape": [1], "datatype": "BYTES", "data": ["Male"]},
                {"name": "hours_per_week", "shape": [1], "datatype": "FP64", "data": [40.0]},
            ]
        },
    ).json()
    assert infer["outputs"][0]["data"] == pytest.approx(body["predictions"][:1])


def test_a_matrix_tensor_in_metadata_order(client: Any) -> None:
    meta = client.get("/v2/models/segments").json()
    names = [i["name"] for i in meta["inputs"]]
    assert names == ["age", "education_num", "hours_per_week"]
    answer = client.post(
        "/v2/models/segments/infer",
        json={
            "inputs": [
                {
                    "name": "x",
                    "shape": [2, 3],
                    "datatype": "FP64",
                    "data": [[39, 13, 40], [52, 9, 60]],
                }
            ]
        },
    ).json()
    by_name = client.post(
        "/v1/models/segments/predict",
        json={
            "features": [
                {"age": 39, "education_num": 13, "hours_per_week": 40},
                {"age": 52, "education_num": 9, "hours_per_week": 60},
            ]
        },
    ).json()
    assert answer["outputs"] == [
        {"name": "segment", "datatype": "INT64", "shape": [2], "data": by_name["predictions"]}
    ]
    assert all(isinstance(s, int) for s in by_name["predictions"])


def test_multiclass_answers_a_label_and_probabilities(project: Any, client: Any) -> None:
    rows = [{k: r[k] for k in ("age", "education_num", "hours_per_week")} for r in ROWS]
    body = client.post("/v1/models/work/predict", json={"features": rows}).json()
    expected = in_process(project, "work", pd.DataFrame(rows))
    for answer, probabilities in zip(body["predictions"], expected, strict=True):
        assert list(answer["probabilities"].values()) == pytest.approx(probabilities.tolist())
        assert answer["label"] == max(answer["probabilities"], key=answer["probabilities"].get)
    infer = client.post(
        "/v2/models/work/infer",
        json={
            "inputs": [
                {"name": n, "shape": [2], "datatype": "FP64", "data": [float(r[n]) for r in rows]}
                for n in rows[0]
            ]
        },
    ).json()
    labels, probs = infer["outputs"]
    assert labels["data"] == [a["label"] for a in body["predictions"]]
    assert probs["shape"] == [2, len(body["predictions"][0]["probabilities"])]


def test_recommendations_top_k(project: Any, client: Any) -> None:
    body = client.post(
        "/v1/models/shelf/predict", json={"entities": [{"user_id": "u1"}, {"user_id": "new"}]}
    ).json()
    known, new = body["predictions"]
    version = project.models.registry.alias("shelf", "production")
    recommender = project.models.predictor(version)
    assert known == recommender.recommend(["u1"], 5)[0] and len(known) == 5
    assert new == recommender.recommend(["new"], 5)[0]  # the best sellers
    infer = client.post(
        "/v2/models/shelf/infer",
        json={"inputs": [{"name": "user_id", "shape": [1], "datatype": "BYTES", "data": ["u1"]}]},
    ).json()
    assert infer["outputs"] == [
        {"name": "items", "datatype": "BYTES", "shape": [1, 5], "data": known}
    ]
