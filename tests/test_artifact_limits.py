"""Decompression bombs and oversized artifacts are refused (exit 5) before they cost memory.

Each bomb is checked by running `scorehouse verify` (or `register`) in a child process whose
peak RSS is read with getrusage(RUSAGE_CHILDREN): a memory bound, not a timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scorehouse
from scorehouse import artifact as artifact_io
from scorehouse.artifact.limits import Limits
from scorehouse.errors import ArtifactError, IntegrityError

BOMB = 512 << 20  # bytes of zeros a bomb inflates to: the old reader needed twice that
MAX_RSS_MB = 300  # a refusal stays under this whatever the bomb's size
MODEL_FILE = "model/model.lgb.txt"
MEASURE = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
           "sys.exit(rc)")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A small honest LightGBM artifact (no pickle, so it loads without trust)."""
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300)})
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, (X.x > 0).astype(int))
    path = tmp_path_factory.mktemp("small") / "m.shz"
    return scorehouse.package(model, X, name="m", path=path, compile=False)


def _entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _zeros_entry(zf: zipfile.ZipFile, name: str, size: int) -> None:
    """`size` zeros, deflated, streamed in (the test never holds them in memory)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w") as fh:
        block = bytes(1 << 22)
        for _ in range(size // len(block)):
            fh.write(block)


def _sha_of_zeros(size: int) -> str:
    h, block = hashlib.sha256(), bytes(1 << 22)
    for _ in range(size // len(block)):
        h.update(block)
    return h.hexdigest()


def bomb_artifact(small: Path, dst: Path, listed: dict[str, int], unlisted: dict[str, int],
                  recorded: dict[str, int] | None = None) -> Path:
    """`small` plus entries of zeros; the `listed` ones are in the manifest with their true
    sha256 and size (an attacker can compute both), the `unlisted` ones are not. `recorded`
    overrides sizes the manifest records."""
    entries = _entries(small)
    manifest = json.loads(entries.pop("MANIFEST.json"))
    for name, size in listed.items():
        manifest["files"][name] = _sha_of_zeros(size)
        manifest["file_sizes"][name] = size
    manifest["file_sizes"].update(recorded or {})
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("MANIFEST.json", json.dumps(manifest, indent=1, sort_keys=True))
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, size in {**listed, **unlisted}.items():
            _zeros_entry(zf, name, size)
    return dst


def declare_size(path: Path, name: str, size: int) -> None:
    """Rewrite the inflated size `name` declares (local header and central directory)."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo(name).header_offset
    struct.pack_into("<I", raw, local + 22, size)
    eocd = raw.rindex(b"PK\x05\x06")
    count, _, cd = struct.unpack_from("<HII", raw, eocd + 10)
    for _ in range(count):
        nlen, xlen, clen = struct.unpack_from("<HHH", raw, cd + 28)
        if raw[cd + 46:cd + 46 + nlen].decode() == name:
            struct.pack_into("<I", raw, cd + 24, size)
        cd += 46 + nlen + xlen + clen
    path.write_bytes(bytes(raw))


