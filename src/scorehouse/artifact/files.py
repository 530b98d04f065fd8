"""The artifact on disk: a zip (`.shz`) or a folder holding MANIFEST.json, model files and an
optional SIGNATURE; writing it, reading it back, and verifying every hash."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, IntegrityError, NotFoundError, TrustError
from .environment import warn_on_mismatch
from .flavors import flavor_named
from .hashing import sha256
from .signing import SIGNATURE_FILE, sign, signing_key, verify

MANIFEST_FILE = "MANIFEST.json"
FORMAT_VERSION = 1
SUFFIX = ".shz"


@dataclass
class Artifact:
    """A verified artifact in memory: its manifest, file bytes, and how it came to be trusted."""

    manifest: dict[str, Any]
    files: dict[str, bytes]
    manifest_sha256: str
    source: str
    trusted_by: str | None = None  # "registry", "signature", "user" or None
    _model: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The model's name."""
        return self.manifest["name"]

    @property
    def flavor(self) -> str:
        """How the model is stored: sklearn, python, lightgbm, xgboost or onnx."""
        return self.manifest["model"]["flavor"]

    @property
    def pickled(self) -> bool:
        """True when loading runs pickled code, so trust is required."""
        return bool(self.manifest["model"].get("pickled"))

    def model(self) -> Any:
        """The native model object (unpickled or loaded on first use)."""
        if self._model is None:
            if self.pickled and self.trusted_by is None:
                raise TrustError(_untrusted_message(self.source, self.flavor))
            self._model = flavor_named(self.flavor).load(self.files, self.manifest)
        return self._model


