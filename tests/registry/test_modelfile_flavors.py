"""Each flavor round-trips a real model, and only its own safe format is loaded.

LightGBM learns Adult, scikit-learn learns Bike Sharing; a reloaded model must
predict exactly what the original did.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import lightgbm
import numpy as np
import pandas as pd
import pytest
from public_data import data_file
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from boite.errors import UserError
from boite.registry.modelfile import (
    ModelFileError,
    UntrustedTypesError,
    read_model,
    write_model,
)

ADULT_NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
BIKE_FEATURES = ["season", "yr", "mnth", "holiday", "weekday", "workingday", "weathersit",
                 "temp", "atemp", "hum", "windspeed"]  # fmt: skip


def _signature(features: list[str], output: str, kind: str = "double") -> dict[str, Any]:
    return {
        "inputs": [{"name": name, "type": "double"} for name in features],
        "outputs": [{"name": output, "type": kind}],
    }


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # OpenMP threads on a small shared machine wait on each other: one thread
    # trains these models ten times faster, and equality does not need more.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(data_file("adult/adult.csv.gz"), usecols=[*ADULT_NUMERIC, "income", "split"])


@pytest.fixture(scope="module")
def bike() -> pd.DataFrame:
    return pd.read_csv(data_file("bike_sharing/day.csv"))


@pytest.fixture(scope="module")
def busy_day_pipeline(bike: pd.DataFrame) -> Pipeline:
    # Is a day busier than the median day? A classifier on real rows.
    busy = bike["cnt"] > bike["cnt"].median()
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    return pipeline.fit(bike[BIKE_FEATURES], busy)


# -- lightgbm --------------------------------------------------------------------


def test_lightgbm_binary_classifier_predicts_the_same_after_reload(
    tmp_path: Path, adult: pd.DataFrame
) -> None:
    train, test = adult[adult["split"] == "train"], adult[adult["split"] == "test"]
    data = lightgbm.Dataset(
        train[ADULT_NUMERIC], (train["income"] == ">50K").astype(int), free_raw_data=False
    )
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1, "num_threads": 1}
    booster = lightgbm.train(params, data, num_boost_round=30)

    path = tmp_path / "adult.model.zip"
    digest = write_model(
        path,
        flavor="lightgbm",
        task="binary_classification",
        model=booster,
        signature=_signature(ADULT_NUMERIC, "income_gt_50k"),
        preprocessing={"missing": "?"},
        metadata={"rows": len(train)},
    )
    read = read_model(path, expected_sha256=digest)

    assert isinstance(read.model, lightgbm.Booster)
    assert read.model.feature_name() == ADULT_NUMERIC
    before = booster.predict(test[ADULT_NUMERIC])
    assert np.array_equal(read.model.predict(test[ADULT_NUMERIC]), before)
    assert ((before > 0.5) == (test["income"] == ">50K")).mean() > 0.7
    assert read.metadata == {"rows": len(train)}

    # Written again from the reloaded booster: the same bytes.
    again = write_model(
        tmp_path / "again.model.zip",
        flavor="lightgbm",
        task="binary_classification",
        model=read.model,
        signature=_signature(ADULT_NUMERIC, "income_gt_50k"),
        preprocessing={"missing": "?"},
        metadata={"rows": len(train)},
    )
    assert again == digest


def test_lightgbm_flavor_asks_for_the_booster_of_an_sklearn_wrapper(
    tmp_path: Path, adult: pd.DataFrame
) -> None:
    model = lightgbm.LGBMClassifier(n_estimators=2, verbose=-1, n_jobs=1)
    model.fit(adult[ADULT_NUMERIC].head(500), adult["income"].head(500))
    with pytest.raises(UserError, match="booster_"):
        write_model(
            tmp_path / "m.model.zip",
            flavor="lightgbm",
            task="binary_classification",
            model=model,
            signature=_signature(ADULT_NUMERIC, "income"),
        )


# -- scikit-learn ----------------------------------------------------------------


def test_sklearn_pipeline_predicts_the_same_after_reload(
    tmp_path: Path, bike: pd.DataFrame, busy_day_pipeline: Pipeline
) -> None:
    path = tmp_path / "busy.model.zip"
    signature = _signature(BIKE_FEATURES, "busy", "bool")
    digest = write_model(
        path,
        flavor="sklearn",
        task="binary_classification",
        model=busy_day_pipeline,
        signature=signature,
    )
    read = read_model(path, expected_sha256=digest)

    assert isinstance(read.model, Pipeline)
    assert [name for name, _ in read.model.steps] == ["scale", "model"]
    X = bike[BIKE_FEATURES]
    assert np.array_equal(read.model.predict_proba(X), busy_day_pipeline.predict_proba(X))
    assert read.created_with["skops"]
    assert read.signature == signature


def test_hist_gradient_boosting_regressor_predicts_the_same_after_reload(
    tmp_path: Path, bike: pd.DataFrame
) -> None:
    X, y = bike[BIKE_FEATURES], bike["cnt"]
    model = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(X[:600], y[:600])
    path = tmp_path / "cnt.model.zip"
    digest = write_model(
        path,
        flavor="sklearn",
        task="regression",
        model=model,
        signature=_signature(BIKE_FEATURES, "cnt"),
    )
    read = read_model(path, expected_sha256=digest)
    assert isinstance(read.model, HistGradientBoostingRegressor)
    assert np.array_equal(read.model.predict(X[600:]), model.predict(X[600:]))


def test_equal_sklearn_models_give_equal_bytes_across_objects_and_processes(
    tmp_path: Path, busy_day_pipeline: Pipeline
) -> None:
    # skops names arrays after id() and uuid4(); a copy has other ids.
    arguments = {
        "flavor": "sklearn",
        "task": "binary_classification",
        "signature": _signature(BIKE_FEATURES, "busy", "bool"),
    }
    first = write_model(tmp_path / "a.model.zip", model=busy_day_pipeline, **arguments)
    second = write_model(
        tmp_path / "b.model.zip", model=copy.deepcopy(busy_day_pipeline), **arguments
    )
    assert first == second

    # Another process, another hash seed: the model read back and written again.
    script = f"""
