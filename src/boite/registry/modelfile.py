"""Model files: a trained model as one versioned, audited, content-addressed file.

A model file is a zip archive holding ``manifest.json`` and the model in the
native, non-pickle format of its library (its *flavor*):

========== ================ ==========================================================
flavor     member           format
========== ================ ==========================================================
lightgbm   ``model.txt``    ``Booster.model_to_string()``
sklearn    ``model.skops``  skops, audited against a fixed allow-list of types
torch      ``model.pt``     ``torch.save`` of a state_dict, read with ``weights_only``
json       ``model.json``   the whole model state as JSON (baselines, lookup tables)
========== ================ ==========================================================

The manifest records the format version, flavor, task, the versions it was
written with, the sha256 of every other member, the model's signature, its
preprocessing and free metadata.

The archive is written deterministically (fixed timestamps, sorted members,
no compression, canonical JSON, skops payloads renumbered), so the same model
gives the same bytes and the artifact store keeps it once.

Reading checks, in this order, before any model object is built: the hash of
the whole file (when the caller knows it), the hash of every member against
the manifest, then the format version and the flavor. Each format version
keeps its reader in :data:`READERS`; version 0, the bare ``meta.json`` +
``model.txt`` zip of early boite, is read but never written.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import math
import os
import pickle
import platform
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import boite
from boite.core.artifacts import ArtifactStore, StoredFile, fsync_path, sha256_file
from boite.errors import ArtifactIntegrityError, UserError

__all__ = [
    "FLAVORS",
    "FORMAT_VERSION",
    "MODEL_FILE_SUFFIX",
    "READERS",
    "SKLEARN_TRUSTED_TYPES",
    "ModelFile",
    "ModelFileError",
    "UntrustedTypesError",
    "read_model",
    "read_model_artifact",
    "write_model",
    "write_model_artifact",
]

FORMAT = "boite-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# The suffix says what the file is to a person browsing the artifact store,
# and that `unzip -l` opens it.
MODEL_FILE_SUFFIX = ".model.zip"

# The earliest date a zip header can hold: a fixed time keeps the bytes a
# function of the content alone.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# A manifest is small; a bigger one is not ours, and is refused before it is parsed.
_MAX_MANIFEST_BYTES = 16 << 20


class ModelFileError(UserError):
    """A model file cannot be read or written: not a model file, a newer format, a bad model."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
        self.path = path


class UntrustedTypesError(ModelFileError):
    """A scikit-learn model holds types outside the allow-list; it is not loaded."""

    def __init__(self, types: Sequence[str], *, path: str | None = None) -> None:
        self.types = sorted(types)
        listed = ", ".join(self.types)
        super().__init__(
            f"the scikit-learn model holds types that boite does not trust: {listed}",
            path=path,
            hint="Loading a type can run its code, so only scikit-learn, numpy and scipy types "
            "that boite knows are loaded. If you wrote these types and trust this file, pass "
            f"trusted={self.types!r} when writing and reading it; otherwise build the model "
            "from scikit-learn classes only.",
        )


@dataclass(frozen=True)
class ModelFile:
    """What a model file holds, read back and verified."""

    flavor: str
    task: str
    # A lightgbm.Booster, a scikit-learn estimator, a state_dict (str -> tensor) or JSON data.
    model: Any
    signature: dict[str, Any]
    preprocessing: dict[str, Any]
    metadata: dict[str, Any]
    format_version: int
    # {"boite": ..., "python": ..., library: version}: what wrote the file.
    created_with: dict[str, str] = field(default_factory=dict)


# -- flavors ------------------------------------------------------------------
#
# Libraries are imported inside the methods: `import boite.registry` must stay
# fast for the CLI, and torch is optional.


class Flavor:
    """How one kind of model becomes the bytes of one member, and back."""

    name: ClassVar[str]
    member: ClassVar[str]

    def dump(self, model: Any, *, trusted: Sequence[str]) -> bytes:
        raise NotImplementedError

    def load(self, data: bytes, *, trusted: Sequence[str], path: str) -> Any:
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        """The versions of the libraries the payload depends on, for the manifest."""
        return {}


