from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from boite.core.config import RangeCheck, load_config, parse_config
from boite.core.durations import format_duration, parse_duration
from boite.errors import ConfigError


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, file="proj/boite.yaml")
    return info.value


def test_a_full_file_parses() -> None:
    config = parse_config(
        """
name: retail
now: 1998-07-01
stores: {ledger: "sqlite:///.boite/ledger.db"}
sources:
  transactions: {path: data/*.txt, delimiter: whitespace, columns: {customer_id: VARCHAR}}
  crm: {url: "sqlite:///crm.db", table: accounts}
transforms:
  daily:
    checks:
      - not_null: customer_id
      - unique: [customer_id, day]
      - range: {column: spend, min: 0}
      - row_count: {min: 1}
      - accepted_values: {column: flag, values: [0, 1]}
      - freshness: {column: day, max_age: 7d}
run: {workers: 4}
"""
    )
    checks = config.transforms["daily"].checks
    assert [c.kind for c in checks] == [
        "not_null",
        "unique",
        "range",
        "row_count",
        "accepted_values",
        "freshness",
    ]
    assert checks[0].columns == ["customer_id"]  # type: ignore[union-attr]
    assert isinstance(checks[2], RangeCheck) and checks[2].min == 0
    assert checks[5].max_age == timedelta(days=7)  # type: ignore[union-attr]
    assert config.sources["transactions"].paths == ["data/*.txt"]
    assert config.run.workers == 4


def test_malformed_yaml_names_the_line() -> None:
    err = _error("name: x\nsources:\n  a: [unclosed\n")
    assert err.file == "proj/boite.yaml"
    assert err.line is not None and err.line >= 3
    assert "not valid YAML" in str(err)


def test_unknown_key_suggests_the_near_one() -> None:
    err = _error("name: x\nsources:\n  a:\n    path: a.csv\n    delimter: ';'\n")
    assert err.key == "sources.a.delimter"
    assert err.line == 5
    assert "Did you mean 'delimiter'?" in str(err)
    assert "Allowed keys here" in str(err)


def test_unknown_top_level_key() -> None:
    err = _error("name: x\ntransfroms: {}\n")
    assert "Did you mean 'transforms'?" in str(err)


def test_unknown_check_kind() -> None:
    err = _error("name: x\ntransforms:\n  t:\n    checks:\n      - uniqe: id\n")
    assert "Did you mean 'unique'?" in str(err)
    assert err.key == "transforms.t.checks"


def test_wrong_type_says_what_was_found() -> None:
    err = _error("name: x\ntransforms:\n  t:\n    checks:\n      - range: {column: a, min: lots}\n")
    assert err.key == "transforms.t.checks[0].range.min"
    assert "found 'lots'" in str(err)
    assert err.line == 5


def test_bad_duration() -> None:
    err = _error(
        "name: x\ntransforms:\n  t:\n    checks:\n      - freshness: {column: d, max_age: 1 week}\n"
    )
    assert "7d" in str(err) and "'1 week'" in str(err)


def test_source_needs_path_or_url() -> None:
    assert "exactly one of 'path'" in str(_error("name: x\nsources:\n  a: {header: true}\n"))
    assert "exactly one of 'table' or 'query'" in str(
        _error("name: x\nsources:\n  a: {url: 'sqlite:///x.db'}\n")
    )


def test_bad_table_name_and_delimiter() -> None:
    assert "not allowed" in str(_error("name: x\nsources:\n  1bad: {path: a.csv}\n"))
    assert "one character" in str(
        _error("name: x\nsources:\n  a: {path: a.csv, delimiter: '::'}\n")
    )


def test_missing_name_and_empty_file() -> None:
    assert "'name' is required" in str(_error("sources: {}\n"))
    assert "empty" in str(_error(""))
    assert "mapping" in str(_error("- a\n- b\n"))


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "boite.yaml")
    (tmp_path / "boite.yaml").write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(tmp_path / "boite.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1.5d", timedelta(hours=36)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "7", "d", "7 days", "-1d", "1y", 7, True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_format_duration() -> None:
    assert format_duration(timedelta(days=14)) == "2w"
    assert format_duration(timedelta(hours=36)) == "36h"
    assert format_duration(timedelta(seconds=1.5)) == "1.5s"
