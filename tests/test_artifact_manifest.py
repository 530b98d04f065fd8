"""The typed Manifest: artifacts written before it existed read and write back byte for byte."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from scorehouse import artifact as artifact_io
from scorehouse.artifact import Compiled, CompileStatus, Manifest
from scorehouse.artifact.files import manifest_bytes
from scorehouse.errors import ArtifactError, IntegrityError

FIXTURES = Path(__file__).parent / "fixtures"
# MANIFEST.json files written by `package` before the manifest was typed: a LightGBM model
# compiled and passed, a regression not compiled, a pipeline whose step did not convert,
# and a multiclass forest.
OLD_MANIFESTS = sorted((FIXTURES / "manifests").glob("*.json"))
OLD_ARTIFACT = FIXTURES / "lgb-before-manifest-type.shz"


def _keys(value: object, prefix: str = "") -> set[str]:
    """Every key path of a JSON value, e.g. {"model", "model.flavor", ...}."""
    if isinstance(value, dict):
        out = set()
        for k, v in value.items():
            out |= {f"{prefix}{k}"} | _keys(v, f"{prefix}{k}.")
        return out
    if isinstance(value, list):
        return set().union(*(_keys(v, f"{prefix}[].") for v in value)) if value else set()
    return set()


@pytest.mark.parametrize("path", OLD_MANIFESTS, ids=lambda p: p.stem)
def test_an_old_manifest_round_trips_byte_identically(path):
    data = path.read_bytes()
    m = Manifest.from_json(data, str(path))
    assert m.to_bytes() == data
    assert hashlib.sha256(m.to_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert m.to_dict() == json.loads(data)
    assert _keys(m.to_dict()) == _keys(json.loads(data))
    assert list(m.to_dict()) == list(json.loads(data))  # key order kept too


def test_an_artifact_built_before_the_typed_manifest_loads_and_resigns(tmp_path):
    with zipfile.ZipFile(OLD_ARTIFACT) as zf:
        stored = zf.read("MANIFEST.json")
    art = artifact_io.read(OLD_ARTIFACT, require_trust=False, check_versions=False)
    assert art.manifest_sha256 == hashlib.sha256(stored).hexdigest()
    assert art.manifest.to_bytes() == stored and manifest_bytes(art.manifest) == stored
    m = art.manifest
    assert (m.name, m.task, list(m.classes), m.model.flavor, m.model.runtime) == (
        "lgb", "binary", [0, 1], "lightgbm", "onnx")
    assert m.compiled is not None and m.compiled.status == CompileStatus.PASSED
    assert m.compiled.parity is not None and m.compiled.parity.rows == 400
    assert m.lineage is not None and m.lineage.training_data is not None
    assert m.lineage.training_data.rows == 400 and m.baseline is not None
    assert [c.name for c in m.output_schema or ()] == ["label", "probability_0", "probability_1"]
    # resign rewrites the manifest from the typed object: its hash must not move
    copy = tmp_path / "old.shz"
    copy.write_bytes(OLD_ARTIFACT.read_bytes())
    artifact_io.resign(copy, "k" * 32)
    again = artifact_io.read(copy, key="k" * 32, check_versions=False)
    assert again.manifest_sha256 == art.manifest_sha256 and again.trusted_by == "signature"


def test_unknown_keys_absent_keys_and_nulls_are_kept():
    raw = json.loads(OLD_MANIFESTS[0].read_bytes())
    raw["from_the_future"] = {"a": [1, 2.5, None]}
    raw["model"]["accelerator"] = "tpu"
    raw["lineage"]["training_data"]["extra_note"] = None
    raw["compiled"]["parity"]["new_figure"] = 0.25
    raw["output_schema"][0]["unit"] = "label"
    del raw["description"], raw["environment"], raw["model"]["pickled"]
    raw["classes"] = None
    m = Manifest.from_dict(raw)
    assert m.to_dict() == raw and _keys(m.to_dict()) == _keys(raw)
    assert m.extra == {"from_the_future": {"a": [1, 2.5, None]}}
    assert m.model.extra == {"accelerator": "tpu"} and not m.model.holds("pickled")
    assert m.to_bytes() == json.dumps(raw, indent=1, sort_keys=True).encode()


def test_a_changed_part_is_written_and_the_rest_kept():
    from dataclasses import replace

    raw = json.loads(OLD_MANIFESTS[0].read_bytes())
    m = Manifest.from_dict(raw)
    changed = replace(m, description="new", compiled=replace(
        m.compiled, status=CompileStatus.FAILED_PARITY, reason="r"))
    want = {**raw, "description": "new",
            "compiled": {**raw["compiled"], "status": "failed parity", "reason": "r"}}
    assert changed.to_dict() == want


def test_a_manifest_built_in_code_writes_what_package_wrote():
    from scorehouse.artifact import Environment, ModelSection

    m = Manifest(name="m", task="regression",
                 model=ModelSection(flavor="sklearn", pickled=True, params={}),
                 input_schema={"columns": []},
                 environment=Environment(python="3.11", requirements={}),
                 compiled=Compiled(status=CompileStatus.NOT_CONVERTED, step="s", reason="r"))
    assert m.to_dict() == {
        "format_version": 1, "name": "m", "description": "", "task": "regression",
        "classes": None,
        "model": {"flavor": "sklearn", "pickled": True, "runtime": "native", "params": {}},
        "input_schema": {"columns": []},
        "environment": {"python": "3.11", "requirements": {}},
        "compiled": {"format": "onnx", "status": "not converted", "reason": "r", "step": "s"},
    }


@pytest.mark.parametrize("text, error, message", [
    (b"[1]", IntegrityError, "not a JSON object"),
    (b"{", IntegrityError, "not valid JSON"),
    (b'{"format_version": 9}', ArtifactError, "upgrade scorehouse"),
    (b'{"name": "m", "model": {}, "files": {}}', IntegrityError, "lacks a name, model.flavor"),
    (b'{"name": "m", "model": {"flavor": "sklearn"}, "files": {}, "lineage": 3}',
     IntegrityError, "lineage is not a JSON object"),
    (b'{"name": "m", "model": {"flavor": "sklearn"}, "files": {}, "output_schema": {}}',
     IntegrityError, "output_schema is not a JSON array"),
])
def test_a_malformed_manifest_says_what_is_wrong(text, error, message):
    with pytest.raises(error, match=message) as e:
        Manifest.from_json(text, "x.shz")
    assert "x.shz" in str(e.value)


def test_code_written_for_the_dict_manifest_still_reads_it():
    data = OLD_MANIFESTS[0].read_bytes()
    raw, m = json.loads(data), Manifest.from_json(data, "old")
    assert m["compiled"]["status"] == raw["compiled"]["status"] == m.compiled.status
    assert m.get("nope", 1) == 1 and "lineage" in m and dict(m) == raw and {**m} == raw
    m["model"]["runtime"] = "changed"  # a copy: the manifest itself cannot be edited
    assert m.model.runtime == raw["model"]["runtime"] and m.to_bytes() == data
