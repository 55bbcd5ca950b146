"""`boite features ...` through the real console script, on a small built project.

User errors exit 2 with a message on stderr and never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

import boite

MakeProject = Callable[..., Path]

BOITE = Path(sys.executable).parent / "boite"

SHOP = """\
name: shop
now: 2024-01-10T00:00:00Z
sources:
  events:
    path: data/events.csv
    columns: {cid: VARCHAR, ts: TIMESTAMP, amount: DOUBLE, n: INTEGER}
  sales:
    path: data/sales.csv
    columns: {cid: VARCHAR, store: INTEGER, ts: TIMESTAMP, qty: INTEGER}
feature_views:
  spend:
    entity: cid
    timestamp: ts
    source: events
    ttl: 3d
    freshness: 2d
    description: What a customer spends
    owner: growth
    tags: {team: growth}
  basket:
    entity: [cid, store]
    timestamp: ts
    source: sales
"""
FILES = {
    "data/events.csv": """\
        cid,ts,amount,n
        a,2024-01-01 00:00:00,1.0,1
        a,2024-01-05 12:00:00,5.0,5
        b,2024-01-02 00:00:00,20.0,2
        007,2024-01-09 00:00:00,70.5,7
        """,
    "data/sales.csv": """\
        cid,store,ts,qty
        a,1,2024-01-01 00:00:00,1
        a,2,2024-01-02 00:00:00,2
        """,
}


def boite_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BOITE_DEBUG", "COLUMNS")}
    return subprocess.run(
        [str(BOITE), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, output(result)
    assert "Traceback" not in output(result)
    return result.stdout


def assert_user_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, one paragraph on stderr, no traceback; returns stderr."""
    assert result.returncode == 2, output(result)
    assert "Traceback" not in output(result)
    err = result.stderr.strip()
    assert err.startswith("error:"), err
    assert "\n\n" not in err, err
    return err


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, make_project: MakeProject) -> Iterator[Path]:
    root = make_project(tmp_path_factory.mktemp("features-cli") / "shop", SHOP, files=FILES)
    project = boite.open_project(root)
    try:
        report = project.run()
        assert report.ok, [(o.name, str(o.error)) for o in report.failed]
        project.training_set(
            [{"cid": "a", "t": datetime(2024, 1, 6)}],
            ["spend:amount"],
            name="churn",
        )
    finally:
        project.close()
    yield root


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["features", "--help"], ["list", "show", "get", "materialize"]),
        (["features", "list", "--help"], ["--project"]),
        (["features", "show", "--help"], ["VIEW", "--project"]),
        (["features", "get", "--help"], ["--entity", "KEY=VALUE", "--feature"]),
        (["features", "materialize", "--help"], ["--full", "VIEWS"]),
    ],
)
def test_help_of_each_command(args: list[str], expected: list[str], tmp_path: Path) -> None:
    text = assert_ok(boite_cli(*args, cwd=tmp_path))
    for word in expected:
        assert word.lower() in text.lower(), (word, text)


def test_features_list(shop: Path) -> None:
    text = assert_ok(boite_cli("features", "list", cwd=shop))
    lines = {" ".join(line.split()[:2]): line for line in _rows(text)}
    assert set(lines) == {"spend amount", "spend n", "basket qty"}
    amount = lines["spend amount"]
    assert "DOUBLE" in amount and "growth" in amount and "2024-01-09 00:00:00" in amount
    assert "yes" in amount  # newest row a day old, SLA two days
    assert "training set churn@1" in amount
    assert "churn" not in lines["spend n"]


def test_features_show(shop: Path) -> None:
    text = assert_ok(boite_cli("features", "show", "spend", cwd=shop))
    for expected in (
        "feature view spend",
        "What a customer spends",
        "growth",
        "3d",
        "events@1 (4 rows)",
        "SLA 2d: met",
        "team=growth",
        "3 entities",
        "amount",
        "DOUBLE",
        "training set churn@1",
    ):
        assert expected in text, (expected, text)


def test_features_get_shows_the_values(shop: Path) -> None:
    text = assert_ok(
        boite_cli("features", "get", "spend", "--entity", "cid=007", "-e", "cid=nobody", cwd=shop)
    )
    rows = {line.split()[0]: line for line in _rows(text)}
    assert "70.5" in rows["007"] and "7" in rows["007"].split()
    assert "2024-01-09 00:00:00" in rows["007"]
    assert "missing" in rows["nobody"]
    assert "1 of 2 entities have no value" in text


def test_features_get_with_a_composite_key_and_one_feature(shop: Path) -> None:
    result = boite_cli(
        "features",
        "get",
        "basket",
        "-e",
        "cid=a,store=2",
        "-e",
        "cid=a,store=9",
        "-f",
        "qty",
        cwd=shop,
    )
    rows = [line.split() for line in _rows(assert_ok(result))]
    assert rows[0][:2] == ["a", "2"] and rows[0][-1] == "2"
    assert rows[1][:2] == ["a", "9"] and "missing" in rows[1]


@pytest.mark.parametrize("entity", ["cid", "cid=a,store"])
def test_bad_entity_text_is_a_user_error(entity: str, shop: Path) -> None:
    err = assert_user_error(boite_cli("features", "get", "spend", "--entity", entity, cwd=shop))
    assert "is not KEY=VALUE" in err and repr(entity) in err
    assert "--entity customer_id=00042" in err  # an example of what is allowed


def test_an_entity_without_the_views_key(shop: Path) -> None:
    err = assert_user_error(boite_cli("features", "get", "spend", "-e", "customer=a", cwd=shop))
    assert "'cid'" in err


def test_an_integer_key_that_is_not_a_number(shop: Path) -> None:
    err = assert_user_error(
        boite_cli("features", "get", "basket", "-e", "cid=a,store=two", cwd=shop)
    )
    assert "basket" in err


@pytest.mark.parametrize("command", ["get", "show"])
def test_an_unknown_view_suggests_the_right_one(command: str, shop: Path) -> None:
    args = ["features", command, "spnd"] + (["-e", "cid=a"] if command == "get" else [])
    err = assert_user_error(boite_cli(*args, cwd=shop))
    assert "'spnd'" in err and "Did you mean 'spend'?" in err


def test_materialize_full_rebuilds_every_online_view(shop: Path) -> None:
    text = assert_ok(boite_cli("features", "materialize", "--full", cwd=shop))
    assert "spend: 3 entities read, 3 updated (full rebuild)" in text
    assert "basket: 2 entities read, 2 updated (full rebuild)" in text
    again = assert_ok(boite_cli("features", "materialize", "spend", cwd=shop))
    assert again.strip() == "spend: 0 entities read, 0 updated"
    values = assert_ok(boite_cli("features", "get", "spend", "-e", "cid=007", cwd=shop))
    assert "70.5" in values


def _rows(text: str) -> list[str]:
    """The body rows of a rich table: the lines after the header rule."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("━"))
    body = []
    for line in lines[start + 1 :]:
        if "│" not in line:
            break
        body.append(line.replace("│", " "))
    return body
