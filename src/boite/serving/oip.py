"""The Open Inference Protocol v2 (KServe, Triton, Seldon): tensors in, tensors out.

Each input tensor is one column: an entity key or a feature, ``shape`` ``[n]``
or ``[n, 1]``. A single 2-D tensor ``[n, F]`` whose name is not a column is
also accepted: its columns are the model's request inputs, in the order its
metadata lists them. ``data`` may be flat (row-major) or nested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from boite.errors import RequestError
from boite.serving.model import ServedModel

_INTS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOATS = {"FP16", "FP32", "FP64"}
DATATYPES = sorted({"BOOL", "BYTES", *_INTS, *_FLOATS})


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise RequestError(f"'{where}' must be an array", field=where)
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack = [data]
    # iterative, so that a deeply nested body cannot exhaust the recursion limit
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _check_value(value: Any, datatype: str, where: str) -> Any:
    if value is None:
        return None  # a missing value: the model's missing-value handling applies
    if datatype == "BYTES":
        if isinstance(value, str):
            return value
        expected = "a string"
    elif datatype == "BOOL":
        if isinstance(value, bool):
            return value
        expected = "true or false"
    elif datatype in _INTS:
        if isinstance(value, int) and not isinstance(value, bool):
            if datatype.startswith("UINT") and value < 0:
                raise RequestError(
                    f"{where} is negative but the datatype is {datatype}", field=where
                )
            return value
        expected = "an integer"
    else:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise RequestError(f"{where} is {value}; only finite numbers", field=where)
            return value
        expected = "a number"
    raise RequestError(
        f"{where} must be {expected} (datatype {datatype}); got {type(value).__name__} "
        f"{value!r:.40}",
        field=where,
    )


_NUMPY_TYPES = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def split_binary(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part and the binary tensor data of a request that uses Triton's binary
    data extension (``Inference-Header-Content-Length``), as tritonclient sends by default."""
    if header_length is None:
        return raw, b""
    if not header_length.isdigit() or int(header_length) > len(raw):
        raise RequestError(
            f"Inference-Header-Content-Length is {header_length!r} but the body has "
            f"{len(raw)} bytes",
            field="Inference-Header-Content-Length",
        )
    n = int(header_length)
    return raw[:n], raw[n:]


def _binary_values(blob: memoryview, datatype: str, count: int, where: str) -> list[Any]:
    """``count`` values of ``datatype`` from raw little-endian bytes (BYTES: each a 4-byte
    length and its bytes)."""
    if datatype == "BYTES":
        out: list[Any] = []
        at = 0
        for _ in range(count):
            if at + 4 > len(blob):
                raise RequestError(f"{where}: the binary data ends early", field=where)
            length = int.from_bytes(blob[at : at + 4], "little")
            at += 4
            if at + length > len(blob):
                raise RequestError(f"{where}: the binary data ends early", field=where)
            try:
                out.append(bytes(blob[at : at + length]).decode())
            except UnicodeDecodeError:
                raise RequestError(f"{where}: a BYTES element is not UTF-8", field=where) from None
            at += length
        if at != len(blob):
            raise RequestError(
                f"{where}: binary_data_size is {len(blob)} but its {count} elements take {at}",
                field=where,
            )
        return out
    dtype = np.dtype(_NUMPY_TYPES[datatype])
    if len(blob) != count * dtype.itemsize:
        raise RequestError(
            f"{where}: binary_data_size is {len(blob)} bytes, but {count} {datatype} values "
            f"take {count * dtype.itemsize}",
            field=where,
        )
    return np.frombuffer(blob, dtype=dtype).tolist()


