"""transform_rows (the serving path) gives the same matrix as transform (the batch path)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from boite.training.preprocess import BadValue, Preprocessor

FRAME = pd.DataFrame(
    {
        "age": [39.0, None, 50.0, 28.0],
        "sex": ["Male", "Female", None, "Male"],
        "member": [True, False, True, False],
        "since": pd.to_datetime(["1997-01-01", "1997-03-05", None, "1998-02-01"]),
        "zip": [75001, 75002, 75001, 69001],
    }
)
FEATURES = ["age", "sex", "member", "since", "zip"]


@pytest.mark.parametrize("impute", [False, True])
def test_rows_match_the_frame(impute: bool) -> None:
    pre = Preprocessor.fit(FRAME, FEATURES, impute=impute)
    rows = [
        [
            None if pd.isna(r.age) else r.age,
            r.sex,
            bool(r.member),
            None if pd.isna(r.since) else r.since.isoformat(),
            int(r.zip),
        ]
        for r in FRAME.itertuples()
    ]
    np.testing.assert_allclose(pre.transform_rows(rows), pre.transform(FRAME), equal_nan=True)


def test_unseen_category_reads_as_missing_and_bad_kinds_are_named() -> None:
    pre = Preprocessor.fit(FRAME, FEATURES, impute=False)
    out = pre.transform_rows([[1.0, "Other", 1, "2000-01-01", 1]])
    assert math.isnan(out[0, 1]) and out[0, 2] == 1.0
    for row, column in [
        (["old", "Male", True, None, 1], "age"),
        ([1.0, "Male", "yes", None, 1], "member"),
        ([1.0, "Male", True, "last week", 1], "since"),
        ([1.0, ["Male"], True, None, 1], "sex"),
    ]:
        with pytest.raises(BadValue) as info:
            pre.transform_rows([[2.0, "Male", True, None, 1], row])
        assert info.value.column == column and info.value.row == 1
        assert column in str(info.value)


@pytest.mark.parametrize("impute", [False, True])
def test_all_number_rows_take_the_fast_path_with_the_same_result(impute: bool) -> None:
    frame = pd.DataFrame({"a": [1.0, None, 3.5], "b": [2, 4, 6], "c": [0.5, 0.25, None]})
    pre = Preprocessor.fit(frame, ["a", "b", "c"], impute=impute)
    rows = [[1.0, 2, 0.5], [None, 4, 0.25], [3.5, 6, None]]
    np.testing.assert_allclose(pre.transform_rows(rows), pre.transform(frame), equal_nan=True)
    # a bool or a text leaves the fast path: the bool counts as a number, the text is refused
    np.testing.assert_allclose(pre.transform_rows([[True, 2, 0.5]])[0, 0], 1.0)
    with pytest.raises(BadValue) as info:
        pre.transform_rows([[1.0, "2", 0.5]])
    assert info.value.column == "b"
