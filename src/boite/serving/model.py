"""What the server knows of one loaded model version: its inputs, where they come
from (the request or the online store), and how it turns rows into answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from boite.features.reader import OnlineReader

# rows (values in ``inputs`` order) -> one JSON-ready answer per row
Predict = Callable[[Sequence[Sequence[Any]]], list[Any]]

# Open Inference Protocol datatypes of the feature kinds the preprocessor knows
OIP_TYPES = {
    "number": "FP64",
    "category": "BYTES",
    "bool": "BOOL",
    "time": "BYTES",
    "text": "BYTES",
}


@dataclass(frozen=True)
class Output:
    """One named output tensor of the Open Inference Protocol."""

    name: str
    datatype: str
    width: int | None = None  # per-row length of a 2-D output (top-k items, class probabilities)


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: int
    task: str
    inputs: tuple[str, ...]  # what ``predict`` takes, in order
    kinds: dict[str, str]  # input -> number | category | bool | time | text
    predict: Predict
    outputs: tuple[Output, ...]
    entity_keys: tuple[str, ...] = ()  # what the online read needs
    online: OnlineReader | None = None  # reads ``online_features`` for the entities
    online_features: tuple[str, ...] = ()
    views: tuple[str, ...] = ()  # the feature views read online
    artifact_id: str = ""
    platform: str = "boite"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @cached_property
    def online_positions(self) -> dict[str, int]:
        """Where each feature read online sits in the online read's columns."""
        columns = [] if self.online is None else self.online.columns
        return {c: j for j, c in enumerate(columns)}

    @cached_property
    def online_order(self) -> list[int] | None:
        """The positions of all inputs in the online read, if every input is read there."""
        found = [self.online_positions.get(name) for name in self.inputs]
        return None if not found or None in found else [j for j in found if j is not None]

    @property
    def request_inputs(self) -> tuple[str, ...]:
        """What a request must give: the entity keys and the inputs not read online."""
        online = set(self.online_features)
        keys = [k for k in self.entity_keys if k not in self.inputs]
        return (*keys, *[i for i in self.inputs if i not in online])

    def metadata(self) -> dict[str, Any]:
        """The Open Inference Protocol's model metadata."""
        inputs = [
            {"name": k, "datatype": "BYTES", "shape": [-1]}
            for k in self.entity_keys
            if k not in self.inputs
        ] + [
            {
                "name": i,
                "datatype": OIP_TYPES.get(self.kinds.get(i, "number"), "BYTES"),
                "shape": [-1],
            }
            for i in self.inputs
            if i not in self.online_features
        ]
        outputs = [
            {
                "name": o.name,
                "datatype": o.datatype,
                "shape": [-1] if o.width is None else [-1, o.width],
            }
            for o in self.outputs
        ]
        return {
            "name": self.name,
            "versions": [str(self.version)],
            "platform": self.platform,
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {
                "task": self.task,
                "online_features": list(self.online_features),
                "feature_views": list(self.views),
            },
        }


class Loader(Protocol):
    """Turns a registered model version (name, version) into a ServedModel."""

    def __call__(self, name: str, version: int) -> ServedModel: ...