from boite.registry.modelfile import read_model, write_model
model = read_model({str(tmp_path / "a.model.zip")!r}).model
print(write_model({str(tmp_path / "c.model.zip")!r}, model=model, **{arguments!r}))
"""
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == first


class ClipLow(TransformerMixin, BaseEstimator):
    """A user's own transformer: skops cannot know what loading it would run."""

    restored: ClassVar[list[str]] = []

    def fit(self, X: Any, y: Any = None) -> ClipLow:
        self.low_ = np.asarray(X, dtype=float).min(axis=0)
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.maximum(np.asarray(X, dtype=float), self.low_)

    def __setstate__(self, state: dict[str, Any]) -> None:
        ClipLow.restored.append("restored")
        super().__setstate__(state)


CLIP_LOW = f"{ClipLow.__module__}.ClipLow"


def test_an_untrusted_type_is_refused_before_it_is_built(
    tmp_path: Path, bike: pd.DataFrame
) -> None:
    X, busy = bike[BIKE_FEATURES], bike["cnt"] > bike["cnt"].median()
    model = Pipeline([("clip", ClipLow()), ("model", LogisticRegression(max_iter=500))])
    model.fit(X, busy)
    arguments = {
        "flavor": "sklearn",
        "task": "binary_classification",
        "model": model,
        "signature": _signature(BIKE_FEATURES, "busy", "bool"),
    }
    path = tmp_path / "clip.model.zip"

    with pytest.raises(UntrustedTypesError) as refused_write:
        write_model(path, **arguments)
    assert refused_write.value.types == [CLIP_LOW]
    assert not path.exists()

    digest = write_model(path, trusted=[CLIP_LOW], **arguments)
    ClipLow.restored.clear()
    with pytest.raises(UntrustedTypesError) as refused_read:
        read_model(path, expected_sha256=digest)
    assert refused_read.value.types == [CLIP_LOW]
    assert CLIP_LOW in str(refused_read.value)
    assert f"trusted=['{CLIP_LOW}']" in str(refused_read.value)
    assert refused_read.value.exit_code == 2
    assert ClipLow.restored == []

    read = read_model(path, expected_sha256=digest, trusted=[CLIP_LOW])
    assert ClipLow.restored == ["restored"]
    assert np.array_equal(read.model.predict(X), model.predict(X))


