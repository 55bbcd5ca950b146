"""The environments section: what each environment serves and the routes it may take."""

from __future__ import annotations

import pytest

from boite.core.config import parse_config
from boite.errors import ConfigError

HEAD = """
name: shop
models:
  repurchase: {task: binary_classification, label: {dataset: d, column: y}, features: [a]}
  income: {task: binary_classification, label: {dataset: d, column: y}, features: [a]}
environments:
"""


def test_an_environment_parses_with_defaults() -> None:
    cfg = parse_config(
        HEAD
        + """
  production:
    serve: {repurchase: production, income: production}
    shadow: {repurchase: challenger}
    split: {income: {share: 0.2, by: customer_id}}
    on_missing: {repurchase: reject}
  staging:
    serve: {repurchase: staging}
    port: 8081
"""
    )
    prod = cfg.environments["production"]
    assert prod.host == "127.0.0.1" and prod.port == 8080 and prod.workers == 1
    assert prod.shadow == {"repurchase": "challenger"}
    assert prod.split["income"].alias == "challenger" and prod.split["income"].share == 0.2
    assert cfg.environments["staging"].port == 8081
    assert prod.log.flush_seconds == 1.0 and prod.log.publish_seconds == 60.0
    assert prod.log.publish_rows == 1_000_000


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("  production: {serve: {repurchse: production}}", "did you mean 'repurchase'"),
        ("  production: {serve: {repurchase: prod}}", "prod"),
        (
            "  production: {serve: {repurchase: production}, shadow: {income: challenger}}",
            "does not serve",
        ),
        (
            "  production: {serve: {repurchase: production}, shadow: {repurchase: challenger},"
            " split: {repurchase: {share: 0.1}}}",
            "both a shadow and a traffic split",
        ),
        (
            "  production: {serve: {repurchase: production}, shadow: {repurchase: production}}",
            "already answers",
        ),
        (
            "  production: {serve: {repurchase: production}, split: {repurchase: {share: 1.5}}}",
            "less than 1",
        ),
        ("  production: {serve: {}}", "at least 1"),
        ("  production: {serve: {repurchase: production}, prot: 80}", "did you mean 'port'"),
        (
            "  production: {serve: {repurchase: production}, log: {publish_seconds: 0}}",
            "publish_seconds",
        ),
        (
            "  production: {serve: {repurchase: production}, log: {publish_second: 5}}",
            "did you mean 'publish_seconds'",
        ),
    ],
)
def test_bad_environments_are_refused(body: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(HEAD + body + "\n")
    assert needle.lower() in str(info.value).lower()