def _untrusted_message(where: str, flavor: str) -> str:
    return (
        f"{where} holds pickled Python code ({flavor} model), which runs when loaded; "
        "load it through the registry, verify it with a signing key you hold "
        "(SCOREHOUSE_SIGNING_KEY), or pass trust=True (CLI: --trust) if you trust its source"
    )


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of a manifest (sorted keys, so hashes are reproducible)."""
    return json.dumps(manifest, indent=1, sort_keys=True, default=str).encode()


def write(manifest: dict[str, Any], files: dict[str, bytes], path: str | os.PathLike,
          key: str | bytes | None = None) -> str:
    """Write an artifact (zip if `path` ends in .shz, else a folder); returns the manifest sha256.

    The manifest gets the sha256 of every file; with a key (or $SCOREHOUSE_SIGNING_KEY) a
    SIGNATURE is added. The write goes to a temporary name first, then is renamed.
    """
    manifest = dict(manifest, files={p: sha256(b) for p, b in sorted(files.items())})
    mbytes = manifest_bytes(manifest)
    k = signing_key(key)
    entries = {MANIFEST_FILE: mbytes, **files}
    if k:
        entries[SIGNATURE_FILE] = sign(mbytes, k)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == SUFFIX:
        _write_zip(path, entries)
    else:
        if path.exists() and any(path.iterdir()):
            raise ArtifactError(f"{path} exists and is not empty; choose a new folder")
        for name, data in entries.items():
            target = path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return sha256(mbytes)


def _read_entries(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_bytes()
                for p in sorted(path.rglob("*")) if p.is_file()}
    return _unzip(path.read_bytes(), str(path))


#: What a damaged zip raises while being read: a bad directory, a corrupt deflate stream, a cut.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError)


def _unzip(data: bytes, source: str) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    except _ZIP_ERRORS as e:
        raise ArtifactError(f"{source} is not a readable scorehouse artifact (damaged or not a "
                            f"zip file: {e})") from None


def read_bytes(data: bytes, source: str, **kw: Any) -> Artifact:
    """Verify and open an artifact held in memory (a .shz zip's bytes)."""
    return open_entries(_unzip(data, source), source, **kw)


def read(path: str | os.PathLike, **kw: Any) -> Artifact:
    """Verify and open the artifact at `path` (see `open_entries` for the checks)."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"no artifact at {path}")
    return open_entries(_read_entries(path), str(path), **kw)


def open_entries(
    entries: dict[str, bytes], source: str, *, trust: bool = False, key: str | bytes | None = None,
    expected_sha256: str | None = None, check_versions: bool = True,
) -> Artifact:
    """Check the manifest, every file hash, the signature and trust; return the Artifact.

    Raises IntegrityError on any mismatch, SignatureError when a key is set and the
    signature is missing or wrong, TrustError when pickled code is neither from the
    registry (`expected_sha256`), signed, nor explicitly trusted.
    """
    mbytes = entries.get(MANIFEST_FILE)
    if mbytes is None:
        raise ArtifactError(f"{source} has no {MANIFEST_FILE}; it is not a scorehouse artifact")
    msha = sha256(mbytes)
    if expected_sha256 is not None and msha != expected_sha256:
        raise IntegrityError(f"{source}: manifest sha256 {msha[:12]}… does not match the "
                             f"registry's record {expected_sha256[:12]}…; the artifact was changed")
    try:
        manifest = json.loads(mbytes)
    except ValueError:
        raise IntegrityError(f"{source}: {MANIFEST_FILE} is not valid JSON") from None
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError(f"{source} uses artifact format {manifest.get('format_version')}; "
                            "upgrade scorehouse to read it")
    listed = manifest.get("files", {})
    files = {}
    for name, want in listed.items():
        data = entries.get(name)
        if data is None:
            raise IntegrityError(f"{source}: file {name} listed in the manifest is missing")
        if sha256(data) != want:
            raise IntegrityError(f"{source}: file {name} does not match its sha256 in the "
                                 "manifest; the artifact was tampered with or corrupted")
        files[name] = data
    extra = set(entries) - set(listed) - {MANIFEST_FILE, SIGNATURE_FILE}
    if extra:
        raise IntegrityError(f"{source}: holds files the manifest does not list: {sorted(extra)}")
    trusted_by = "registry" if expected_sha256 is not None else None
    k = signing_key(key)
    if k:
        verify(mbytes, entries.get(SIGNATURE_FILE), k, source)
        trusted_by = trusted_by or "signature"
    if trust and trusted_by is None:
        trusted_by = "user"
    art = Artifact(manifest, files, msha, source, trusted_by)
    if art.pickled and trusted_by is None:
        raise TrustError(_untrusted_message(source, art.flavor))
    if check_versions:
        env = manifest.get("environment", {})
        warn_on_mismatch(art.name, env.get("requirements", {}), env.get("python"), art.pickled)
    return art


def resign(path: str | os.PathLike, key: str | bytes) -> None:
    """Add (or replace) the HMAC signature of an existing artifact after verifying its hashes."""
    path = Path(path)
    art = read(path, trust=True, check_versions=False)
    mbytes = manifest_bytes(art.manifest)
    if sha256(mbytes) != art.manifest_sha256:  # pragma: no cover - canonical form is stable
        raise IntegrityError(f"{path}: manifest is not in canonical form")
    k = signing_key(key)
    if not k:
        raise ArtifactError("no signing key given")
    signature = sign(mbytes, k)
    if path.is_dir():
        (path / SIGNATURE_FILE).write_bytes(signature)
        return
    entries = _read_entries(path)
    entries[SIGNATURE_FILE] = signature
    _write_zip(path, entries)


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """Entries as a reproducible zip: sorted names and fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), entries[name],
                        compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def pack(path: str | os.PathLike) -> bytes:
    """The artifact at `path` (zip or folder) as .shz zip bytes."""
    path = Path(path)
    return path.read_bytes() if path.is_file() else zip_bytes(_read_entries(path))


def _write_zip(path: Path, entries: dict[str, bytes]) -> None:
    # Written under a temporary name, then renamed: a reader never sees half an artifact.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(zip_bytes(entries))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
