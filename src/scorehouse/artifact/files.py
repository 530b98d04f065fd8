"""The artifact on disk: a zip (`.shz`) or a folder holding MANIFEST.json, model files and an
optional SIGNATURE; writing it, reading it back, and verifying every hash."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, IntegrityError, NotFoundError, TrustError
from .card_text import CARD_FILE
from .container import Container, check_name, open_container
from .environment import warn_on_mismatch
from .flavors import COMPILED_FILE, Flavor, flavor_named
from .hashing import sha256
from .limits import BYTES_ENV, MANIFEST_ENV, Limits, human
from .manifest import FORMAT_VERSION, MANIFEST_FILE, Manifest
from .recipe import ESTIMATOR_FILE
from .signing import SIGNATURE_FILE, sign, signing_key, verify

SUFFIX = ".shz"
__all__ = ["FORMAT_VERSION", "MANIFEST_FILE", "SUFFIX", "Artifact", "manifest_bytes", "write",
           "read", "read_bytes", "open_container_checked", "resign", "pack", "zip_bytes",
           "one_line"]


@dataclass
class Artifact:
    """A verified artifact in memory: its manifest, file bytes, and how it came to be trusted."""

    manifest: Manifest
    files: dict[str, bytes]
    manifest_sha256: str
    source: str
    trusted_by: str | None = None  # "registry", "signature", "user" or None
    signature: bytes | None = field(default=None, repr=False)  # the SIGNATURE entry, if any
    _model: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The model's name."""
        return self.manifest.name

    @property
    def flavor(self) -> str:
        """How the model is stored: sklearn, python, lightgbm, xgboost or onnx."""
        return self.manifest.model.flavor

    @property
    def pickled(self) -> bool:
        """True when loading unpickles (runs code), so trust is required.

        Decided by the flavor's loader, not by the manifest's own "pickled" field.
        """
        return flavor_named(self.flavor).pickled

    def model(self) -> Any:
        """The native model object (unpickled or loaded on first use).

        Raises:
            TrustError: a pickled model that nothing trusts.
            ArtifactError: a model file that is not pickled cannot be read by its library.
        """
        if self._model is not None:
            return self._model
        flavor = flavor_named(self.flavor)
        if flavor.pickled:
            if self.trusted_by is None:
                raise TrustError(_untrusted_message(self.source, self.flavor))
            # Trusted: an error here is the model's own (e.g. a module it needs is missing).
            self._model = flavor.load(self.files, self.manifest)
            return self._model
        try:
            self._model = flavor.load(self.files, self.manifest)
        except Exception as e:  # noqa: BLE001 - every library's parse error means the same
            raise ArtifactError(f"{self.source}: {', '.join(flavor.files)} is not a readable "
                                f"{flavor.name} model ({one_line(e)})") from None
        return self._model


def one_line(error: BaseException) -> str:
    """`Class: first line of the message` of a library's error (some span many lines)."""
    lines = str(error).strip().splitlines() or [""]
    return f"{type(error).__name__}: {lines[0][:200]}"


def _untrusted_message(where: str, flavor: str) -> str:
    return (
        f"{where} holds pickled Python code ({flavor} model), which runs when loaded; "
        "load it through the registry, verify it with a signing key you hold "
        "(SCOREHOUSE_SIGNING_KEY), or pass trust=True (CLI: --trust) if you trust its source"
    )


