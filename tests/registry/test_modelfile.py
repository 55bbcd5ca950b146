"""Model files as a format: deterministic bytes, hash checks, format versions, the legacy reader.

The flavors' own round trips are in test_modelfile_flavors.py; here the json
flavor (a popularity baseline on MovieLens) and a small LightGBM model on
Adult carry the format.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from types import MappingProxyType
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
from public_data import data_file

import boite
from boite.core.artifacts import ArtifactStore, sha256_file
from boite.errors import ArtifactIntegrityError, UserError
from boite.registry.modelfile import (
    FORMAT_VERSION,
    MODEL_FILE_SUFFIX,
    READERS,
    ModelFileError,
    read_model,
    read_model_artifact,
    write_model,
    write_model_artifact,
)

ADULT_NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]

SIGNATURE = {
    "inputs": [{"name": "user_id", "type": "int64"}],
    "outputs": [{"name": "item_ids", "type": "int64", "shape": [-1]}],
}


@pytest.fixture(scope="module")
def popularity() -> dict[str, Any]:
    """The 20 most rated MovieTweetings items: a whole model that is plain JSON."""
    ratings = pd.read_csv(
        data_file("movietweetings_sample/train_data.csv.gz"), usecols=["user_id", "movie_id"]
    ).rename(columns={"user_id": "user", "movie_id": "item"})
    counts = ratings["item"].value_counts().head(20)
    return {
        "kind": "popularity",
        "items": [int(i) for i in counts.index],
        "counts": [int(c) for c in counts],
    }


@pytest.fixture(scope="module")
def adult() -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(data_file("adult/adult.csv.gz"), usecols=[*ADULT_NUMERIC, "income"])
    return frame[ADULT_NUMERIC].to_numpy(dtype=float), (frame["income"] == ">50K").to_numpy()


@pytest.fixture(scope="module")
def booster(adult: tuple[np.ndarray, np.ndarray]) -> lightgbm.Booster:
    X, y = adult
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1}
    data = lightgbm.Dataset(X[:5000], y[:5000], feature_name=ADULT_NUMERIC)
    return lightgbm.train(params, data, num_boost_round=10)


def _write_popularity(path: Path, model: dict[str, Any], **extra: Any) -> str:
    return write_model(
        path,
        flavor="json",
        task="recommendation",
        model=model,
        signature=SIGNATURE,
        preprocessing=extra.pop("preprocessing", {"drop_seen": True}),
        metadata=extra.pop("metadata", {"source": "movietweetings_sample", "top_k": 20}),
        **extra,
    )


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rezip(path: Path, members: dict[str, bytes]) -> None:
    """Write ``members`` back as a valid zip: what someone editing the archive would do."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _edit_manifest(path: Path, **changes: Any) -> None:
    members = _members(path)
    manifest = json.loads(members["manifest.json"])
    manifest.update(changes)
    members["manifest.json"] = json.dumps(manifest).encode()
    _rezip(path, members)


# -- round trip and determinism ------------------------------------------------


def test_json_model_round_trips_with_its_manifest(tmp_path: Path, popularity: dict) -> None:
    path = tmp_path / "pop.model.zip"
    digest = _write_popularity(path, popularity)

    assert digest == sha256_file(path)
    read = read_model(path, expected_sha256=digest)
    assert read.model == popularity
    assert (read.flavor, read.task, read.format_version) == ("json", "recommendation", 1)
    assert read.signature == SIGNATURE
    assert read.preprocessing == {"drop_seen": True}
    assert read.metadata == {"source": "movietweetings_sample", "top_k": 20}
    assert read.created_with["boite"] == boite.__version__
    assert "python" in read.created_with