class LightGBMFlavor(Flavor):
    name = "lightgbm"
    member = "model.txt"

    def dump(self, model: Any, *, trusted: Sequence[str]) -> bytes:
        import lightgbm

        if isinstance(model, lightgbm.LGBMModel):
            raise UserError(
                f"flavor 'lightgbm' holds a lightgbm.Booster; got {type(model).__name__}",
                hint="Pass model.booster_ (the fitted Booster), or use flavor 'sklearn' "
                "for a scikit-learn pipeline.",
            )
        if not isinstance(model, lightgbm.Booster):
            raise UserError(f"flavor 'lightgbm' holds a lightgbm.Booster; got {_type_name(model)}")
        return model.model_to_string().encode("utf-8")

    def load(self, data: bytes, *, trusted: Sequence[str], path: str) -> Any:
        import lightgbm

        try:
            return lightgbm.Booster(model_str=data.decode("utf-8"))
        except (lightgbm.basic.LightGBMError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"its LightGBM model cannot be read: {exc}", path=path) from exc

    def versions(self) -> dict[str, str]:
        import lightgbm

        return {"lightgbm": lightgbm.__version__}


# Types that skops does not trust by default but that only hold fitted numbers
# (trees, neighbour indexes, optimizer state, calibration maps). Anything else
# outside skops' own default list must be named by the caller in `trusted`.
SKLEARN_TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.utils._bunch.Bunch",
        "numpy.dtype",
        # HistGradientBoosting with categorical_features="from_dtype" keeps
        # partial(check_array, ...). skops audits the function inside a partial
        # on its own, so a partial of anything else is still refused.
        "functools.partial",
        "sklearn.utils.validation.check_array",
    }
)


class SklearnFlavor(Flavor):
    name = "sklearn"
    member = "model.skops"

    def dump(self, model: Any, *, trusted: Sequence[str]) -> bytes:
        import skops.io
        from sklearn.base import BaseEstimator

        if not isinstance(model, BaseEstimator):
            raise UserError(
                "flavor 'sklearn' holds a scikit-learn estimator or pipeline; "
                f"got {_type_name(model)}"
            )
        try:
            raw = skops.io.dumps(model)
        except TypeError as exc:
            raise UserError(f"skops cannot save this model: {exc}") from exc
        payload = _canonical_skops(raw)
        # Refusing here, not only when reading, means no file is ever written
        # that boite would later refuse to load.
        _audit_skops(payload, trusted=trusted, path=None)
        return payload

    def load(self, data: bytes, *, trusted: Sequence[str], path: str) -> Any:
        import skops.io

        accepted = _audit_skops(data, trusted=trusted, path=path)
        try:
            return skops.io.loads(data, trusted=accepted)
        except Exception as exc:  # skops raises many kinds for a damaged payload
            raise ModelFileError(
                f"its scikit-learn model cannot be read: {exc}", path=path
            ) from exc

    def versions(self) -> dict[str, str]:
        import numpy
        import scipy
        import sklearn
        import skops

        return {
            "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__,
            "scipy": scipy.__version__,
            "skops": skops.__version__,
        }


def _audit_skops(data: bytes, *, trusted: Sequence[str], path: str | None) -> list[str]:
    """The untrusted types of a skops payload, if all are allowed; raise otherwise.

    The audit reads only the schema: no object is built before it passes.
    """
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # a damaged schema fails in many ways
        raise ModelFileError(f"its scikit-learn model cannot be audited: {exc}", path=path) from exc
    refused = sorted(set(untrusted) - SKLEARN_TRUSTED_TYPES - set(trusted))
    if refused:
        raise UntrustedTypesError(refused, path=path)
    return list(untrusted)