def manifest_bytes(manifest: Manifest | Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes of a manifest (sorted keys, so hashes are reproducible).

    Raises:
        IntegrityError: a mapping that is not a manifest (no name or model.flavor).
    """
    if not isinstance(manifest, Manifest):
        manifest = Manifest.from_dict(manifest)
    return manifest.to_bytes()


def write(manifest: Manifest | Mapping[str, Any], files: dict[str, bytes],
          path: str | os.PathLike[str], key: str | bytes | None = None) -> str:
    """Write an artifact (zip if `path` ends in .shz, else a folder); returns the manifest sha256.

    The manifest gets the sha256 and size of every file; with a key (or $SCOREHOUSE_SIGNING_KEY) a
    SIGNATURE is added. The write goes to a temporary name first, then is renamed.

    Raises:
        ArtifactError: `path` is a folder that exists and is not empty.
        IntegrityError: `manifest` is a mapping that is not a manifest.
    """
    if not isinstance(manifest, Manifest):
        manifest = Manifest.from_dict(manifest)
    manifest = replace(manifest, files={p: sha256(b) for p, b in sorted(files.items())},
                       file_sizes={p: len(b) for p, b in sorted(files.items())})
    mbytes = manifest.to_bytes()
    k = signing_key(key)
    entries = {MANIFEST_FILE: mbytes, **files}
    if k:
        entries[SIGNATURE_FILE] = sign(mbytes, k)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == SUFFIX:
        _write_zip(out, entries)
    else:
        if out.exists() and any(out.iterdir()):
            raise ArtifactError(f"{out} exists and is not empty; choose a new folder")
        for name, data in entries.items():
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return sha256(mbytes)


#: Largest SIGNATURE entry accepted (what `sign` writes is about 150 bytes).
MAX_SIGNATURE_BYTES = 4096


def read_bytes(data: bytes, source: str, **kw: Any) -> Artifact:
    """Verify and open an artifact held in memory (a .shz zip's bytes); see `open_container`.

    Raises:
        ArtifactError, IntegrityError, SignatureError, TrustError: as `open_container_checked`.
    """
    return open_container_checked(open_container(data, source), **kw)


def read(path: str | os.PathLike[str], **kw: Any) -> Artifact:
    """Verify and open the artifact at `path` (see `open_container_checked` for the checks).

    Raises:
        NotFoundError: nothing at `path`.
        ArtifactError, IntegrityError, SignatureError, TrustError: as `open_container_checked`.
    """
    where = Path(path)
    if not where.exists():
        raise NotFoundError(f"no artifact at {where}")
    return open_container_checked(open_container(where, str(where)), **kw)


def open_container_checked(
    container: Container, *, trust: bool = False, key: str | bytes | None = None,
    expected_sha256: str | None = None, check_versions: bool = True, require_trust: bool = True,
) -> Artifact:
    """Check the manifest, every file's size and hash, the signature and trust; the Artifact.

    Nothing is inflated before the manifest is read and every entry's declared size is
    checked against the limits and the manifest. Whether loading runs code is decided by
    the manifest's flavor (whose loader is fixed), never by the manifest's own words.

    Raises:
        IntegrityError: any mismatch (including a manifest that contradicts its flavor).
        ArtifactError: an entry over the size limits, or a newer artifact format.
        SignatureError: a key is set and the signature is missing or wrong.
        TrustError: the flavor unpickles a file and the artifact is neither from the
            registry (`expected_sha256`), signed, nor explicitly trusted (with
            `require_trust=False` such an artifact is returned for its metadata; its
            `model()` still raises TrustError).
    """
    source = container.source
    try:
        mbytes, msha, manifest, flavor = _read_manifest(container, expected_sha256)
        listed = manifest.files
        _check_listing(container, manifest, flavor)
        signed = SIGNATURE_FILE in container.entries
        container.check_total([*listed, MANIFEST_FILE] + ([SIGNATURE_FILE] if signed else []))
        signature = container.read(SIGNATURE_FILE, MAX_SIGNATURE_BYTES)[0] if signed else None
        # Trust is settled from the manifest (which holds every file's hash) before the
        # model files are inflated: a refused artifact costs no more than its manifest.
        trusted_by = "registry" if expected_sha256 is not None else None
        k = signing_key(key)
        if k:
            verify(mbytes, signature, k, source)
            trusted_by = trusted_by or "signature"
        if trust and trusted_by is None:
            trusted_by = "user"
        if flavor.pickled and trusted_by is None and require_trust:
            raise TrustError(_untrusted_message(source, flavor.name))
        files: dict[str, bytes] = {}
        for name, want in listed.items():
            data, got = container.read(name)
            if got != want:
                raise IntegrityError(f"{source}: file {name} does not match its sha256 in the "
                                     "manifest; the artifact was tampered with or corrupted")
            files[name] = data
    finally:
        container.close()
    art = Artifact(manifest, files, msha, source, trusted_by, signature)
    if check_versions:
        env = manifest.environment
        warn_on_mismatch(art.name, dict(manifest.requirements), env.python if env else None,
                         art.pickled)
    return art


def _read_manifest(container: Container, expected_sha256: str | None
                   ) -> tuple[bytes, str, Manifest, Flavor]:
    """MANIFEST.json's bytes, sha256, parsed form and flavor, each checked."""
    source = container.source
    if MANIFEST_FILE not in container.entries:
        raise ArtifactError(f"{source} has no {MANIFEST_FILE}; it is not a scorehouse artifact")
    mbytes, msha = container.read(MANIFEST_FILE, container.limits.max_manifest_bytes,
                                  MANIFEST_ENV)
    if expected_sha256 is not None and msha != expected_sha256:
        raise IntegrityError(f"{source}: manifest sha256 {msha[:12]}… does not match the "
                             f"registry's record {expected_sha256[:12]}…; the artifact was changed")
    manifest = Manifest.from_json(mbytes, source)
    return mbytes, msha, manifest, flavor_named(manifest.model.flavor)


def _check_listing(container: Container, manifest: Manifest, flavor: Flavor) -> None:
    """The files the manifest lists are the flavor's, present, and of their recorded sizes.

    The flavor decides which files its loader reads and which it unpickles, so a manifest
    that calls itself unpickled, lists files its flavor never reads, or lacks the file its
    loader needs is refused rather than believed. Raises IntegrityError.
    """
    source, listed = container.source, manifest.files
    claimed = manifest.model.pickled if manifest.model.holds("pickled") else flavor.pickled
    if claimed is not flavor.pickled:
        does = (f"unpickles {', '.join(flavor.unpickles)}, which runs code," if flavor.pickled
                else "unpickles nothing")
        raise IntegrityError(f"{source}: the manifest says pickled={claimed!r}, but a "
                             f"{flavor.name} artifact's loader {does}; the manifest was "
                             "edited, so the artifact is refused")
    for name in listed:
        check_name(name, source)
    # Beside the flavor's own files: the compiled graph, the model card's text and, for a
    # flavor that unpickles its model anyway, the training recipe's pickled estimator.
    unused = sorted(set(listed) - set(flavor.files) - {COMPILED_FILE, CARD_FILE}
                    - ({ESTIMATOR_FILE} if flavor.pickled else set()))
    if unused:
        raise IntegrityError(f"{source}: the manifest lists files a {flavor.name} artifact does "
                             f"not use: {unused}; refused")
    for name in (*flavor.files, *listed):
        if name not in container.entries:
            what = "listed in the manifest" if name in listed else f"that a {flavor.name} model needs"
            raise IntegrityError(f"{source}: file {name} {what} is missing")
        if name not in listed:
            raise IntegrityError(f"{source}: file {name} is not listed in the manifest")
    extra = set(container.entries) - set(listed) - {MANIFEST_FILE, SIGNATURE_FILE}
    if extra:
        raise IntegrityError(f"{source}: holds files the manifest does not list: {sorted(extra)}")
    sizes = manifest.file_sizes
    if not isinstance(sizes, Mapping):  # artifacts written before sizes were recorded
        return
    for name in listed:
        if sizes.get(name) != container.entries[name].size:
            raise IntegrityError(
                f"{source}: file {name} does not match its size in the manifest (declares "
                f"{container.entries[name].size} bytes, the manifest records "
                f"{sizes.get(name)!r}); the artifact was tampered with or corrupted")


def resign(path: str | os.PathLike[str], key: str | bytes) -> None:
    """Add (or replace) the HMAC signature of an existing artifact after verifying its hashes.

    Raises:
        ArtifactError: no key given (or as `read`).
        IntegrityError: the artifact does not verify, or its manifest is not canonical.
    """
    path = Path(path)
    art = read(path, require_trust=False, check_versions=False)
    mbytes = art.manifest.to_bytes()
    if sha256(mbytes) != art.manifest_sha256:
        raise IntegrityError(f"{path}: manifest is not in canonical form")
    k = signing_key(key)
    if not k:
        raise ArtifactError("no signing key given")
    signature = sign(mbytes, k)
    if path.is_dir():
        (path / SIGNATURE_FILE).write_bytes(signature)
        return
    _write_zip(path, {MANIFEST_FILE: mbytes, **art.files, SIGNATURE_FILE: signature})


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """Entries as a reproducible zip: sorted names and fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), entries[name],
                        compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def pack(path: str | os.PathLike[str]) -> bytes:
    """The artifact at `path` (zip or folder) as .shz zip bytes, not yet verified.

    A zip file larger than the inflated-size limit is refused before it is read; a folder's
    files are read within the limits.

    Raises:
        ArtifactError: over the size limits, or an unreadable zip or refused entry.
    """
    path = Path(path)
    limits = Limits.from_env()
    if path.is_file():
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise ArtifactError(f"{path} is {human(size)}, more than the artifact size limit of "
                                f"{human(limits.max_bytes)} (${BYTES_ENV}); refused")
        return path.read_bytes()
    container = open_container(path, str(path), limits)
    try:
        container.check_total(list(container.entries))
        return zip_bytes({name: container.read(name)[0] for name in container.entries})
    finally:
        container.close()


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