def test_a_function_that_runs_commands_is_refused(tmp_path: Path) -> None:
    model = FunctionTransformer(os.system)
    with pytest.raises(UntrustedTypesError, match=r"\.system"):
        write_model(
            tmp_path / "m.model.zip",
            flavor="sklearn",
            task="transform",
            model=model,
            signature={"inputs": [], "outputs": []},
        )


def test_sklearn_flavor_holds_estimators_only(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="scikit-learn estimator"):
        write_model(
            tmp_path / "m.model.zip",
            flavor="sklearn",
            task="regression",
            model={"coef": [1.0]},
            signature={"inputs": [], "outputs": []},
        )


# -- torch -----------------------------------------------------------------------


def _archive(path: Path, flavor: str, member: str, payload: bytes) -> None:
    """A format-1 file with correct hashes around a payload made by hand."""
    manifest = {
        "format": "boite-model",
        "format_version": 1,
        "flavor": flavor,
        "task": "regression",
        "created_with": {"boite": "0.1.0"},
        "files": {member: hashlib.sha256(payload).hexdigest()},
        "signature": {"inputs": [], "outputs": []},
        "preprocessing": {},
        "metadata": {},
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        archive.writestr(member, payload)


def test_torch_state_dict_round_trips(tmp_path: Path, bike: pd.DataFrame) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(len(BIKE_FEATURES), 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
    )
    path = tmp_path / "net.model.zip"
    arguments = {
        "flavor": "torch",
        "task": "regression",
        "signature": _signature(BIKE_FEATURES, "cnt", "float"),
        "metadata": {"architecture": "mlp-8"},
    }
    digest = write_model(path, model=net.state_dict(), **arguments)
    read = read_model(path, expected_sha256=digest)

    assert set(read.model) == set(net.state_dict())
    assert read.created_with["torch"] == str(torch.__version__)
    clone = torch.nn.Sequential(
        torch.nn.Linear(len(BIKE_FEATURES), 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)
    )
    clone.load_state_dict(read.model)
    X = torch.tensor(bike[BIKE_FEATURES].to_numpy(), dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(clone(X), net(X))

    copy_digest = write_model(
        tmp_path / "copy.model.zip", model=copy.deepcopy(net).state_dict(), **arguments
    )
    assert copy_digest == digest


def test_torch_flavor_holds_weights_not_modules(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(UserError, match="state_dict"):
        write_model(
            tmp_path / "m.model.zip",
            flavor="torch",
            task="regression",
            model=torch.nn.Linear(2, 1),
            signature={"inputs": [], "outputs": []},
        )


RAN: list[str] = []


def _run(marker: str) -> None:
    RAN.append(marker)


class _Payload:
    """What a malicious pickle smuggles in: unpickling it calls a function."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_run, ("ran",))


def test_torch_payload_with_an_object_is_refused(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2), "extra": _Payload()}, buffer)
    path = tmp_path / "evil.model.zip"
    _archive(path, "torch", "model.pt", buffer.getvalue())
    RAN.clear()
    with pytest.raises(ModelFileError, match="tensors only") as caught:
        read_model(path)
    assert "_run" in str(caught.value)
    assert "weights_only=False" not in str(caught.value)
    assert RAN == []
    # The guard is not vacuous: a plain unpickler would have called it.
    torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert RAN == ["ran"]


def test_torch_flavor_without_torch_says_how_to_install_it(tmp_path: Path) -> None:
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed")
    with pytest.raises(UserError, match="pip install torch"):
        write_model(
            tmp_path / "m.model.zip",
            flavor="torch",
            task="regression",
            model={},
            signature={"inputs": [], "outputs": []},
        )
