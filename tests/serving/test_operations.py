"""Alias moves while serving, traffic splits, tokens, the fuzzer, a third-party OIP client,
several workers, and the prediction log's flushing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from retail_copy import copy_retail

from boite.errors import ConfigError, RequestError
from boite.pipeline.project import open_project
from boite.serving.auth import Tokens
from boite.serving.routing import bucket
from boite.serving.server import _nodelay

pytestmark = pytest.mark.slow
PREDICT = "/v1/models/repurchase/predict"
ONE = {"entities": [{"customer_id": "00042"}]}


def copy_project(retail_root: Path, tmp_path: Path, environments: str) -> Path:
    root = tmp_path / "retail"
    copy_retail(retail_root, root)
    text = (root / "boite.yaml").read_text()
    text = text[: text.index("environments:")] + environments
    (root / "boite.yaml").write_text(text)
    return root


def start_serve(root: Path, *options: str, **popen: Any) -> tuple[subprocess.Popen[Any], str]:
    """``boite serve`` as a user starts it, in its own process group, once it is ready."""
    from boite.serving.traffic import free_port

    port = free_port()
    command = [str(Path(sys.executable).parent / "boite"), "serve", "--port", str(port)]
    process = subprocess.Popen([*command, *options], cwd=root, start_new_session=True, **popen)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)


def test_an_alias_move_switches_versions_without_dropping_a_request(
    retail_root: Path, tmp_path: Path, serve: Any
) -> None:
    root = copy_project(
        retail_root,
        tmp_path,
        "environments:\n  production:\n    serve: {repurchase: production}\n"
        "    reload_seconds: 0.2\n",
    )
    seen: list[int] = []
    errors: list[str] = []
    with serve(root) as server:
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                deadline = time.monotonic() + 60
                while not stop.is_set() and time.monotonic() < deadline:
                    r = c.post(PREDICT, json=ONE)
                    if r.status_code != 200:
                        errors.append(r.text)
                    else:
                        seen.append(r.json()["version"])

        thread = threading.Thread(target=traffic)
        thread.start()
        time.sleep(0.5)
        other = open_project(root)
        other.promote("repurchase@2", to="production", reason="switch", force=True)
        other.close()
        deadline = time.monotonic() + 30
        while (not seen or seen[-1] != 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join()
    assert not errors
    assert seen[0] == 1 and seen[-1] == 2
    # once switched, it stays switched
    assert seen[seen.index(2) :] == [2] * len(seen[seen.index(2) :])


def test_a_split_sends_a_stable_share_to_the_challenger(
    retail_root: Path, tmp_path: Path, serve: Any
) -> None:
    root = copy_project(
        retail_root,
        tmp_path,
        "environments:\n  production:\n    serve: {repurchase: production}\n"
        "    split: {repurchase: {share: 0.3, by: customer_id}}\n",
    )
    customers = [f"{i:05d}" for i in range(1, 201)]
    with serve(root) as server, httpx.Client(base_url=server.url) as c:
        first = {
            cid: c.post(PREDICT, json={"entities": [{"customer_id": cid}]}).json()
            for cid in customers
        }
        again = {
            cid: c.post(PREDICT, json={"entities": [{"customer_id": cid}]}).json()["version"]
            for cid in customers[:50]
        }
    versions = {cid: body["version"] for cid, body in first.items()}
    assert {cid: versions[cid] for cid in again} == again  # the same customer, the same model
    share = sum(v == 2 for v in versions.values()) / len(versions)
    assert 0.18 < share < 0.42
    expected = {cid: 2 if bucket("repurchase", cid) < 0.3 else 1 for cid in customers}
    assert versions == expected
    assert {b["role"] for b in first.values()} == {"champion", "challenger"}


def test_bucket_is_uniform_and_salted_by_model() -> None:
    values = np.array([bucket("m", str(i)) for i in range(20_000)])
    assert abs(values.mean() - 0.5) < 0.01 and values.min() >= 0 and values.max() < 1
    other = np.array([bucket("n", str(i)) for i in range(20_000)])
    assert abs(np.corrcoef(values, other)[0, 1]) < 0.03


def test_tokens_guard_everything_but_health(
    retail_root: Path, tmp_path: Path, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_project(
        retail_root,
        tmp_path,
        "environments:\n  production:\n    serve: {repurchase: production}\n"
        "    token_env: RETAIL_TOKENS\n",
    )
    monkeypatch.setenv(
        "RETAIL_TOKENS", "current-token-0123456789,old-token-0123456789@1990-01-01T00:00:00Z"
    )
    with serve(root) as server, httpx.Client(base_url=server.url) as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 200
        for path in ("/v2", "/v2/models/repurchase", "/metrics", "/v1/models"):
            answer = c.get(path)
            assert answer.status_code == 401 and "bearer token" in answer.json()["error"]
        missing = c.post(PREDICT, json=ONE)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = c.post(PREDICT, json=ONE, headers={"authorization": "Bearer nope-nope-nope-1"})
        assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]
        expired = c.post(
            PREDICT, json=ONE, headers={"authorization": "Bearer old-token-0123456789"}
        )
        assert expired.status_code == 401 and "expired" in expired.json()["error"]
        good = c.post(
            PREDICT, json=ONE, headers={"authorization": "Bearer current-token-0123456789"}
        )
        assert good.status_code == 200


def test_token_settings_are_checked() -> None:
    now = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
    with pytest.raises(ConfigError, match="empty or unset"):
        Tokens.parse("", variable="T", now=now)
    with pytest.raises(ConfigError, match="at least 16"):
        Tokens.parse("short", variable="T", now=now)
    with pytest.raises(ConfigError, match="ISO 8601"):
        Tokens.parse("0123456789abcdefgh@tomorrow", variable="T", now=now)
    tokens = Tokens.parse(
        "0123456789abcdefgh@2026-01-02T00:00:00", variable="T", now=lambda: now() + timedelta(2)
    )
    with pytest.raises(RequestError, match="expired"):
        tokens.check("Bearer 0123456789abcdefgh")
    with pytest.raises(RequestError, match="Bearer <token>"):
        tokens.check("Basic abc")


def test_schemathesis_finds_no_server_error(server: Any) -> None:
    """Fuzz every endpoint of the OpenAPI document over HTTP: any 5xx fails."""
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures: list[str] = []
    for operation in schema.get_all_operations():
        op = operation.ok()
        strategy = op.as_strategy()
        from hypothesis import HealthCheck, given, settings

        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            response = case.call(base_url=server.url, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.path}: {response.status_code} {response.text}"
                )

        run()
    assert not failures, failures[:5]


def test_a_third_party_oip_client_gets_the_right_scores(server: Any) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_model_ready("repurchase")
    meta = client.get_model_metadata("repurchase")
    assert meta["inputs"][0]["name"] == "customer_id"
    tensor = triton.InferInput("customer_id", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(["00042", "00001"], dtype=object), binary_data=False)
    result = client.infer(
        "repurchase",
        [tensor],
        outputs=[triton.InferRequestedOutput("score", binary_data=False)],
        request_id="triton-1",
    )
    expected = httpx.post(
        f"{server.url}{PREDICT}",
        json={"entities": [{"customer_id": "00042"}, {"customer_id": "00001"}]},
    ).json()["predictions"]
    np.testing.assert_allclose(result.as_numpy("score"), expected)
    assert result.get_response()["id"] == "triton-1"


def test_nodelay_is_set_on_accepted_connections() -> None:
    """What the worker protocol does to each connection, on a real TCP connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0

        class Transport:
            def get_extra_info(self, name: str) -> Any:
                return accepted if name == "socket" else None

        _nodelay(Transport())
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        for s in (client, accepted, listener):
            s.close()


