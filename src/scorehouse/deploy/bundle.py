"""`build_bundle`: a folder that installs and serves models with no index and no network.

    bundle/
      bundle.json          what is inside (`BundleInfo`): target, artifacts, packages, sizes
      requirements.lock    every package, `name==version --hash=sha256:…` (pip --require-hashes)
      wheels/              the wheelhouse pip downloaded for the target (scorehouse's own too)
      artifacts/           the models, one .shz each, sha256 in bundle.json
      install.sh           pip install --no-index --find-links wheels --require-hashes, then doctor

What the lock holds: scorehouse's wheel (built from its source tree) and its dependencies
(the serving set: `pyproject.toml`'s dependencies, plus any extras asked for), the libraries
each artifact's manifest names in `environment.requirements` at their recorded versions, and
what those need. When the target is the running Python and machine, the build environment's
own versions are preferred (constraints), so the bundle scores as this environment does;
if pip cannot satisfy them for the target, pip resolves freely and `resolution` says so.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from .. import artifact as artifact_io
from ..errors import ConflictError, NotFoundError, TrustError, UsageError
from ..registry.refs import ModelRef
from . import lock
from .lock import LockedPackage, Target
from .templates import INSTALL_SH

if TYPE_CHECKING:
    from ..registry import Registry

BUNDLE_FILE = "bundle.json"
FORMAT = 1


@dataclass(frozen=True)
class BundledArtifact:
    """One model in the bundle: where it came from (`ref`), its file under artifacts/, the
    file's sha256 and size, and the libraries its manifest names."""

    ref: str
    name: str
    version: int | None
    file: str
    sha256: str
    bytes: int
    flavor: str
    pickled: bool
    requirements: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BundleInfo:
    """`bundle.json`: `target` (`Target.to_dict`), `build` (Python and platform that built
    it), `artifacts`, `packages` (the lock), `extras` of scorehouse included, `resolution`
    ("build-environment": its versions preferred; "pip": pip's choice for the target), and
    `sizes` in bytes (wheels, artifacts, total)."""

    scorehouse: str
    created_at: str
    target: dict[str, Any]
    build: dict[str, str]
    artifacts: list[BundledArtifact]
    packages: list[LockedPackage]
    extras: list[str]
    resolution: str
    sizes: dict[str, int]
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to bundle.json."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BundleInfo:
        """Read back what `to_dict` wrote.

        Raises:
            UsageError: a bundle.json of an unknown format.
        """
        if d.get("format") != FORMAT:
            raise UsageError(f"bundle.json format {d.get('format')!r} is not {FORMAT}")
        return cls(**{**d, "artifacts": [BundledArtifact(**a) for a in d["artifacts"]],
                      "packages": [LockedPackage(**p) for p in d["packages"]]})

    def artifact_paths(self, root: Path) -> list[Path]:
        """The artifact files under `root`, in the order given to `bundle`."""
        return [root / "artifacts" / a.file for a in self.artifacts]


def read_bundle(root: Path) -> BundleInfo:
    """The `BundleInfo` of the bundle folder `root`.

    Raises:
        NotFoundError: no bundle.json there.
        UsageError: not a bundle.json this version reads.
    """
    path = Path(root) / BUNDLE_FILE
    if not path.is_file():
        raise NotFoundError(f"{path} not found: not a bundle (scorehouse bundle REF -o DIR)")
    try:
        return BundleInfo.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as e:
        raise UsageError(f"{path} is not a bundle.json this scorehouse reads ({e})") from None


def _fetch(ref: str, registry: Callable[[], Registry], trust: bool
           ) -> tuple[bytes, artifact_io.Artifact, int | None]:
    """The artifact's bytes, verified: a registry version against its recorded hash, a
    path (pickled models only with `trust`)."""
    parsed = ModelRef.parse(ref)
    if parsed.path is not None:
        data = artifact_io.pack(parsed.path)
        art = artifact_io.read_bytes(data, str(parsed.path), trust=trust)
        if art.pickled and art.trusted_by is None:
            raise TrustError(f"{parsed.path} holds a pickled {art.flavor} model: bundle it from "
                             "the registry, or pass --trust if you trust its source")
        return data, art, None
    reg = registry()
    mv = reg.resolve(parsed)
    data = reg.store.get(mv.artifact_uri)
    art = artifact_io.read_bytes(data, f"{mv.ref} ({mv.artifact_uri})",
                                 expected_sha256=mv.manifest_sha256)
    return data, art, mv.version


def collect_artifacts(refs: Sequence[str], dest: Path, registry: Callable[[], Registry],
                      trust: bool = False) -> list[BundledArtifact]:
    """Copy each model of `refs` into `dest` (`NAME-vN.shz`, or `NAME.shz` for a path).

    Raises:
        UsageError: no refs, or two refs for the same file name.
        NotFoundError, ArtifactError, TrustError: as `scorehouse.load`.
    """
    if not refs:
        raise UsageError("name at least one model: scorehouse bundle churn@production -o DIR")
    dest.mkdir(parents=True, exist_ok=True)
    out: list[BundledArtifact] = []
    for ref in refs:
        data, art, version = _fetch(ref, registry, trust)
        file = f"{art.name}-v{version}.shz" if version is not None else f"{art.name}.shz"
        if any(a.file == file for a in out):
            raise UsageError(f"{ref} and another reference are both {file}; bundle one of them")
        (dest / file).write_bytes(data)
        out.append(BundledArtifact(
            ref=ref, name=art.name, version=version, file=file,
            sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), flavor=art.flavor,
            pickled=art.pickled, requirements=dict(art.manifest.requirements)))
    return out


