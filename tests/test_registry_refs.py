"""Model references parsed once (`ModelRef`), and the one model-name rule of packaging and
registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import scorehouse
from scorehouse import artifact as artifact_io
from scorehouse.errors import UsageError
from scorehouse.registry import Registry
from scorehouse.registry.refs import ModelRef, Ref, RefKind, registry_ref, valid_name

BAD_NAMES = ["-churn", ".churn", "_churn", "churn model", "churn/3", "churn@x", "", "a" * 101,
             "ch\u00fcrn", "churn\n"]


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X.a > 0).astype(int)
    return LogisticRegression().fit(X, y), X


@pytest.mark.parametrize("text, kind, name, version, alias", [
    ("churn", RefKind.ALIAS, "churn", None, "production"),
    ("churn@latest", RefKind.ALIAS, "churn", None, "latest"),
    ("churn/3", RefKind.VERSION, "churn", 3, None),
    ("models/churn.shz", RefKind.PATH, None, None, None),
    ("not a ref!", RefKind.PATH, None, None, None),
])
def test_a_reference_is_parsed_once_into_its_kind(text, kind, name, version, alias):
    ref = ModelRef.parse(text)
    assert (ref.kind, ref.name, str(ref)) == (kind, name, text)
    assert ref.is_path is (kind is RefKind.PATH)
    if kind is RefKind.PATH:
        assert ref.path == Path(text) and ref.registry is None
        with pytest.raises(UsageError, match="path of an artifact, not a registry reference"):
            registry_ref(ref)
    else:
        assert ref.registry == Ref(name, version=version, alias=alias) == registry_ref(ref)
    assert ModelRef.parse(ref) is ref


def test_an_existing_folder_or_path_object_is_a_path(tmp_path):
    (tmp_path / "churn").mkdir()
    (tmp_path / "churn" / "MANIFEST.json").write_text("{}")
    assert ModelRef.parse(str(tmp_path / "churn")).kind is RefKind.PATH
    assert ModelRef.parse(tmp_path / "x").kind is RefKind.PATH
    with pytest.raises(UsageError, match="invalid model reference"):
        ModelRef.parse("  ")


def test_load_takes_a_model_ref(tmp_path, small):
    model, X = small
    path = scorehouse.package(model, X, name="small", path=tmp_path / "small.shz",
                              compile=False)
    scorer = scorehouse.load(ModelRef.parse(str(path)), trust=True)
    assert scorer.name == "small" and scorer.ref == str(path)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_one_name_rule_for_packaging(name, tmp_path, small):
    model, X = small
    with pytest.raises(UsageError, match="invalid model name"):
        valid_name(name)
    with pytest.raises(UsageError, match="invalid model name"):
        scorehouse.package(model, X, name=name, path=tmp_path / "m.shz", compile=False)
    assert not (tmp_path / "m.shz").exists()


@pytest.fixture(scope="module")
def good_artifact(tmp_path_factory, small) -> Path:
    model, X = small
    path = tmp_path_factory.mktemp("good") / "good.shz"
    return scorehouse.package(model, X, name="good", path=path, compile=False)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_one_name_rule_for_the_registry(name, tmp_path, good_artifact):
    # An artifact named so could only come from elsewhere now: written here by hand.
    art = artifact_io.read(good_artifact, trust=True, check_versions=False)
    manifest = {**art.manifest.to_dict(), "name": name}
    path = tmp_path / "bad.shz"
    artifact_io.write(manifest, art.files, path)
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}", artifacts=str(tmp_path / "store"))
    try:
        with pytest.raises(UsageError, match="invalid model name"):
            reg.register(path)
    finally:
        reg.close()


@pytest.mark.parametrize("name", ["churn", "c", "Churn-2.v_1", "9lives", "a" * 100])
def test_good_names_pass_both(name):
    assert valid_name(name) == name