def parse_infer(
    body: Any, model: ServedModel, binary: bytes = b""
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None, str | None, list[str] | None]:
    """(entities, features, request id, requested output names) of an infer request;
    ``binary`` holds the tensors sent with Triton's binary data extension."""
    blob = memoryview(binary)
    offset = 0
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", field="body")
    unknown = set(body) - {"id", "inputs", "outputs", "parameters"}
    if unknown:
        raise RequestError(
            f"unknown key {sorted(unknown)[0]!r} in the infer request",
            field=sorted(unknown)[0],
            hint="An infer request has: id, inputs, outputs, parameters.",
        )
    request_id = body.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > 128):
        raise RequestError("'id' must be a string of at most 128 characters", field="id")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(
            "'inputs' must be a non-empty array of tensors",
            field="inputs",
            hint="Each tensor: {name, shape, datatype, data}.",
        )
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    for t, tensor in enumerate(inputs):
        where = f"inputs[{t}]"
        if not isinstance(tensor, dict):
            raise RequestError(f"{where} must be an object", field=where)
        parameters = tensor.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise RequestError(f"{where}.parameters must be an object", field=f"{where}.parameters")
        binary_size = parameters.get("binary_data_size")
        # a tensor sent as binary data has its values after the JSON, not in 'data'
        required = ("name", "shape", "datatype") + (() if binary_size is not None else ("data",))
        for key in required:
            if key not in tensor:
                raise RequestError(f"{where} lacks '{key}'", field=f"{where}.{key}")
        extra = set(tensor) - {"name", "shape", "datatype", "data", "parameters"}
        if extra:
            raise RequestError(
                f"{where} has the unknown key {sorted(extra)[0]!r}",
                field=f"{where}.{sorted(extra)[0]}",
            )
        name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
        if not isinstance(name, str) or not name:
            raise RequestError(f"{where}.name must be a non-empty string", field=f"{where}.name")
        if datatype not in DATATYPES:
            raise RequestError(
                f"{where}.datatype {datatype!r} is not an Open Inference Protocol datatype",
                field=f"{where}.datatype",
                hint="Allowed: " + ", ".join(DATATYPES) + ".",
            )
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise RequestError(
                f"{where}.shape must be [rows] or [rows, columns] of non-negative integers; "
                f"got {shape!r:.60}",
                field=f"{where}.shape",
            )
        size = math.prod(shape)
        if binary_size is not None:
            if (
                isinstance(binary_size, bool)
                or not isinstance(binary_size, int)
                or binary_size < 0
                or offset + binary_size > len(blob)
            ):
                raise RequestError(
                    f"{where}.parameters.binary_data_size is {binary_size!r}, but "
                    f"{len(blob) - offset} bytes of binary data are left",
                    field=f"{where}.parameters.binary_data_size",
                )
            data = _binary_values(
                blob[offset : offset + binary_size], datatype, size, f"{where}.parameters"
            )
            offset += binary_size
        else:
            data = _flatten(tensor["data"], f"{where}.data")
        if len(data) != size:
            raise RequestError(
                f"{where} has shape {shape} ({size} values) but {len(data)} values in 'data'",
                field=f"{where}.shape",
            )
        values = [_check_value(v, datatype, f"{where}.data[{i}]") for i, v in enumerate(data)]
        width = shape[1] if len(shape) == 2 else 1
        if width == 1:
            if name in columns:
                raise RequestError(f"the input {name!r} is given twice", field=f"{where}.name")
            columns[name] = values
        else:
            names = list(model.request_inputs)
            names = [n for n in names if n not in model.entity_keys]
            if width != len(names) or name in model.inputs:
                raise RequestError(
                    f"{where} is a [{shape[0]}, {width}] matrix; a matrix input must have one "
                    f"column per input of {model.ref} ({len(names)}: {', '.join(names)})",
                    field=f"{where}.shape",
                    hint="Or send one [rows] tensor per input, named after it.",
                )
            for j, column in enumerate(names):
                if column in columns:
                    raise RequestError(f"the input {column!r} is given twice", field=where)
                columns[column] = values[j::width]
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise RequestError(
                f"{where} has {shape[0]} rows but the tensors before it have {rows}; "
                "every input tensor describes the same rows",
                field=f"{where}.shape",
            )
    assert rows is not None
    if offset != len(blob):
        raise RequestError(
            f"{len(blob) - offset} bytes of binary data follow the inputs that use them",
            field="Inference-Header-Content-Length",
        )
    keys = [k for k in model.entity_keys if k in columns]
    entities = None
    if keys:
        entities = [{k: columns[k][i] for k in keys} for i in range(rows)]
    others = [c for c in columns if c not in keys]
    features = [{c: columns[c][i] for c in others} for i in range(rows)] if others else None
    if entities is None and features is None:
        raise RequestError("the request has no rows", field="inputs")
    requested = None
    outputs = body.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise RequestError("'outputs' must be an array of {name}", field="outputs")
        names = {o.name for o in model.outputs}
        requested = []
        for i, o in enumerate(outputs):
            if o["name"] not in names:
                raise RequestError(
                    f"{model.ref} has no output {o['name']!r}",
                    field=f"outputs[{i}].name",
                    hint="Outputs: " + ", ".join(sorted(names)) + ".",
                )
            requested.append(o["name"])
    return entities, features, request_id, requested


def encode_outputs(
    model: ServedModel, predictions: Sequence[Any], requested: list[str] | None
) -> list[dict[str, Any]]:
    """The response tensors for the task's predictions."""
    n = len(predictions)
    out = []
    for output in model.outputs:
        if requested is not None and output.name not in requested:
            continue
        if model.task == "multiclass":
            if output.name == "label":
                data: list[Any] = [str(p["label"]) for p in predictions]
                shape = [n]
            else:
                data = [v for p in predictions for v in p["probabilities"].values()]
                shape = [n, output.width or 0]
        elif model.task == "recommendation":
            width = output.width or 0
            data = [item for p in predictions for item in (list(p) + [""] * width)[:width]]
            shape = [n, width]
        else:
            data, shape = list(predictions), [n]
        out.append({"name": output.name, "datatype": output.datatype, "shape": shape, "data": data})
    return out
