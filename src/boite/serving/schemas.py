"""Request bodies: their OpenAPI description, and the checks of the simple JSON endpoint."""

from __future__ import annotations

from typing import Any

from boite.errors import RequestError
from boite.serving.oip import DATATYPES

_ROWS = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "object", "additionalProperties": True},
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route whose required body is a JSON ``schema``."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


PREDICT = _json_body(
    {
        "type": "object",
        "description": "Entity keys (features read from the online store), inline "
        "features, or both (the same rows, in the same order).",
        "properties": {"entities": _ROWS, "features": _ROWS},
        "additionalProperties": False,
        "example": {"entities": [{"customer_id": "00042"}]},
    }
)

INFER = _json_body(
    {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    # 'data', unless the tensor comes as binary data
                    # (parameters.binary_data_size, Triton's extension)
                    "required": ["name", "shape", "datatype"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "datatype": {"type": "string", "enum": DATATYPES},
                        "data": {"type": "array"},
                        "parameters": {"type": "object"},
                    },
                },
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}},
                },
            },
        },
        "additionalProperties": False,
    }
)


FEEDBACK = _json_body(
    {
        "type": "object",
        "required": ["labels"],
        "description": "Ground truth for earlier predictions: each label row has "
        "a request_id (and row), or the entity keys and a time.",
        "properties": {
            "labels": _ROWS,
            "label_column": {"type": "string"},
            "timestamp": {"type": "string"},
        },
        "additionalProperties": False,
        "example": {"labels": [{"request_id": "abc", "bought_again_90d": 1}]},
    }
)


def _rows(body: dict[str, Any], key: str) -> list[dict[str, Any]] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise RequestError(
            f"'{key}' must be an array of objects, one per row; got {type(value).__name__}",
            field=key,
        )
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise RequestError(
                f"{key}[{i}] must be an object of column: value; got {type(row).__name__}",
                field=f"{key}[{i}]",
            )
    return value


def parse_predict(body: Any) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """(entities, features) of a predict request."""
    if not isinstance(body, dict):
        raise RequestError(
            "the request body must be a JSON object",
            field="body",
            hint='For example {"entities": [{"customer_id": "00042"}]}.',
        )
    unknown = sorted(set(body) - {"entities", "features"})
    if unknown:
        raise RequestError(
            f"unknown key {unknown[0]!r} in the request",
            field=unknown[0],
            hint="A predict request has 'entities' (keys read online), 'features' (inline "
            "values), or both.",
        )
    entities, features = _rows(body, "entities"), _rows(body, "features")
    if entities is None and features is None:
        raise RequestError(
            "the request has neither 'entities' nor 'features'",
            field="entities",
            hint='For example {"entities": [{"customer_id": "00042"}]}.',
        )
    return entities, features


def parse_feedback(body: Any) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """(labels, label column, time column) of a feedback request."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", field="body")
    unknown = sorted(set(body) - {"labels", "label_column", "timestamp"})
    if unknown:
        raise RequestError(
            f"unknown key {unknown[0]!r} in the feedback",
            field=unknown[0],
            hint="Feedback has 'labels' and, optionally, 'label_column' and 'timestamp'.",
        )
    labels = _rows(body, "labels")
    if not labels:
        raise RequestError("the feedback has no labels", field="labels")
    options = []
    for key in ("label_column", "timestamp"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise RequestError(f"'{key}' must be a column name", field=key)
        options.append(value)
    return labels, options[0], options[1]