def test_boite_serve_with_two_workers_answers_and_shuts_down_cleanly(
    retail_root: Path, tmp_path: Path
) -> None:
    root = copy_project(
        retail_root,
        tmp_path,
        "environments:\n  production:\n    serve: {repurchase: production}\n",
    )
    process, url = start_serve(
        root, "--env", "production", "--workers", "2", stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=url) as c:
            # a connection each, until both workers have answered (their log segments
            # show it): bounded at 200 requests
            sent, answered_by = 0, set()
            while sent < 200 and len(answered_by) < 2:
                for _ in range(10):
                    r = httpx.post(
                        f"{url}{PREDICT}", json=ONE, headers={"x-request-id": f"w-{sent}"}
                    )
                    assert r.status_code == 200
                    sent += 1
                time.sleep(1.5)  # a flush interval: the rows reach the segments
                workers = {str(w.pid) for w in psutil.Process(process.pid).children(True)}
                answered_by = {
                    p.parent.name.split("-")[1]
                    for p in (root / ".boite" / "log").glob("*/*.arrows")
                } & workers
            assert len(answered_by) == 2
            metrics = c.get("/metrics").text
            # labels for answers of both workers: the one taking them asks the other to
            # publish its log first, so that every label finds its answer
            labels = [{"request_id": f"w-{i}", "bought_again_90d": i % 2} for i in range(sent)]
            fed = c.post("/v1/models/repurchase/feedback", json={"labels": labels}, timeout=60)
            assert fed.status_code == 200, fed.text
            assert fed.json()["matched_by_id"] == sent and fed.json()["unmatched"] == 0
        assert "boite_requests_total" in metrics
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert '"status":200' in err  # the access log, one JSON line per request
    project = open_project(root)
    try:
        import duckdb

        paths = [
            str(project.store.local_path(r.uri, r.content_hash))
            for r in project.ledger.versions("prediction_log", "repurchase")
        ]
        logged = duckdb.sql(
            f"SELECT count(*) FROM read_parquet({paths!r}) WHERE request_id LIKE 'w-%'"
        ).fetchall()
        assert logged == [(sent,)]
    finally:
        project.close()