def _canonical_skops(raw: bytes) -> bytes:
    """The same skops payload with stable names, so equal models give equal bytes.

    skops names objects and arrays after ``id()`` and ``uuid4()`` and stamps
    the zip with the current time. Renumbering them in order of first
    appearance is a bijection, so the payload loads to the same object.
    """
    with zipfile.ZipFile(io.BytesIO(raw)) as source:
        members = set(source.namelist())
        schema = json.loads(source.read("schema.json"))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}

        def renumber(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "__id__" and type(value) is int:
                        # skops skips memoizing a falsy id, so numbering starts at 1.
                        node[key] = ids.setdefault(value, len(ids) + 1)
                    elif key == "file" and isinstance(value, str) and value in members:
                        suffix = PurePosixPath(value).suffix
                        node[key] = files.setdefault(value, f"{len(files)}{suffix}")
                    else:
                        renumber(value)
            elif isinstance(node, list):
                for item in node:
                    renumber(item)

        renumber(schema)
        out: dict[str, bytes] = {"schema.json": json.dumps(schema, indent=2).encode("utf-8")}
        for old, new in files.items():
            out[new] = source.read(old)
        for name in sorted(members - set(files) - {"schema.json"}):
            out[name] = source.read(name)
    return _zip_bytes(out)


class TorchFlavor(Flavor):
    name = "torch"
    member = "model.pt"

    def dump(self, model: Any, *, trusted: Sequence[str]) -> bytes:
        torch = _import_torch()
        if not isinstance(model, Mapping) or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in model.items()
        ):
            raise UserError(
                "flavor 'torch' holds a state_dict, a mapping of parameter names to tensors; "
                f"got {_type_name(model)}",
                hint="Pass module.state_dict(): a model file holds weights, never code.",
            )
        # On the CPU and in its own storage: the file must not depend on the
        # device it was trained on, nor carry the rest of a viewed tensor.
        state = {key: value.detach().to("cpu").clone() for key, value in model.items()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def load(self, data: bytes, *, trusted: Sequence[str], path: str) -> Any:
        torch = _import_torch()
        try:
            # weights_only: the unpickler accepts tensors and plain containers,
            # never an arbitrary class or function.
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ModelFileError(
                "its PyTorch payload holds more than tensors, and boite loads tensors only"
                + _weights_only_detail(str(exc)),
                path=path,
                hint="Write module.state_dict() with boite's write_model; "
                "a model file holds weights, never code.",
            ) from exc
        except Exception as exc:  # torch raises many kinds for a damaged payload
            raise ModelFileError(
                f"its PyTorch state_dict cannot be read: {exc}", path=path
            ) from exc
        if not isinstance(state, dict) or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
        ):
            raise ModelFileError("its PyTorch payload is not a state_dict of tensors", path=path)
        return dict(state)

    def versions(self) -> dict[str, str]:
        return {"torch": str(_import_torch().__version__)}


def _weights_only_detail(message: str) -> str:
    # Torch's own message goes on to suggest weights_only=False, which is
    # exactly what must not be done with a file of unknown origin: keep only
    # the line that says what was found.
    _, marker, rest = message.partition("WeightsUnpickler error:")
    detail = next((line.strip() for line in rest.splitlines() if line.strip()), "")
    return f" ({detail.split('. ')[0]})" if marker and detail else ""


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise UserError(
            "the 'torch' flavor needs PyTorch, which is not installed",
            hint="Install it with `pip install torch`.",
        ) from None
    return torch


class JSONFlavor(Flavor):
    name = "json"
    member = "model.json"

    def dump(self, model: Any, *, trusted: Sequence[str]) -> bytes:
        # Keys keep their order: a ranked table is often a dict in rank order.
        return _json_bytes(_plain_json(model, "model"), sort_keys=False)

    def load(self, data: bytes, *, trusted: Sequence[str], path: str) -> Any:
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"its JSON model cannot be read: {exc}", path=path) from exc


