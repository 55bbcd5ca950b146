"""label.positive decides which value of a binary text label is the positive class."""

from __future__ import annotations

import pandas as pd
import pytest

from boite.errors import TrainingError
from boite.training.trainer import encode_labels


def test_the_default_positive_is_the_larger_value() -> None:
    y, classes = encode_labels(
        "binary_classification", pd.Series(["stayed", "churned", "stayed"]), model="m", column="c"
    )
    assert classes == ["churned", "stayed"] and y.tolist() == [1, 0, 1]


def test_label_positive_chooses_the_positive_class() -> None:
    y, classes = encode_labels(
        "binary_classification",
        pd.Series(["stayed", "churned", "stayed"]),
        model="m",
        column="c",
        positive="churned",
    )
    assert classes == ["stayed", "churned"] and y.tolist() == [0, 1, 0]


def test_a_positive_value_the_label_does_not_hold() -> None:
    with pytest.raises(TrainingError, match=r"label\.positive is 'left'"):
        encode_labels(
            "binary_classification",
            pd.Series(["stayed", "churned"]),
            model="m",
            column="c",
            positive="left",
        )
