"""The registry on a real SQLite ledger: versions NAME@N, aliases and their full history.

Versions are registered as the trainer registers them (a run producing an artifact of
kind 'model'); alias moves are judged only by what the registry stores.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from boite.core import ledger_schema as t
from boite.core.ledger import SUCCEEDED, Ledger, NewArtifact
from boite.errors import RegistryError
from boite.registry.registry import ALIASES, MODEL, ModelVersion, Registry, parse_ref


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger("sqlite:///ledger.db", root=tmp_path)
    yield ledger
    ledger.close()


def register(ledger: Ledger, name: str, *, tag: str = "", **meta: object) -> ModelVersion:
    """One training run producing one new model version."""
    run_id = ledger.start_run(f"train:{name}", "train")
    count = len(ledger.versions(MODEL, name))
    digest = hashlib.sha256(f"{name}:{count}:{tag}".encode()).hexdigest()
    (record,) = ledger.finish_run(
        run_id,
        status=SUCCEEDED,
        produced=[
            NewArtifact(
                kind=MODEL,
                name=name,
                content_hash=digest,
                uri=f".boite/artifacts/{digest[:2]}/{digest}.model.zip",
                format="boite-model",
                meta={"metrics": {"roc_auc": 0.7 + count / 100}, **meta},
            )
        ],
    )
    return ModelVersion(record)


def test_parse_ref() -> None:
    assert parse_ref("churn@12") == ("churn", 12)
    assert parse_ref("churn") == ("churn", None)
    for bad in ("churn@", "churn@latest", "churn@-1", "churn@1.5"):
        with pytest.raises(RegistryError, match="is not a model version") as info:
            parse_ref(bad)
        assert "NAME@N" in (info.value.hint or "")


def test_versions_are_numbered_per_model(ledger: Ledger) -> None:
    registry = Registry(ledger)
    a1, a2 = register(ledger, "a"), register(ledger, "a")
    b1 = register(ledger, "b")
    assert [a1.ref, a2.ref, b1.ref] == ["a@1", "a@2", "b@1"]
    assert [v.version for v in registry.versions("a")] == [1, 2]
    assert registry.versions("nothing") == []
    assert {n: v.ref for n, v in registry.models().items()} == {"a": "a@2", "b": "b@1"}
    assert registry.get("a") == a2 and registry.get("a@1") == a1
    assert registry.get("a@1").metrics == {"roc_auc": 0.7}
    assert registry.get("a@1").gates == {}


def test_get_says_what_exists(ledger: Ledger) -> None:
    registry = Registry(ledger)
    with pytest.raises(RegistryError, match="no model named 'churn'") as info:
        registry.get("churn@1")
    assert "boite train" in (info.value.hint or "")
    register(ledger, "churn")
    register(ledger, "churn")
    with pytest.raises(RegistryError, match="no model named 'chrun'") as info:
        registry.get("chrun")
    assert "Did you mean 'churn'?" in (info.value.hint or "")
    with pytest.raises(RegistryError, match="'churn' has no version 7") as info:
        registry.get("churn@7")
    assert info.value.model_version == "churn@7"
    assert "@1, @2" in (info.value.hint or "")


def test_a_move_sets_the_alias_and_records_who_when_why(ledger: Ledger) -> None:
    registry = Registry(ledger)
    v1, v2 = register(ledger, "m"), register(ledger, "m")
    before = datetime.now(UTC)
    event = registry.move(v1, "production", actor="ann", reason="first", details={"k": 1})
    assert (event.model, event.alias, event.version, event.previous_version) == (
        "m",
        "production",
        1,
        None,
    )
    assert event.actor == "ann" and event.reason == "first" and not event.forced
    assert before <= event.at <= datetime.now(UTC)
    second = registry.move(v2, "production", actor="bob", reason="better", forced=True)
    assert second.previous_version == 1 and second.forced
    registry.move(v1, "challenger", actor="ann", reason="keep it warm")
    assert registry.aliases() == {"m": {"production": 2, "challenger": 1}}
    assert registry.aliases("m") == registry.aliases()
    assert registry.alias("m", "production") == v2
    assert registry.alias("m", "staging") is None
    history = registry.history("m")
    assert [(e.alias, e.version, e.previous_version, e.actor, e.forced) for e in history] == [
        ("production", 1, None, "ann", False),
        ("production", 2, 1, "bob", True),
        ("challenger", 1, None, "ann", False),
    ]
    assert history[0].details == {"k": 1} and history[1].details is None
    assert all(e.at.tzinfo is not None for e in history)
    assert [e.version for e in registry.history("m", alias="production")] == [1, 2]
    # one row per (model, alias): the current pointer, never two
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(t.aliases.c.alias, t.aliases.c.version)).all()
    assert sorted(rows) == [("challenger", 1), ("production", 2)]


def test_aliases_of_two_models_are_independent(ledger: Ledger) -> None:
    registry = Registry(ledger)
    a, b = register(ledger, "a"), register(ledger, "b")
    registry.move(a, "production", actor="x", reason="a")
    registry.move(b, "production", actor="x", reason="b")
    assert registry.aliases() == {"a": {"production": 1}, "b": {"production": 1}}
    assert [e.model for e in registry.history("a")] == ["a"]
    assert registry.history("b")[0].previous_version is None


def test_a_refused_move_leaves_no_trace(ledger: Ledger) -> None:
    registry = Registry(ledger)
    v1 = register(ledger, "m")
    with pytest.raises(RegistryError, match="'prodution' is not an alias") as info:
        registry.move(v1, "prodution", actor="x", reason="r")
    assert "Did you mean 'production'?" in (info.value.hint or "")
    assert all(a in (info.value.hint or "") for a in ALIASES)
    with pytest.raises(RegistryError, match="needs a reason"):
        registry.move(v1, "production", actor="x", reason="   ")
    assert registry.history("m") == [] and registry.aliases() == {}


def test_alias_at_answers_what_was_in_production_at_a_moment(ledger: Ledger) -> None:
    registry = Registry(ledger)
    v1, v2, v3 = (register(ledger, "m") for _ in range(3))
    moments = []
    for version in (v1, v2, v3, v1):
        moments.append(datetime.now(UTC))
        time.sleep(0.005)
        registry.move(version, "production", actor="x", reason="move")
        time.sleep(0.005)
    moments.append(datetime.now(UTC))
    assert [registry.alias_at("m", "production", m) for m in moments] == [None, 1, 2, 3, 1]
    events = registry.history("m")
    # the moment of a move itself already has the new version
    assert [registry.alias_at("m", "production", e.at) for e in events] == [1, 2, 3, 1]
    # naive times are UTC; other offsets are converted
    assert registry.alias_at("m", "production", moments[2].replace(tzinfo=None)) == 2
    paris = moments[3].astimezone(timezone(timedelta(hours=2)))
    assert registry.alias_at("m", "production", paris) == 3
    assert registry.alias_at("m", "staging", moments[-1]) is None
    assert registry.alias_at("other", "production", moments[-1]) is None


def test_the_history_outlives_the_process(tmp_path: Path) -> None:
    ledger = Ledger("sqlite:///ledger.db", root=tmp_path)
    v1 = register(ledger, "m")
    Registry(ledger).move(v1, "staging", actor="ann", reason="try it")
    ledger.close()
    again = Ledger("sqlite:///ledger.db", root=tmp_path)
    registry = Registry(again)
    (event,) = registry.history("m")
    assert (event.alias, event.version, event.actor, event.reason) == (
        "staging",
        1,
        "ann",
        "try it",
    )
    assert registry.alias("m", "staging") == v1
    # the version answers what trained it
    run = again.run(registry.alias("m", "staging").record.run_id)
    assert run.step == "train:m" and run.kind == "train"
    again.close()
