"""The PyTorch MLP: trains, saves as tensors only, reloads to the same scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boite.core.config import parse_config
from boite.errors import TrainingError

torch = pytest.importorskip("torch")

ADULT = Path(__file__).parents[2] / "examples" / "income" / "data" / "adult" / "adult.csv.gz"


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return pd.read_csv(ADULT).head(4000)


def _cfg(params: str) -> object:
    return parse_config(
        f"""
name: t
models:
  m:
    task: binary_classification
    label: {{dataset: adult, column: income}}
    features: ["*"]
    algorithm: torch_mlp
    params: {params}
"""
    ).models["m"]


def test_mlp_learns_and_reloads_from_tensors(adult: pd.DataFrame, tmp_path: Path) -> None:
    from boite.registry.modelfile import read_model, write_model
    from boite.training.predictor import Predictor
    from boite.training.trainer import train_model

    features = ["age", "education_num", "hours_per_week", "capital_gain", "sex", "workclass"]
    trained = train_model(
        "m",
        _cfg("{epochs: 30, hidden: [16], learning_rate: 0.01, batch_size: 256}"),
        adult,
        label="income",
        features=features,  # type: ignore[arg-type]
        time_column=None,
    )
    assert trained.metrics["roc_auc"] > 0.7
    path = tmp_path / "m.model.zip"
    digest = write_model(
        path,
        flavor="torch",
        task="binary_classification",
        model=trained.fitted,
        signature={"inputs": [{"name": f, "type": "x"} for f in features], "outputs": []},
        preprocessing={"features": trained.preprocessor.to_dict(), "classes": trained.classes},
    )
    loaded = read_model(path, expected_sha256=digest)
    predictor = Predictor.from_parts(
        "torch", "binary_classification", loaded.model, loaded.preprocessing
    )
    rows = adult.iloc[trained.test_index]
    assert np.allclose(predictor.scores(rows), trained.test_scores, atol=1e-6)


def test_mlp_rejects_an_unknown_parameter(adult: pd.DataFrame) -> None:
    from boite.training.trainer import train_model

    with pytest.raises(TrainingError, match="torch_mlp has no parameter"):
        train_model(
            "m",
            _cfg("{epochz: 3}"),
            adult,
            label="income",
            features=["age"],  # type: ignore[arg-type]
            time_column=None,
        )
