"""The income example end to end: the Adult census data, two models, one fairness limit.

`income` (without sex, race and their proxies) must pass every gate; `income_biased` (the same
model with sex and race) must fail only its fairness gate, by sex, and so be refused production
unless forced. The project is copied and built once; both models train with two search trials.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import boite
from boite.errors import RegistryError
from boite.pipeline.modeling import TrainResult
from boite.pipeline.project import Project
from boite.registry.card import model_card_markdown

pytestmark = pytest.mark.slow

INCOME = Path(__file__).parents[2] / "examples/income"
SENSITIVE = {"sex", "race"}
PROXIES = {"relationship", "marital_status", "fnlwgt"}


@dataclass
class Trained:
    project: Project
    income: TrainResult
    biased: TrainResult


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("income") / "income"
    shutil.copytree(INCOME, root, ignore=shutil.ignore_patterns(".boite", "__pycache__"))
    project = boite.open_project(root)
    report = project.run()
    assert report.ok, [(o.name, o.detail) for o in report.outcomes]
    assert [o.name for o in report.outcomes] == ["adult", "people"]
    income = project.train("income", trials=2)
    biased = project.train("income_biased", trials=2)
    yield Trained(project, income, biased)
    project.close()


def test_people_is_the_cleaned_census(trained: Trained) -> None:
    people = trained.project.dataset("people").to_pandas()
    # The published Adult figures, as SOURCE.txt records them.
    assert len(people) == 48_842
    assert int(people["high_income"].sum()) == 11_687
    assert people["sex"].value_counts().to_dict() == {"Male": 32_650, "Female": 16_192}
    assert people["race"].value_counts()["Black"] == 4_685
    text = people.select_dtypes(include=["object", "string"])
    assert not text.isin(["?"]).any().any(), "'?' must have become NULL"
    assert (text.apply(lambda c: c.str.strip()).fillna("") == text.fillna("")).all().all()
    assert people["occupation"].isna().sum() > 0
    assert "income" not in people and "split" not in people


def test_income_passes_its_gates_without_sensitive_features(trained: Trained) -> None:
    result = trained.income
    assert result.gates.passed, [g.message for g in result.gates.failed]
    features = set(result.version.meta["features"])
    assert features.isdisjoint(SENSITIVE | PROXIES)
    assert result.version.metrics["roc_auc"] >= 0.85
    # every attribute set was measured and held to the limit
    fairness = [g for g in result.gates.results if g.gate.startswith("fairness")]
    assert len(fairness) == 3
    assert any("by sex is" in g.message for g in fairness)


def test_income_biased_fails_exactly_its_fairness_gate_by_sex(trained: Trained) -> None:
    result = trained.biased
    assert set(result.version.meta["features"]) >= SENSITIVE
    assert not result.gates.passed
    failed = result.gates.failed
    assert failed and all(g.gate.startswith("fairness") for g in failed)
    assert all(g.passed for g in result.gates.results if not g.gate.startswith("fairness"))
    assert any(
        "demographic parity difference by sex is" in g.message and "above the limit" in g.message
        for g in failed
    ), [g.message for g in failed]
    # The same limit, on the same test rows, separates the two models by sex.
    limits = {
        name: cfg.fairness.max_demographic_parity_difference if cfg.fairness else None
        for name, cfg in trained.project.config.models.items()
    }
    limit = limits["income"]
    assert limit is not None and limits["income_biased"] == limit
    by_sex = {
        name: r.version.meta["fairness"]["demographic_parity_difference"]["sex"]
        for name, r in (("income", trained.income), ("income_biased", result))
    }
    assert by_sex["income"] <= limit < by_sex["income_biased"]


def test_promotion_is_refused_unless_forced(trained: Trained) -> None:
    project = trained.project
    ref = trained.biased.version.ref
    with pytest.raises(RegistryError, match="failed its gates") as caught:
        project.promote(ref, to="production", reason="better roc_auc")
    assert "by sex" in str(caught.value)
    assert project.models.registry.alias("income_biased", "production") is None

    event = project.promote(ref, to="production", reason="fairness audit demo", force=True)
    assert event.forced
    history = project.models.registry.history("income_biased", alias="production")
    assert [(e.version, e.forced, e.reason) for e in history] == [
        (trained.biased.version.version, True, "fairness audit demo")
    ]

    fair = project.promote(trained.income.version.ref, to="production", reason="passes its gates")
    assert not fair.forced


def test_card_of_income_biased_shows_the_failed_fairness_gate(trained: Trained) -> None:
    project = trained.project
    card = model_card_markdown(trained.biased.version, project.models.registry, project.ledger)
    assert "Gates — FAILED" in card
    failed = [line for line in card.splitlines() if line.startswith("- FAIL")]
    assert failed and all("fairness" in line for line in failed)
    assert any("demographic parity difference by sex is" in line for line in failed)
    groups = pd.DataFrame(trained.biased.version.meta["fairness"]["groups"])
    assert set(groups.loc[groups["attributes"].map(tuple) == ("sex",), "group"].map(tuple)) == {
        ("Female",),
        ("Male",),
    }