def model_requirements(artifacts: Sequence[BundledArtifact]) -> dict[str, str]:
    """{distribution: version} the artifacts' manifests need, merged.

    Raises:
        ConflictError: two models recorded different versions of one library.
    """
    merged: dict[str, tuple[str, str]] = {}
    for a in artifacts:
        for dist, version in a.requirements.items():
            name = lock.normalize(dist)
            if name == "scorehouse":
                continue
            if name in merged and merged[name][0] != version:
                raise ConflictError(
                    f"{a.ref} needs {name}=={version} but {merged[name][1]} needs "
                    f"{name}=={merged[name][0]}: bundle them separately")
            merged[name] = (version, a.ref)
    return {k: v for k, (v, _) in sorted(merged.items())}


def _scorehouse_requirement(wheels: Path, extras: Sequence[str]) -> str:
    """`scorehouse[extras] @ file://…whl` built from the source tree, or the released
    version from the index when scorehouse runs from an installed wheel."""
    suffix = f"[{','.join(extras)}]" if extras else ""
    source = lock.source_tree()
    if source is None:
        return f"scorehouse{suffix}=={__version__}"
    wheel = lock.build_wheel(source, wheels)
    return f"scorehouse{suffix} @ {wheel.resolve().as_uri()}"


def resolve_wheelhouse(wheels: Path, target: Target, pins: dict[str, str],
                       extras: Sequence[str]) -> str:
    """Fill `wheels` for `target`; returns the resolution used ("build-environment" or
    "pip", see the module docstring).

    Raises:
        BundleBuildError: pip cannot provide them for the target.
    """
    requirements = [_scorehouse_requirement(wheels, extras)]
    requirements += [f"{name}=={version}" for name, version in pins.items()]
    if target.matches_running():
        preferred = [f"{n}=={v}" for n, v in lock.installed_versions().items()
                     if n not in pins and n != "scorehouse" and "+" not in v]
        try:
            lock.download(requirements, preferred, target, wheels)
            return "build-environment"
        except lock.BundleBuildError:
            for path in wheels.iterdir():  # keep only the wheel built above
                if not path.name.startswith("scorehouse-"):
                    path.unlink()
    lock.download(requirements, [], target, wheels)
    return "pip"


def _prepare(out: Path) -> None:
    """An empty `out`, or one holding an earlier bundle (replaced).

    Raises:
        ConflictError: `out` holds something other than a bundle.
    """
    if out.exists() and any(out.iterdir()):
        if not (out / BUNDLE_FILE).is_file():
            raise ConflictError(f"{out} is not empty and holds no bundle.json: choose an "
                                "empty or new folder")
        for name in ("wheels", "artifacts"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def build_bundle(refs: Sequence[str], out: Path, *, registry: Callable[[], Registry],
                 target: Target | None = None, extras: Sequence[str] = (),
                 trust: bool = False) -> BundleInfo:
    """Write the bundle of `refs` into `out` (layout in the module docstring).

    `registry` opens the registry, called only when a reference is not a path; `target`
    defaults to the running Python and machine; `extras` are scorehouse's extras to include
    (e.g. "postgres" for a PostgreSQL prediction log).

    Raises:
        UsageError: no refs, a bad target; NotFoundError, ArtifactError: a model missing
            or refused; ConflictError: `out` is not a bundle folder, or two models need
            different versions of a library; BundleBuildError: pip could not provide them.
    """
    out = Path(out)
    target = target or Target.make()
    _prepare(out)
    artifacts = collect_artifacts(refs, out / "artifacts", registry, trust)
    pins = model_requirements(artifacts)
    resolution = resolve_wheelhouse(out / "wheels", target, pins, extras)
    packages = lock.lock_wheelhouse(out / "wheels")
    lock.write_lock(out / lock.LOCK_FILE, packages, [
        f"scorehouse bundle of {', '.join(refs)}: Python {target.python_version}, "
        f"{target.platforms[0]}", "pip install --no-index --find-links wheels "
        "--require-hashes -r requirements.lock"])
    (out / "install.sh").write_text(INSTALL_SH)
    (out / "install.sh").chmod(0o755)
    wheels_bytes = lock.directory_bytes(out / "wheels")
    artifacts_bytes = sum(a.bytes for a in artifacts)
    info = BundleInfo(
        scorehouse=__version__, created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds"), target=target.to_dict(),
        build={"python": platform.python_version(), "platform": lock.running_platform()},
        artifacts=artifacts, packages=packages, extras=list(extras), resolution=resolution,
        sizes={"wheels": wheels_bytes, "artifacts": artifacts_bytes,
               "total": wheels_bytes + artifacts_bytes})
    (out / BUNDLE_FILE).write_text(json.dumps(info.to_dict(), indent=2) + "\n")
    return info