def test_an_entity_without_online_features_is_rejected_when_the_environment_says_so(
    retail_root: Path, tmp_path: Path, serve: Any
) -> None:
    root = copy_project(
        retail_root,
        tmp_path,
        "environments:\n  production:\n    serve: {repurchase: production}\n"
        "    on_missing: {repurchase: reject}\n",
    )
    with serve(root) as server, httpx.Client(base_url=server.url) as c:
        known = c.post(PREDICT, json=ONE)
        assert known.status_code == 200 and "warnings" not in known.json()
        unknown = c.post(
            PREDICT,
            json={"entities": [{"customer_id": "00042"}, {"customer_id": "no-such-customer"}]},
        )
        assert unknown.status_code == 422
        error = unknown.json()
        assert error["field"] == "entities[1]" and "customer_activity" in error["error"]
        assert "on_missing" in error["hint"]
        # its features sent inline, the same entity is scored
        inline = c.post(
            PREDICT,
            json={
                "features": [
                    {
                        "orders_30d": 0,
                        "spend_30d": 0.0,
                        "orders_90d": 0,
                        "spend_90d": 0.0,
                        "orders_365d": 1,
                        "spend_365d": 10.0,
                        "orders_total": 1,
                        "purchase_days_total": 1,
                        "days_since_last": 200,
                    }
                ]
            },
        )
        assert inline.status_code == 200, inline.text


def test_tritonclient_binary_tensors_by_default(server: Any) -> None:
    """tritonclient sends tensors as binary data unless told otherwise (Triton's binary
    data extension): text ids and float matrices both arrive intact."""
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    ids = triton.InferInput("customer_id", [3], "BYTES")
    ids.set_data_from_numpy(np.array(["00042", "00001", "23570"], dtype=object))
    result = client.infer("repurchase", [ids])
    expected = httpx.post(
        f"{server.url}{PREDICT}",
        json={"entities": [{"customer_id": c} for c in ("00042", "00001", "23570")]},
    ).json()["predictions"]
    np.testing.assert_allclose(result.as_numpy("score"), expected)
    # the features themselves, one FP32 tensor per feature, plus the key
    names = [
        "orders_30d", "spend_30d", "orders_90d", "spend_90d", "orders_365d", "spend_365d",
        "orders_total", "purchase_days_total", "days_since_last",
    ]  # fmt: skip
    values = np.array([[0, 0, 0, 0, 1, 10, 1, 1, 200]], dtype=np.float32)
    tensors = [triton.InferInput(n, [1], "FP32") for n in names]
    for i, tensor in enumerate(tensors):
        tensor.set_data_from_numpy(values[:, i])
    inline = client.infer("repurchase", tensors).as_numpy("score")
    by_json = httpx.post(
        f"{server.url}{PREDICT}",
        json={"features": [dict(zip(names, values[0].tolist(), strict=True))]},
    ).json()["predictions"]
    np.testing.assert_allclose(inline, by_json)


def test_bad_binary_tensors_are_4xx(server: Any) -> None:
    head = (
        b'{"inputs":[{"name":"customer_id","shape":[1],"datatype":"BYTES",'
        b'"parameters":{"binary_data_size":9}}]}'
    )
    for body, header, needle in [
        (head + b"\x05\x00\x00\x0000042", str(len(head)), None),
        (head + b"\x09\x00\x00\x0000042", str(len(head)), "ends early"),
        (head + b"\x05\x00\x00\x0000042xx", str(len(head)), "bytes of binary data follow"),
        (head, str(len(head) + 50), "Inference-Header-Content-Length"),
        (head + b"\x05\x00\x00\x0000042", "many", "Inference-Header-Content-Length"),
    ]:
        answer = httpx.post(
            f"{server.url}/v2/models/repurchase/infer",
            content=body,
            headers={"inference-header-content-length": header},
        )
        if needle is None:
            assert answer.status_code == 200, answer.text
        else:
            assert answer.status_code == 400, answer.text
            assert needle.lower() in answer.text.lower()


