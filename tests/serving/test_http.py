"""The server over real HTTP: answers equal the model's own scores; every bad input a 4xx."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pytest

from boite.pipeline.project import open_project

Server = Any

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def expected_scores(server: Server, customers: list[str]) -> np.ndarray:
    """What the production model says for these customers' online features, in process."""
    project = server.project
    version = project.models.registry.alias("repurchase", "production")
    assert version is not None
    predictor = project.models.predictor(version)
    online = project.features.online_features(
        ["customer_activity:*"], [{"customer_id": c} for c in customers]
    )
    frame = online.to_pandas()
    return predictor.scores(frame)


def test_health_and_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "boite"
    meta = client.get("/v2/models/repurchase").json()
    assert meta["name"] == "repurchase" and meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [{"name": "customer_id", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "score", "datatype": "FP64", "shape": [-1]}]
    assert client.get("/v2/models/repurchase/ready").json()["ready"] is True
    assert client.get("/v2/models/repurchase/versions/2").json()["name"] == "repurchase"
    listed = client.get("/v1/models").json()
    assert listed["models"][0]["production"] == 1
    assert listed["models"][0]["challenger"] == {
        "alias": "challenger",
        "version": 2,
        "mode": "shadow",
    }


def test_predict_equals_the_model_in_process(server: Server, client: httpx.Client) -> None:
    customers = ["00042", "00001", "23570"]
    answer = client.post(
        "/v1/models/repurchase/predict", json={"entities": [{"customer_id": c} for c in customers]}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == 1 and body["role"] == "champion"
    np.testing.assert_allclose(body["predictions"], expected_scores(server, customers), rtol=1e-12)
    assert answer.headers["x-request-id"] == body["request_id"]


def test_oip_infer_equals_predict(client: httpx.Client) -> None:
    infer = client.post(
        "/v2/models/repurchase/infer",
        json={
            "id": "my-request-1",
            "inputs": [
                {
                    "name": "customer_id",
                    "shape": [2],
                    "datatype": "BYTES",
                    "data": ["00042", "00001"],
                }
            ],
        },
    ).json()
    assert infer["id"] == "my-request-1" and infer["model_version"] == "1"
    (out,) = infer["outputs"]
    assert out["name"] == "score" and out["shape"] == [2]
    predicted = client.post(
        "/v1/models/repurchase/predict",
        json={"entities": [{"customer_id": "00042"}, {"customer_id": "00001"}]},
    ).json()["predictions"]
    np.testing.assert_allclose(out["data"], predicted)


def test_inline_features_override_online_ones(server: Server, client: httpx.Client) -> None:
    online = server.project.features.online_features(
        ["customer_activity:*"], [{"customer_id": "00042"}]
    ).to_records()[0]
    inline = {k: v for k, v in online.items()}
    alone = client.post("/v1/models/repurchase/predict", json={"features": [inline]}).json()
    keyed = client.post(
        "/v1/models/repurchase/predict", json={"entities": [{"customer_id": "00042"}]}
    ).json()
    assert alone["predictions"] == pytest.approx(keyed["predictions"])
    changed = client.post(
        "/v1/models/repurchase/predict",
        json={"entities": [{"customer_id": "00042"}], "features": [{"days_since_last": 0}]},
    ).json()
    assert changed["predictions"] != pytest.approx(keyed["predictions"])


def test_unknown_entity_is_scored_with_missing_values_and_said(client: httpx.Client) -> None:
    body = client.post(
        "/v1/models/repurchase/predict",
        json={"entities": [{"customer_id": "00042"}, {"customer_id": "no-such-customer"}]},
    ).json()
    assert len(body["predictions"]) == 2 and all(math.isfinite(p) for p in body["predictions"])
    assert body["warnings"] == [
        {
            "row": 1,
            "missing_views": ["customer_activity"],
            "message": "no online features for this entity (unknown or expired); "
            "scored with them missing",
        }
    ]


def test_request_id_is_kept(client: httpx.Client) -> None:
    answer = client.post(
        "/v1/models/repurchase/predict",
        json={"entities": [{"customer_id": "00042"}]},
        headers={"x-request-id": "abc-123"},
    )
    assert answer.headers["x-request-id"] == "abc-123"
    assert answer.json()["request_id"] == "abc-123"


def _post(client: httpx.Client, path: str, content: bytes | str) -> httpx.Response:
    return client.post(path, content=content, headers={"content-type": "application/json"})


PREDICT = "/v1/models/repurchase/predict"
INFER = "/v2/models/repurchase/infer"


@pytest.mark.parametrize(
    ("path", "body", "status", "field", "needle"),
    [
        (PREDICT, "{not json", 400, "body", "not valid JSON"),
        (PREDICT, '{"entities": [{"customer_id": NaN}]}', 400, "body", "NaN"),
        (PREDICT, "", 400, "body", "no body"),
        (PREDICT, "[1, 2]", 400, "body", "JSON object"),
        (PREDICT, '{"rows": []}', 400, "rows", "unknown key"),
        (PREDICT, "{}", 400, "entities", "neither"),
        (PREDICT, '{"entities": []}', 400, "entities", "no rows"),
        (PREDICT, '{"entities": {"customer_id": "1"}}', 400, "entities", "array"),
        (PREDICT, '{"entities": [{"customer": "1"}]}', 400, "entities[0].customer_id", "lacks"),
        (
            PREDICT,
            '{"entities": [{"customer_id": "1", "orders_total": 3}]}',
            400,
            "entities[0].orders_total",
            "not an entity key",
        ),
        (PREDICT, '{"entities": [{"customer_id": 1.5}]}', 400, "entities[0].customer_id", "text"),
        (
            PREDICT,
            '{"entities": [{"customer_id": "1"}], "features": [{"orders_totl": 1}]}',
            400,
            "features[0].orders_totl",
            "did you mean 'orders_total'",
        ),
        (
            PREDICT,
            '{"features": [{"orders_total": 1}]}',
            400,
            "features[0].orders_30d",
            "lacks the feature",
        ),
        (
            PREDICT,
            '{"entities": [{"customer_id": "1"}], "features": [{"orders_total": "many"}]}',
            400,
            "features[0].orders_total",
            "must be a number",
        ),
        (
            PREDICT,
            '{"entities": [{"customer_id": "1"}], "features": [{"orders_total": 1e999}]}',
            400,
            "body",
            "infinity",
        ),
        (
            PREDICT,
            '{"entities": [{"customer_id": "1"}, {"customer_id": "2"}], "features": [{}]}',
            400,
            "features",
            "as long",
        ),
        (
            "/v1/models/repurchse/predict",
            '{"entities": [{"customer_id": "1"}]}',
            404,
            "model_name",
            "did you mean 'repurchase'",
        ),
        (
            "/v1/models/repurchase/versions/9/predict",
            '{"entities": [{"customer_id": "1"}]}',
            404,
            "model_version",
            "not served",
        ),
        (INFER, '{"inputs": []}', 400, "inputs", "non-empty"),
        (
            INFER,
            '{"inputs": [{"name": "customer_id", "shape": [1], "datatype": "BYTES"}]}',
            400,
            "inputs[0].data",
            "lacks",
        ),
        (
            INFER,
            '{"inputs": [{"name": "customer_id", "shape": [2], "datatype": "BYTES", '
            '"data": ["1"]}]}',
            400,
            "inputs[0].shape",
            "2 values",
        ),
        (
            INFER,
            '{"inputs": [{"name": "customer_id", "shape": [1], "datatype": "FP64", '
            '"data": ["1"]}]}',
            400,
            "inputs[0].data[0]",
            "a number",
        ),
        (
            INFER,
            '{"inputs": [{"name": "customer_id", "shape": [1], "datatype": "STRING", '
            '"data": ["1"]}]}',
            400,
            "inputs[0].datatype",
            "not an Open Inference Protocol datatype",
        ),
        (
            INFER,
            '{"inputs": [{"name": "customer_id", "shape": [1, 1, 1], "datatype": "BYTES", '
            '"data": ["1"]}]}',
            400,
            "inputs[0].shape",
            "[rows]",
        ),
        (
            INFER,
            '{"inputs": [{"name": "customer_id", "shape": [1], "datatype": "BYTES", '
            '"data": ["1"]}, {"name": "orders_total", "shape": [2], "datatype": "FP64", '
            '"data": [1, 2]}]}',
            400,
            "inputs[1].shape",
            "every input tensor",
        ),
        (
            INFER,
            '{"inputs": [{"name": "customer_id", "shape": [1], "datatype": "BYTES", '
            '"data": ["1"]}], "outputs": [{"name": "proba"}]}',
            400,
            "outputs[0].name",
            "no output",
        ),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_field(
    client: httpx.Client, path: str, body: str, status: int, field: str, needle: str
) -> None:
    answer = _post(client, path, body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert error.get("field") == field, error
    assert needle.lower() in (error["error"] + " " + error.get("hint", "")).lower(), error


def test_body_over_the_limit_is_413(client: httpx.Client) -> None:
    big = '{"entities": [' + ",".join(['{"customer_id": "00042"}'] * 60_000) + "]}"
    answer = _post(client, PREDICT, big)
    assert answer.status_code == 413 and answer.json()["field"] == "body"


def test_unknown_routes_and_methods_answer_json(client: httpx.Client) -> None:
    missing = client.get("/v3/anything")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = client.get(PREDICT)
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_metrics_count_requests_by_model_and_version(client: httpx.Client) -> None:
    client.post(PREDICT, json={"entities": [{"customer_id": "00042"}]})
    text = client.get("/metrics").text
    assert (
        'boite_requests_total{endpoint="predict",model="repurchase",status="200",version="1"}'
        in text
    )
    assert "boite_request_seconds_bucket" in text
    assert 'boite_predicted_rows_total{model="repurchase",role="champion",version="1"}' in text


def test_the_log_holds_champion_and_shadow_rows(retail_root: Path, serve: Any) -> None:
    """After a clean shutdown every answered row is in the ledger, and the challenger's too."""
    with serve(retail_root) as server, httpx.Client(base_url=server.url) as c:
        for i in range(5):
            r = c.post(
                PREDICT,
                json={"entities": [{"customer_id": "00042"}, {"customer_id": "00001"}]},
                headers={"x-request-id": f"log-test-{i}"},
            )
            assert r.status_code == 200
    project = open_project(retail_root)
    try:
        import duckdb

        records = project.ledger.versions("prediction_log", "repurchase")
        paths = [str(project.store.local_path(r.uri, r.content_hash)) for r in records]
        rows = duckdb.sql(
            f"SELECT role, version, served, count(*) AS n FROM read_parquet({paths!r}, "
            "union_by_name=true) WHERE request_id LIKE 'log-test-%' GROUP BY ALL ORDER BY role"
        ).fetchall()
        assert rows == [("champion", 1, True, 10), ("shadow", 2, False, 10)]
        log_runs = [r for r in project.ledger.runs(step="log:repurchase")]
        assert log_runs and all(r.status == "succeeded" for r in log_runs)
        consumed = {a.ref for r in log_runs for a in project.ledger.inputs_of(r.id)}
        assert consumed == {"repurchase@1", "repurchase@2"}
        serve_runs = project.ledger.runs(step="serve:production")
        assert serve_runs[0].status == "succeeded"
    finally:
        project.close()


def test_feedback_over_http_joins_the_log_by_request_id(client: httpx.Client) -> None:
    answer = client.post(
        PREDICT,
        json={"entities": [{"customer_id": "00042"}, {"customer_id": "00001"}]},
        headers={"x-request-id": "fb-1"},
    )
    assert answer.status_code == 200
    summary = client.post(
        "/v1/models/repurchase/feedback",
        json={
            "labels": [
                {"request_id": "fb-1", "row": 0, "bought_again_90d": 1},
                {"request_id": "fb-1", "row": 1, "bought_again_90d": 0},
                {"request_id": "never-served", "row": 0, "bought_again_90d": 1},
            ]
        },
    )
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["matched_by_id"] == 2 and body["unmatched"] == 1
    assert {m["role"] for m in body["live"]} >= {"champion"}
    bad = client.post("/v1/models/repurchase/feedback", json={"labels": [{"x": 1}]})
    assert 400 <= bad.status_code < 500 and "error" in bad.json()
    assert client.post("/v1/models/nope/feedback", json={"labels": [{"x": 1}]}).status_code == 404
    assert client.post("/v1/models/repurchase/feedback", json={"label": []}).status_code == 400


def test_champion_and_shadow_side_by_side_on_live_traffic(
    server: Server, client: httpx.Client
) -> None:
    from boite.pipeline.live import live_comparison

    for i in range(5):
        client.post(
            PREDICT,
            json={"entities": [{"customer_id": f"{i + 1:05d}"}]},
            headers={"x-request-id": f"live-{i}"},
        )
    time.sleep(0.3)  # the shadow scores after the answer has gone
    server.app.service.log.flush(publish=True)
    client.post(
        PREDICT,
        json={"entities": [{"customer_id": "00007"}]},
        headers={"x-request-id": "live-late"},
    )
    server.app.service.log.flush()  # on disk in a segment, not published: readers ask for it
    frame = live_comparison(server.project, "repurchase").set_index(["version", "role"])
    champion, shadow = frame.loc[(1, "champion")], frame.loc[(2, "shadow")]
    assert champion["rows"] >= 5 and shadow["rows"] >= 5
    assert shadow["paired_rows"] >= 5 and 0 <= shadow["mean_abs_difference"] < 1
    assert np.isnan(champion["paired_rows"])
    assert champion["latency_p50_ms"] > 0
    # the labels given in the feedback test: live metrics by version and role
    assert champion["labelled"] >= 2
    result = subprocess.run(
        [str(Path(sys.executable).parent / "boite"), "models", "compare", "repurchase", "--live"],
        cwd=server.project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "repurchase@2 shadow" in result.stdout and "mean_abs_difference" in result.stdout
    assert "held by a running server" not in " ".join(result.stdout.split())
    from boite.pipeline.scoring import log_partitions

    _, files = log_partitions(server.project, "repurchase")
    ids = duckdb.sql(f"SELECT request_id FROM read_parquet({[str(f) for f in files]!r})")
    assert ("live-late",) in ids.fetchall()  # published on the reader's request


def test_the_fastapi_routes_answer_as_the_fast_path(server: Server, client: httpx.Client) -> None:
    """The FastAPI routes behind the fast path (what the OpenAPI document describes, and
    what an app mounting boite's would reach) give the same answers."""
    import asyncio

    requests = [
        (PREDICT, b'{"entities": [{"customer_id": "00042"}]}'),
        (INFER, b'{"inputs": [{"name": "customer_id", "shape": [1], "datatype": "BYTES", '
                b'"data": ["00042"]}]}'),
        (PREDICT, b'{"entities": [{"customer": "1"}]}'),
        (INFER, b'{"inputs": []}'),
        ("/v1/models/repurchse/predict", b'{"entities": [{"customer_id": "1"}]}'),
    ]  # fmt: skip

    async def through_fastapi() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=server.app.api)
        async with httpx.AsyncClient(transport=transport, base_url="http://boite") as c:
            return [
                await c.post(path, content=body, headers={"x-request-id": "same"})
                for path, body in requests
            ]

    fast = [
        client.post(path, content=body, headers={"x-request-id": "same"}) for path, body in requests
    ]
    for direct, routed in zip(fast, asyncio.run(through_fastapi()), strict=True):
        assert routed.status_code == direct.status_code
        assert routed.json() == direct.json()
        assert routed.headers["x-request-id"] == "same"