def run_measured(*args: str, env: dict[str, str] | None = None) -> tuple[int, int, str]:
    """`scorehouse ARGS` in a child: (exit code, peak RSS in MB, stderr)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")}
    base["SCOREHOUSE_HOME"] = os.environ["SCOREHOUSE_HOME"]
    script = str(Path(sys.executable).with_name("scorehouse"))
    p = subprocess.run([sys.executable, "-c", MEASURE, script, *args], env={**base, **(env or {})},
                       capture_output=True, text=True, timeout=300)
    lines = p.stderr.strip().splitlines()
    return p.returncode, int(lines[-1]) // 1024, "\n".join(lines[:-1])


@pytest.mark.parametrize("case", ["unlisted", "listed-ratio", "lying-size", "nested"])
def test_bombs_are_refused_with_exit_5_in_bounded_memory(small, tmp_path, case):
    bomb = tmp_path / "bomb.shz"
    if case == "unlisted":  # the reproducer's bomb
        bomb_artifact(small, bomb, {}, {"pad.bin": BOMB})
        expect = "does not list"
    elif case == "listed-ratio":  # listed, with its true hash and size: caught by the ratio
        bomb_artifact(small, bomb, {"compiled/model.onnx": BOMB}, {})
        expect = "refused as a decompression bomb"
    elif case == "lying-size":  # declares 4 KiB (the manifest agrees), inflates to 512 MiB
        bomb_artifact(small, bomb, {"compiled/model.onnx": BOMB}, {},
                      recorded={"compiled/model.onnx": 4096})
        declare_size(bomb, "compiled/model.onnx", 4096)
        expect = "larger than it declares"
    else:  # a zip inside the zip is never opened: it is just an unlisted entry
        inner = tmp_path / "inner.zip"
        with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zf:
            _zeros_entry(zf, "pad.bin", BOMB)
        entries = _entries(small)
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries.items():
                zf.writestr(name, data)
            zf.write(inner, "model/inner.zip")
        expect = "does not list"
    assert bomb.stat().st_size < 2 << 20  # a couple of MB on disk
    for command in ("verify", "register"):
        code, peak, err = run_measured(command, str(bomb))
        assert code == 5 and expect in err, (command, code, err)
        assert err.count("\n") == 0 and err.startswith("error: "), err
        assert peak <= MAX_RSS_MB, f"{command} peaked at {peak} MB"


def test_declared_sizes_over_the_limits_are_refused_before_inflating(small, tmp_path,
                                                                    monkeypatch):
    art = artifact_io.read(small)
    assert art.manifest.to_dict()["file_sizes"] == {n: len(b) for n, b in art.files.items()}
    # The manifest records each file's size: a declared size that differs is refused.
    with pytest.raises(IntegrityError, match=f"{MODEL_FILE} does not match its size"):
        _declare_and_read(small, tmp_path / "other.shz", len(art.files[MODEL_FILE]) + 1)
    # 3 GiB declared by a few KB, the manifest agreeing: a bomb by its ratio.
    huge = bomb_artifact(small, tmp_path / "huge.shz", {}, {}, recorded={MODEL_FILE: 3 << 30})
    declare_size(huge, MODEL_FILE, 3 << 30)
    with pytest.raises(ArtifactError, match="decompression bomb"):
        artifact_io.read(huge)
    monkeypatch.setenv("SCOREHOUSE_ARTIFACT_MAX_RATIO", str(1 << 30))  # then by the total
    with pytest.raises(ArtifactError, match="would inflate to 3 GiB, more than the limit of "
                                            "2 GiB"):
        with monkeypatch.context() as m:
            m.setenv("SCOREHOUSE_ARTIFACT_MAX_BYTES", "2G")
            artifact_io.read(huge)
    monkeypatch.delenv("SCOREHOUSE_ARTIFACT_MAX_RATIO")
    monkeypatch.setenv("SCOREHOUSE_ARTIFACT_MAX_BYTES", "10K")
    with pytest.raises(ArtifactError, match=r"more than the limit of 10 KiB "
                                            r"\(\$SCOREHOUSE_ARTIFACT_MAX_BYTES\)"):
        artifact_io.read(small)
    monkeypatch.setenv("SCOREHOUSE_ARTIFACT_MAX_BYTES", "lots")
    with pytest.raises(ArtifactError, match="is not a size"):
        artifact_io.read(small)
    monkeypatch.delenv("SCOREHOUSE_ARTIFACT_MAX_BYTES")
    monkeypatch.setenv("SCOREHOUSE_ARTIFACT_MAX_MANIFEST_BYTES", "100")
    with pytest.raises(ArtifactError, match="MANIFEST.json declares"):
        artifact_io.read(small)


def _declare_and_read(small: Path, dst: Path, size: int):
    dst.write_bytes(small.read_bytes())
    declare_size(dst, MODEL_FILE, size)
    return artifact_io.read(dst)


def test_too_many_entries_are_refused_from_the_directory(small, tmp_path, monkeypatch):
    many = tmp_path / "many.shz"
    with zipfile.ZipFile(many, "w") as zf:
        for name, data in _entries(small).items():
            zf.writestr(name, data)
        for i in range(Limits.from_env().max_files):
            zf.writestr(f"junk/{i}", b"")
    with pytest.raises(ArtifactError, match=r"more than the limit of 64 "
                                            r"\(\$SCOREHOUSE_ARTIFACT_MAX_FILES\)"):
        artifact_io.read(many)
    monkeypatch.setenv("SCOREHOUSE_ARTIFACT_MAX_FILES", "1000")
    with pytest.raises(IntegrityError, match="does not list"):  # within the limit: unlisted
        artifact_io.read(many)


def test_folder_artifacts_are_held_to_the_same_limits(small, tmp_path, monkeypatch):
    folder = tmp_path / "art"
    for name, data in _entries(small).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    assert artifact_io.read(folder).name == "m"
    monkeypatch.setenv("SCOREHOUSE_ARTIFACT_MAX_BYTES", "1K")
    with pytest.raises(ArtifactError, match="SCOREHOUSE_ARTIFACT_MAX_BYTES"):
        artifact_io.read(folder)
    monkeypatch.delenv("SCOREHOUSE_ARTIFACT_MAX_BYTES")
    os.mkfifo(folder / "model" / "pipe")  # reading it would block forever
    with pytest.raises(ArtifactError, match="not a regular file"):
        artifact_io.read(folder)


def test_other_compression_methods_and_encryption_are_refused(small, tmp_path):
    p = tmp_path / "bz.shz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_BZIP2) as zf:
        for name, data in _entries(small).items():
            zf.writestr(name, data)
    with pytest.raises(ArtifactError, match="compression method 12"):
        artifact_io.read(p)
    enc = tmp_path / "enc.shz"
    enc.write_bytes(small.read_bytes())
    raw = bytearray(enc.read_bytes())
    eocd = raw.rindex(b"PK\x05\x06")
    cd = struct.unpack_from("<I", raw, eocd + 16)[0]
    raw[cd + 8] |= 0x1  # the first entry's "encrypted" flag in the central directory
    enc.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="encrypted"):
        artifact_io.read(enc)


def test_the_registry_store_refuses_an_oversized_file_before_reading_it(small, tmp_path,
                                                                        monkeypatch):
    from scorehouse.registry import Registry

    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", str(tmp_path / "store"))
    mv = reg.register(small)
    assert scorehouse.load(mv.ref, registry=reg).predict({"x": 1.0, "y": 0.0}).n_scored == 1
    # Whoever can write to the store (not the database) swaps in a large file.
    with open(mv.artifact_uri, "ab") as fh:
        fh.write(bytes(2 << 20))
    monkeypatch.setenv("SCOREHOUSE_ARTIFACT_MAX_BYTES", "1M")
    with pytest.raises(ArtifactError, match=r"is 2(\.\d+)? MiB, more than the limit of 1 MiB"):
        scorehouse.load(mv.ref, registry=reg)