def test_an_environment_with_no_version_yet_is_not_ready(
    retail_root: Path, tmp_path: Path, serve: Any
) -> None:
    root = copy_project(
        retail_root, tmp_path, "environments:\n  staging:\n    serve: {repurchase: staging}\n"
    )
    with serve(root, "staging") as server, httpx.Client(base_url=server.url) as c:
        assert c.get("/v2/health/live").status_code == 200
        ready = c.get("/v2/health/ready")
        assert ready.status_code == 503 and "repurchase" in ready.json()["error"]
        answer = c.post(PREDICT, json=ONE)
        assert answer.status_code == 503
        assert "promote" in answer.json()["hint"] and "--to staging" in answer.json()["hint"]
        assert c.get("/v2/models/repurchase/ready").json()["ready"] is False


def test_a_killed_server_loses_at_most_the_last_flush_interval(
    retail_root: Path, tmp_path: Path
) -> None:
    """SIGKILL (no shutdown at all): every row answered more than one flush interval
    before the kill reaches the ledger when the log is next read (its segments are
    published then); what is there is whole, and published once."""
    root = copy_project(
        retail_root,
        tmp_path,
        "environments:\n  production:\n    serve: {repurchase: production}\n"
        "    log: {flush_seconds: 0.2}\n",
    )
    process, url = start_serve(
        root, "--no-access-log", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        with httpx.Client(base_url=url) as c:
            for i in range(30):
                assert c.post(PREDICT, json=ONE, headers={"x-request-id": f"k-{i}"}).is_success
            time.sleep(1.0)  # five flush intervals: these 30 must be on disk
            for i in range(30, 40):
                assert c.post(PREDICT, json=ONE, headers={"x-request-id": f"k-{i}"}).is_success
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    project = open_project(root)
    try:
        import duckdb

        from boite.pipeline.scoring import log_partitions

        # the copy may hold batch-scoring partitions; the served rows were not published
        before = {r.id for r in project.ledger.versions("prediction_log", "repurchase")}
        records, files = log_partitions(project, "repurchase")
        served = [r for r in records if r.id not in before]
        assert served and all(r.meta["recovered"] for r in served)
        assert log_partitions(project, "repurchase")[0] == records  # once
        assert not list((root / ".boite" / "log").iterdir())  # nothing left behind
        paths = [str(f) for f in files]
        logged = {
            row[0]
            for row in duckdb.sql(
                f"SELECT request_id FROM read_parquet({paths!r}) WHERE request_id LIKE 'k-%'"
            ).fetchall()
        }
        assert {f"k-{i}" for i in range(30)} <= logged
        assert logged <= {f"k-{i}" for i in range(40)}
        # the session's run was killed: the next open marks it as interrupted, not running
        project.ledger.interrupt_stale_runs()
        sessions = project.ledger.runs(step="serve:production")
        assert sessions and all(r.status != "running" for r in sessions)
    finally:
        project.close()


def test_too_many_rows_in_one_request_is_413(retail_root: Path, tmp_path: Path, serve: Any) -> None:
    root = copy_project(
        retail_root,
        tmp_path,
        "environments:\n  production:\n    serve: {repurchase: production}\n    max_rows: 2\n",
    )
    three = {"entities": [{"customer_id": c} for c in ("00001", "00002", "00003")]}
    with serve(root) as server, httpx.Client(base_url=server.url) as c:
        assert c.post(PREDICT, json={"entities": three["entities"][:2]}).status_code == 200
        answer = c.post(PREDICT, json=three)
        assert answer.status_code == 413
        assert answer.json()["field"] == "entities" and "at most 2" in answer.json()["error"]
        assert "boite predict" in answer.json()["hint"]


def test_boite_serve_refuses_an_unknown_environment(retail_root: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "boite"), "serve", "--env", "prod"],
        cwd=retail_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "there is no environment 'prod'" in result.stderr
    assert "Did you mean 'production'?" in result.stderr and "Traceback" not in result.stderr