class ArraysFlavor(Flavor):
    """A model whose state is named NumPy arrays (factor matrices, id tables).

    Each array is written in NumPy's .npy format inside a deterministic zip, and
    read back with ``allow_pickle=False``: numbers and text only, never objects.
    """

    name = "arrays"
    member = "arrays.zip"

    def dump(self, model: Any, *, trusted: Sequence[str]) -> bytes:
        import io

        import numpy as np

        if not isinstance(model, Mapping) or not model:
            raise ModelFileError("an 'arrays' model is a non-empty mapping of name -> array")
        members = {}
        for key in sorted(model):
            array = np.asarray(model[key])
            if array.dtype.hasobject:
                raise ModelFileError(
                    f"array '{key}' holds Python objects; an 'arrays' model keeps numbers and "
                    "text only (convert ids with .astype(str))"
                )
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            members[f"{key}.npy"] = buffer.getvalue()
        return _zip_bytes(members)

    def load(self, data: bytes, *, trusted: Sequence[str], path: str) -> Any:
        import io
        import zipfile

        import numpy as np

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return {
                    name.removesuffix(".npy"): np.load(
                        io.BytesIO(archive.read(name)), allow_pickle=False
                    )
                    for name in archive.namelist()
                }
        except (zipfile.BadZipFile, ValueError) as exc:
            raise ModelFileError(f"its arrays cannot be read: {exc}", path=path) from exc

    def versions(self) -> dict[str, str]:
        import numpy as np

        return {"numpy": np.__version__}


FLAVORS: dict[str, Flavor] = {
    flavor.name: flavor
    for flavor in (LightGBMFlavor(), SklearnFlavor(), TorchFlavor(), JSONFlavor(), ArraysFlavor())
}


# -- writing ------------------------------------------------------------------


def write_model(
    path: Path | str,
    *,
    flavor: str,
    task: str,
    model: Any,
    signature: Mapping[str, Any],
    preprocessing: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    trusted: Sequence[str] = (),
) -> str:
    """Write ``model`` as a model file at ``path`` and return the file's sha256.

    The file appears whole or not at all: it is written under a temporary
    name, synced, then renamed. ``trusted`` names extra skops types a
    scikit-learn model may hold (the readers must pass the same names).
    """
    spec = _flavor(flavor)
    if not isinstance(task, str) or not task:
        raise UserError(f"the task of a model file must be a non-empty string; got {task!r}")
    checked_signature = _check_signature(signature)
    checked_preprocessing = _check_object(preprocessing, "preprocessing")
    checked_metadata = _check_object(metadata, "metadata")
    payload = spec.dump(model, trusted=trusted)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "flavor": spec.name,
        "task": task,
        # No timestamp: it would make equal models differ; the ledger keeps when.
        "created_with": {
            "boite": boite.__version__,
            "python": platform.python_version(),
            **spec.versions(),
        },
        "files": {spec.member: hashlib.sha256(payload).hexdigest()},
        "signature": checked_signature,
        "preprocessing": checked_preprocessing,
        "metadata": checked_metadata,
    }
    members = {MANIFEST: _json_bytes(manifest, sort_keys=True), spec.member: payload}
    return _write_atomically(Path(path), members)


def write_model_artifact(store: ArtifactStore, **arguments: Any) -> StoredFile:
    """Write a model file (same keywords as :func:`write_model`) into the artifact store."""
    local = store.new_scratch_file(MODEL_FILE_SUFFIX)
    try:
        digest = write_model(local, **arguments)
    except BaseException:
        local.unlink(missing_ok=True)
        raise
    return store.put_file(local, suffix=MODEL_FILE_SUFFIX, sha256=digest)