def test_identical_models_give_identical_bytes(tmp_path: Path, popularity: dict) -> None:
    first = _write_popularity(tmp_path / "a.model.zip", popularity)
    # Equal metadata given in another key order is the same file.
    second = _write_popularity(
        tmp_path / "b.model.zip",
        json.loads(json.dumps(popularity)),
        metadata={"top_k": 20, "source": "movietweetings_sample"},
    )
    assert first == second
    assert (tmp_path / "a.model.zip").read_bytes() == (tmp_path / "b.model.zip").read_bytes()

    other = dict(popularity, counts=[c + 1 for c in popularity["counts"]])
    assert _write_popularity(tmp_path / "c.model.zip", other) != first


def test_archive_is_stored_sorted_and_undated(tmp_path: Path, booster: lightgbm.Booster) -> None:
    path = tmp_path / "m.model.zip"
    write_model(
        path, flavor="lightgbm", task="binary_classification", model=booster, signature=SIGNATURE
    )
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["manifest.json", "model.txt"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    manifest = json.loads(_members(path)["manifest.json"])
    assert manifest["format"] == "boite-model"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["files"]["model.txt"] == hashlib.sha256(_members(path)["model.txt"]).hexdigest()
    assert manifest["created_with"]["lightgbm"] == lightgbm.__version__


def test_write_leaves_no_temporary_file_and_replaces_an_old_one(
    tmp_path: Path, popularity: dict
) -> None:
    path = tmp_path / "models" / "pop.model.zip"
    path.parent.mkdir()
    path.write_bytes(b"an older file")
    digest = _write_popularity(path, popularity)
    assert [p.name for p in path.parent.iterdir()] == ["pop.model.zip"]
    assert read_model(path, expected_sha256=digest).model == popularity

    with pytest.raises(UserError):
        _write_popularity(path, {"score": float("nan")})
    assert [p.name for p in path.parent.iterdir()] == ["pop.model.zip"]
    assert sha256_file(path) == digest


# -- tampering -------------------------------------------------------------------


def test_one_changed_byte_is_caught_before_parsing(tmp_path: Path, popularity: dict) -> None:
    path = tmp_path / "pop.model.zip"
    digest = _write_popularity(path, popularity)
    original = path.read_bytes()
    # Every position, headers included: the file hash sees them all.
    for offset in range(0, len(original), max(1, len(original) // 40)):
        changed = bytearray(original)
        changed[offset] ^= 0x01
        path.write_bytes(bytes(changed))
        with pytest.raises(ArtifactIntegrityError) as caught:
            read_model(path, expected_sha256=digest)
        assert caught.value.expected == digest
        assert caught.value.found == hashlib.sha256(changed).hexdigest()
        assert caught.value.uri == str(path)


def test_a_changed_payload_byte_is_caught_without_the_file_hash(
    tmp_path: Path, popularity: dict
) -> None:
    path = tmp_path / "pop.model.zip"
    _write_popularity(path, popularity)
    data = bytearray(path.read_bytes())
    offset = data.index(b'"counts"') + 2
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError) as caught:
        read_model(path)
    assert caught.value.uri == f"{path}!model.json"


def test_a_member_edited_and_rezipped_under_a_stale_manifest_is_caught(
    tmp_path: Path, booster: lightgbm.Booster
) -> None:
    path = tmp_path / "m.model.zip"
    write_model(
        path, flavor="lightgbm", task="binary_classification", model=booster, signature=SIGNATURE
    )
    members = _members(path)
    manifest = json.loads(members["manifest.json"])
    # Someone edits a leaf value by hand: the zip is valid, its CRCs are right.
    text = members["model.txt"].decode()
    start = text.index("leaf_value=") + len("leaf_value=")
    members["model.txt"] = (text[:start] + "9" + text[start:]).encode()
    _rezip(path, members)

    with pytest.raises(ArtifactIntegrityError) as caught:
        read_model(path)
    assert caught.value.uri == f"{path}!model.txt"
    assert caught.value.expected == manifest["files"]["model.txt"]
    assert caught.value.found == hashlib.sha256(members["model.txt"]).hexdigest()
    assert "changed after it was written" in str(caught.value)


def test_a_member_added_or_removed_is_refused(tmp_path: Path, popularity: dict) -> None:
    path = tmp_path / "pop.model.zip"
    _write_popularity(path, popularity)
    members = _members(path)

    _rezip(path, {**members, "extra.py": b"import os"})
    with pytest.raises(ModelFileError, match=r"does not list: extra\.py"):
        read_model(path)

    _rezip(path, {"manifest.json": members["manifest.json"]})
    with pytest.raises(ArtifactIntegrityError, match="member missing"):
        read_model(path)


def test_two_members_with_one_name_are_refused(tmp_path: Path, popularity: dict) -> None:
    path = tmp_path / "pop.model.zip"
    _write_popularity(path, popularity)
    # zipfile reads the last of two same-named members; a tool may show the first.
    with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("model.json", b'{"kind": "other"}')
    with pytest.raises(ModelFileError, match="same name"):
        read_model(path)


# -- versions and flavors ---------------------------------------------------------


def test_every_format_version_up_to_the_current_one_has_a_reader() -> None:
    assert set(READERS) == set(range(FORMAT_VERSION + 1))


def test_legacy_format_0_file_is_read(
    tmp_path: Path, booster: lightgbm.Booster, adult: tuple[np.ndarray, np.ndarray]
) -> None:
    # Format 0 as early boite wrote it: deflated, timestamped, no manifest.
    path = tmp_path / "legacy.zip"
    meta = {
        "boite_version": "0.0.3",
        "algorithm": "lightgbm",
        "task": "binary_classification",
        "features": ADULT_NUMERIC,
        "trained_at": "2024-03-01T12:00:00Z",
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.json", json.dumps(meta))
        archive.writestr("model.txt", booster.model_to_string())
    digest = sha256_file(path)

    read = read_model(path, expected_sha256=digest)
    assert (read.flavor, read.task, read.format_version) == ("lightgbm", "binary_classification", 0)
    assert [c["name"] for c in read.signature["inputs"]] == ADULT_NUMERIC
    assert read.metadata == {"trained_at": "2024-03-01T12:00:00Z"}
    assert read.created_with == {"boite": "0.0.3"}
    X, _ = adult
    assert np.array_equal(read.model.predict(X[5000:6000]), booster.predict(X[5000:6000]))

    changed = bytearray(path.read_bytes())
    changed[len(changed) // 2] ^= 0x01
    path.write_bytes(bytes(changed))
    with pytest.raises(ArtifactIntegrityError):
        read_model(path, expected_sha256=digest)


def test_legacy_format_0_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "legacy.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("meta.json", json.dumps({"algorithm": "xgboost", "task": "x"}))
        archive.writestr("model.txt", "booster")
    with pytest.raises(ModelFileError, match="LightGBM only"):
        read_model(path)


def test_a_newer_format_version_says_which_boite_reads_it(tmp_path: Path, popularity: dict) -> None:
    path = tmp_path / "pop.model.zip"
    _write_popularity(path, popularity)
    _edit_manifest(path, format_version=FORMAT_VERSION + 1, created_with={"boite": "0.9.0"})
    with pytest.raises(ModelFileError) as caught:
        read_model(path)
    message = str(caught.value)
    assert f"format version {FORMAT_VERSION + 1}" in message
    assert "by boite 0.9.0" in message
    assert "Upgrade boite to 0.9.0" in message
    assert caught.value.exit_code == 2


def test_an_unknown_flavor_says_which_boite_wrote_it(tmp_path: Path, popularity: dict) -> None:
    path = tmp_path / "pop.model.zip"
    _write_popularity(path, popularity)
    _edit_manifest(path, flavor="onnx", created_with={"boite": "0.7.0"})
    with pytest.raises(ModelFileError, match="flavor 'onnx'") as caught:
        read_model(path)
    assert "boite 0.7.0" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip at all", "not a zip archive"),
        (None, "no manifest.json"),
        ("manifest", "not the manifest of a boite model file"),
    ],
)
def test_a_file_that_is_not_a_model_file_is_refused(
    tmp_path: Path, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / "x.model.zip"
    if content is None:
        _rezip(path, {"model.pkl": b"\x80\x04N."})
    elif content == "manifest":
        _rezip(path, {"manifest.json": b'{"format": "mlflow"}'})
    else:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        read_model(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such model file"):
        read_model(tmp_path / "absent.model.zip")
    with pytest.raises(ArtifactIntegrityError, match="file missing"):
        read_model(tmp_path / "absent.model.zip", expected_sha256="0" * 64)


# -- what may be written --------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"flavor": "lightgmb"}, "Did you mean 'lightgbm'"),
        ({"task": ""}, "task of a model file"),
        ({"signature": {"inputs": []}}, r"signature\['outputs'\] must be a list"),
        ({"signature": {"inputs": [{"name": "a"}], "outputs": []}}, r"\['type'\] must be"),
        (
            {"signature": {"inputs": [{"name": "a", "type": "x"}] * 2, "outputs": []}},
            "appears twice",
        ),
        ({"metadata": {"auc": np.float32(0.8)}}, r"metadata\['auc'\] is a numpy.float32"),
        ({"metadata": {"scores": [1.0, float("inf")]}}, r"metadata\['scores'\]\[1\] is inf"),
        ({"preprocessing": {1: "a"}}, "JSON keys are strings"),
        ({"preprocessing": ["scale"]}, "must be a mapping"),
        ({"model": {"items": {3, 4}}}, r"model\['items'\] is a set"),
    ],
)
def test_what_cannot_be_written_is_refused_with_where(
    tmp_path: Path, popularity: dict, changes: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {
        "flavor": "json",
        "task": "recommendation",
        "model": popularity,
        "signature": SIGNATURE,
    }
    with pytest.raises(UserError, match=message):
        write_model(tmp_path / "m.model.zip", **(arguments | changes))
    assert not list(tmp_path.iterdir())


def test_json_like_values_are_written_as_plain_json(tmp_path: Path, popularity: dict) -> None:
    path = tmp_path / "pop.model.zip"
    metadata = {"shape": (3, 4), "params": MappingProxyType({"lr": np.float64(0.1)})}
    _write_popularity(path, popularity, metadata=metadata)
    assert read_model(path).metadata == {"shape": [3, 4], "params": {"lr": 0.1}}


# -- the artifact store -----------------------------------------------------------


def test_model_files_live_in_the_artifact_store(tmp_path: Path, popularity: dict) -> None:
    store = ArtifactStore(".boite/artifacts", root=tmp_path, scratch=tmp_path / ".boite/scratch")
    arguments = {"flavor": "json", "task": "recommendation", "model": popularity}
    stored = write_model_artifact(store, signature=SIGNATURE, **arguments)
    again = write_model_artifact(store, signature=SIGNATURE, **arguments)
    assert again == stored
    assert stored.uri.endswith(stored.sha256 + MODEL_FILE_SUFFIX)
    assert not list((tmp_path / ".boite/scratch").iterdir())

    assert read_model_artifact(store, stored.uri, stored.sha256).model == popularity

    target = (
        tmp_path / ".boite/artifacts" / stored.sha256[:2] / f"{stored.sha256}{MODEL_FILE_SUFFIX}"
    )
    target.write_bytes(target.read_bytes().replace(b'"popularity"', b'"popularitz"'))
    with pytest.raises(ArtifactIntegrityError) as caught:
        read_model_artifact(store, stored.uri, stored.sha256)
    assert caught.value.uri == stored.uri


def test_a_failed_store_write_leaves_no_scratch_file(tmp_path: Path) -> None:
    store = ArtifactStore(".boite/artifacts", root=tmp_path, scratch=tmp_path / "scratch")
    with pytest.raises(UserError):
        write_model_artifact(
            store, flavor="json", task="t", model=io.BytesIO(), signature=SIGNATURE
        )
    assert not list((tmp_path / "scratch").iterdir())