def _write_atomically(path: Path, members: Mapping[str, bytes]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            _write_zip(handle, members)
            handle.flush()
            os.fsync(handle.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return digest


def _zip_bytes(members: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    _write_zip(buffer, members)
    return buffer.getvalue()


def _write_zip(handle: Any, members: Mapping[str, bytes]) -> None:
    # Stored, not deflated: the bytes then depend on the content alone, not on
    # the zlib build, and a reader never inflates a zip bomb.
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # unix, whatever the platform writing it
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name])


def _json_bytes(value: Any, *, sort_keys: bool) -> bytes:
    text = json.dumps(value, sort_keys=sort_keys, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


# -- checking what is written -------------------------------------------------


def _flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), FLAVORS, n=1)
        hint = f"Did you mean '{close[0]}'? " if close else ""
        raise UserError(
            f"unknown model flavor {name!r}",
            hint=hint + "Known flavors: " + ", ".join(sorted(FLAVORS)) + ".",
        ) from None


def _check_signature(signature: Any) -> dict[str, Any]:
    if not isinstance(signature, Mapping):
        raise UserError(
            "the signature of a model file must be a mapping with 'inputs' and 'outputs'; "
            f"got {_type_name(signature)}"
        )
    for part in ("inputs", "outputs"):
        columns = signature.get(part)
        if not isinstance(columns, list | tuple):
            raise UserError(
                f"signature['{part}'] must be a list of {{'name': ..., 'type': ...}}; "
                f"got {columns!r}"
            )
        seen: set[str] = set()
        for index, column in enumerate(columns):
            where = f"signature['{part}'][{index}]"
            if not isinstance(column, Mapping):
                raise UserError(f"{where} must be a mapping with 'name' and 'type'; got {column!r}")
            for key in ("name", "type"):
                if not isinstance(column.get(key), str) or not column[key]:
                    raise UserError(
                        f"{where}['{key}'] must be a non-empty string; got {column.get(key)!r}"
                    )
            if column["name"] in seen:
                raise UserError(f"{where}: the name {column['name']!r} appears twice in {part}")
            seen.add(column["name"])
    return _plain_json(signature, "signature")


def _check_object(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UserError(f"the {what} of a model file must be a mapping; got {_type_name(value)}")
    return _plain_json(value, what)


def _plain_json(value: Any, where: str) -> Any:
    """A plain copy of ``value`` that survives a JSON round trip unchanged; raise otherwise.

    Checking here, with the path to the offending value, beats json.dumps'
    "Object of type int64 is not JSON serializable"; the copy means later
    changes to the caller's objects cannot reach the file.
    """
    if value is None or isinstance(value, bool):
        return value if value is None else bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UserError(
                f"{where} is {value}, which JSON cannot hold",
                hint="Use null for a missing number.",
            )
        return float(value)
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UserError(
                    f"{where} has the key {key!r}; JSON keys are strings",
                    hint="Convert the keys with str() and back when reading.",
                )
            plain[str(key)] = _plain_json(item, f"{where}[{key!r}]")
        return plain
    if isinstance(value, list | tuple):
        return [_plain_json(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise UserError(
        f"{where} is a {_type_name(value)}, which JSON cannot hold",
        hint="Use str, int, float, bool, None, lists and dicts; convert numpy values "
        "with .item() or .tolist().",
    )


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


# -- reading ------------------------------------------------------------------


def read_model(
    path: Path | str,
    *,
    expected_sha256: str | None = None,
    trusted: Sequence[str] = (),
) -> ModelFile:
    """Read and verify the model file at ``path``.

    With ``expected_sha256``, the file's bytes are checked before anything in
    them is parsed; they are read once, so what is checked is what is loaded.
    ``trusted`` names extra skops types a scikit-learn model may hold.
    """
    return _read(Path(path), str(path), expected_sha256, trusted)


def read_model_artifact(
    store: ArtifactStore, uri: str, sha256: str, *, trusted: Sequence[str] = ()
) -> ModelFile:
    """Read the model file stored at ``uri`` in ``store``, verified against ``sha256``."""
    return _read(store.local_path(uri, sha256, what="model file"), uri, sha256, trusted)


def _read(path: Path, uri: str, expected: str | None, trusted: Sequence[str]) -> ModelFile:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if expected is not None:
            raise ArtifactIntegrityError(
                uri, expected, "(file missing)", what="model file"
            ) from None
        raise ModelFileError("no such model file", path=uri) from None
    if expected is not None:
        found = hashlib.sha256(data).hexdigest()
        if found != expected:
            raise ArtifactIntegrityError(uri, expected, found, what="model file")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ModelFileError(
            "is not a boite model file (not a zip archive)",
            path=uri,
            hint="A model file is written by boite.registry.modelfile.write_model.",
        ) from None
    with archive:
        version, manifest = _format_version(archive, uri)
        reader = READERS.get(version)
        if reader is None:
            raise _unreadable_version(version, manifest, uri)
        return reader(archive, manifest, uri, trusted)


def _format_version(archive: zipfile.ZipFile, uri: str) -> tuple[int, dict[str, Any]]:
    names = archive.namelist()
    if len(names) != len(set(names)):
        # zipfile would read the last of two same-named members; a file
        # crafted that way shows one content to a tool and another to boite.
        raise ModelFileError("holds two members with the same name", path=uri)
    if MANIFEST in names:
        manifest = _read_json_member(archive, MANIFEST, uri)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ModelFileError(
                f"its {MANIFEST} is not the manifest of a boite model file", path=uri
            )
        version = manifest.get("format_version")
        if type(version) is not int:
            raise ModelFileError(
                f"its manifest has no integer format_version (found {version!r})", path=uri
            )
        return version, manifest
    if {"meta.json", "model.txt"} <= set(names):
        return 0, {}
    raise ModelFileError(
        "is not a boite model file (it has no manifest.json); members: " + ", ".join(names[:10]),
        path=uri,
    )


def _unreadable_version(version: int, manifest: Mapping[str, Any], uri: str) -> ModelFileError:
    readable = ", ".join(str(v) for v in sorted(READERS))
    written_by = _written_by(manifest)
    if version > FORMAT_VERSION:
        return ModelFileError(
            f"it was written in model file format version {version}"
            + (f" by boite {written_by}" if written_by else "")
            + f"; boite {boite.__version__} reads format versions {readable}",
            path=uri,
            hint=f"Upgrade boite to {written_by or 'a newer release'} or later to read it.",
        )
    return ModelFileError(
        f"its format version {version} is unknown; boite reads format versions {readable}",
        path=uri,
    )


def _written_by(manifest: Mapping[str, Any]) -> str | None:
    created = manifest.get("created_with")
    version = created.get("boite") if isinstance(created, dict) else None
    return version if isinstance(version, str) else None


def _read_json_member(archive: zipfile.ZipFile, name: str, uri: str) -> Any:
    if archive.getinfo(name).file_size > _MAX_MANIFEST_BYTES:
        raise ModelFileError(f"its {name} is too large to be a manifest", path=uri)
    try:
        return json.loads(archive.read(name))
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"its {name} cannot be read: {exc}", path=uri) from exc


Reader = Callable[[zipfile.ZipFile, dict[str, Any], str, Sequence[str]], ModelFile]


def _read_v1(
    archive: zipfile.ZipFile, manifest: dict[str, Any], uri: str, trusted: Sequence[str]
) -> ModelFile:
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(name, str) and isinstance(digest, str) for name, digest in files.items()
    ):
        raise ModelFileError("its manifest has no valid 'files' table", path=uri)
    members = set(archive.namelist()) - {MANIFEST}
    unlisted = sorted(members - set(files))
    if unlisted:
        raise ModelFileError(
            "it holds members its manifest does not list: " + ", ".join(unlisted),
            path=uri,
            hint="Something was added to the file after boite wrote it; do not load it.",
        )
    payloads: dict[str, bytes] = {}
    # Every member is checked before any is parsed.
    for name, expected in sorted(files.items()):
        member_uri = f"{uri}!{name}"
        if name not in members:
            raise ArtifactIntegrityError(
                member_uri, expected, "(member missing)", what="model file"
            )
        info = archive.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelFileError(
                f"its member {name} is compressed, which format 1 never is", path=uri
            )
        try:
            data = archive.read(name)
        except zipfile.BadZipFile as exc:  # a CRC mismatch: bytes changed in place
            raise ArtifactIntegrityError(
                member_uri, expected, f"(damaged: {exc})", what="model file"
            ) from exc
        found = hashlib.sha256(data).hexdigest()
        if found != expected:
            raise ArtifactIntegrityError(member_uri, expected, found, what="model file")
        payloads[name] = data
    flavor_name = manifest.get("flavor")
    spec = FLAVORS.get(flavor_name) if isinstance(flavor_name, str) else None
    if spec is None:
        written_by = _written_by(manifest)
        raise ModelFileError(
            f"its model has the flavor {flavor_name!r}, which boite {boite.__version__} "
            "cannot read (known flavors: " + ", ".join(sorted(FLAVORS)) + ")",
            path=uri,
            hint=f"It was written by boite {written_by}; upgrade boite to that version or later."
            if written_by
            else None,
        )
    if spec.member not in payloads:
        raise ModelFileError(f"it has no {spec.member} for its {spec.name} model", path=uri)
    task, signature = manifest.get("task"), manifest.get("signature")
    preprocessing, metadata = manifest.get("preprocessing"), manifest.get("metadata")
    if not isinstance(task, str) or not isinstance(signature, dict):
        raise ModelFileError("its manifest lacks a task or a signature", path=uri)
    if not isinstance(preprocessing, dict) or not isinstance(metadata, dict):
        raise ModelFileError("its manifest lacks preprocessing or metadata", path=uri)
    model = spec.load(payloads[spec.member], trusted=trusted, path=uri)
    created = manifest.get("created_with")
    return ModelFile(
        flavor=spec.name,
        task=task,
        model=model,
        signature=signature,
        preprocessing=preprocessing,
        metadata=metadata,
        format_version=1,
        created_with={str(k): str(v) for k, v in created.items()}
        if isinstance(created, dict)
        else {},
    )


def _read_v0(
    archive: zipfile.ZipFile, manifest: dict[str, Any], uri: str, trusted: Sequence[str]
) -> ModelFile:
    """Format 0: a zip of ``meta.json`` and a LightGBM ``model.txt``, no member hashes.

    Its integrity rests on the whole-file hash alone, which the registry
    always passes as ``expected_sha256``.
    """
    meta = _read_json_member(archive, "meta.json", uri)
    if not isinstance(meta, dict):
        raise ModelFileError("its meta.json is not an object", path=uri)
    algorithm = meta.get("algorithm")
    if algorithm != "lightgbm":
        raise ModelFileError(
            f"its format 0 model has the algorithm {algorithm!r}; format 0 held LightGBM only",
            path=uri,
        )
    features = meta.get("features")
    task = meta.get("task")
    if not isinstance(task, str) or not isinstance(features, list):
        raise ModelFileError("its meta.json lacks a task or a feature list", path=uri)
    try:
        text = archive.read("model.txt")
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"its model.txt is damaged: {exc}", path=uri) from exc
    model = FLAVORS["lightgbm"].load(text, trusted=trusted, path=uri)
    signature = {
        # Format 0 fed LightGBM a float matrix; it had no other input type.
        "inputs": [{"name": str(name), "type": "double"} for name in features],
        "outputs": [{"name": "prediction", "type": "double"}],
    }
    known = {"algorithm", "task", "features", "boite_version"}
    version = meta.get("boite_version")
    return ModelFile(
        flavor="lightgbm",
        task=task,
        model=model,
        signature=signature,
        preprocessing={},
        metadata={key: value for key, value in meta.items() if key not in known},
        format_version=0,
        created_with={"boite": str(version)} if version is not None else {},
    )


READERS: dict[int, Reader] = {0: _read_v0, 1: _read_v1}
