"""The exact lock of a bundle: a target platform, pip's download of a wheelhouse for it, and
`requirements.lock` in pip's `--require-hashes` format.

Nothing here resolves dependencies by hand: `pip download --only-binary=:all: --platform …
--python-version … --implementation … --abi …` resolves and fetches through pip's configured
index (PIP_INDEX_URL, find-links, pip.conf); this module only hashes what pip put in the
wheelhouse and writes the lock from the wheels' file names.
"""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ScorehouseError, UsageError

LOCK_FILE = "requirements.lock"
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)"
                    r"-(?P<plat>[^-]+)\.whl$")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
_PYVER = re.compile(r"^3\.\d{1,2}$")


class BundleBuildError(ScorehouseError):
    """pip could not download or build what the bundle needs (its message has pip's errors)."""


def normalize(name: str) -> str:
    """A distribution name in PEP 503 form: `Scikit_Learn` -> `scikit-learn`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Wheel:
    """A wheel's file name, parsed: `name` (PEP 503), `version`, and its tag sets."""

    name: str
    version: str
    pythons: tuple[str, ...]
    abis: tuple[str, ...]
    platforms: tuple[str, ...]

    @classmethod
    def parse(cls, filename: str) -> Wheel:
        """Parse `numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl`.

        Raises:
            UsageError: not a wheel's file name.
        """
        m = _WHEEL.match(filename)
        if m is None:
            raise UsageError(f"{filename!r} is not a wheel file name")
        return cls(normalize(m["name"]), m["version"], tuple(m["py"].split(".")),
                   tuple(m["abi"].split(".")), tuple(m["plat"].split(".")))

    def glibc_needed(self) -> tuple[int, int] | None:
        """The oldest glibc one of its manylinux tags accepts (None: pure or not manylinux)."""
        found = [v for v in (manylinux_glibc(p) for p in self.platforms) if v is not None]
        return min(found) if found else None


def manylinux_glibc(tag: str) -> tuple[int, int] | None:
    """(2, 28) for `manylinux_2_28_x86_64` and (2, 17) for `manylinux2014_x86_64`."""
    m = _MANYLINUX.match(tag)
    if m:
        return int(m[1]), int(m[2])
    return _LEGACY.get(tag.split("_", 1)[0])


def tag_arch(tag: str) -> str | None:
    """The machine of a platform tag: `x86_64` for `manylinux_2_28_x86_64`."""
    m = _MANYLINUX.match(tag)
    if m:
        return m[3]
    head, _, arch = tag.partition("_")
    return arch if head in _LEGACY or head in ("linux", "musllinux") else None


def expand_platform(tag: str) -> list[str]:
    """Every platform tag a machine of `tag` runs: pip takes `--platform` literally, so
    `manylinux_2_36_x86_64` alone would miss wheels built for glibc 2.17 .. 2.35.

    >>> expand_platform("manylinux_2_19_x86_64")[-3:]
    ['manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux_2_12_x86_64']
    """
    glibc = manylinux_glibc(tag)
    arch = tag_arch(tag)
    if glibc is None or arch is None or glibc[0] != 2:
        return [tag]
    out = []
    for minor in range(glibc[1], 4, -1):
        out.append(f"manylinux_2_{minor}_{arch}")
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(minor)
        if legacy:
            out.append(f"{legacy}_{arch}")
    return out


def running_platform() -> str:
    """This machine's manylinux tag (`manylinux_2_36_x86_64` on Debian 12), else its
    `sysconfig` platform (`linux_x86_64`, `macosx_…`)."""
    libc, version = platform.libc_ver()
    parts = version.split(".")
    if libc == "glibc" and len(parts) >= 2:
        return f"manylinux_{parts[0]}_{parts[1]}_{platform.machine()}"
    import sysconfig

    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class Target:
    """Where the bundle will run: `python_version` ("3.11"), `platforms` (pip's tags, one
    machine, newest glibc first), `implementation` ("cp") and `abis` (`cp311`, `abi3`, `none`)."""

    python_version: str
    platforms: tuple[str, ...]
    implementation: str = "cp"
    abis: tuple[str, ...] = ()

    @classmethod
    def make(cls, python_version: str | None = None, platforms: Sequence[str] = ()) -> Target:
        """The running interpreter's Python and platform unless given; each platform is
        expanded (`expand_platform`).

        Raises:
            UsageError: a Python version that is not `3.N`.
        """
        version = python_version or ".".join(platform.python_version_tuple()[:2])
        if not _PYVER.match(version):
            raise UsageError(f"--python-version must look like 3.11, not {version!r}")
        tags: list[str] = []
        for p in platforms or [running_platform()]:
            tags += [t for t in expand_platform(p) if t not in tags]
        abi = "cp" + version.replace(".", "")
        return cls(version, tuple(tags), "cp", (abi, "abi3", "none"))

    def matches_running(self) -> bool:
        """True when this is the running interpreter's Python minor and machine."""
        here = ".".join(platform.python_version_tuple()[:2])
        return here == self.python_version and running_platform() in self.platforms

    def pip_args(self) -> list[str]:
        """`--platform … --python-version … --implementation … --abi …` for `pip download`."""
        args = ["--only-binary=:all:", "--python-version", self.python_version,
                "--implementation", self.implementation]
        for p in self.platforms:
            args += ["--platform", p]
        for a in self.abis:
            args += ["--abi", a]
        return args

    def to_dict(self) -> dict[str, Any]:
        """JSON form (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class LockedPackage:
    """One line of the lock: a distribution, its exact version, its wheel and sha256."""

    name: str
    version: str
    file: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return asdict(self)


def _run_pip(args: list[str], what: str) -> str:
    """Run `python -m pip ARGS`; pip's own ERROR lines become one BundleBuildError."""
    cmd = [sys.executable, "-m", "pip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines()
                 if ln.strip() and not ln.startswith("WARNING")]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-3:]
        raise BundleBuildError(f"{what} failed (pip exit {done.returncode}): "
                               + " | ".join(errors[:4]))
    return done.stdout


def build_wheel(source: Path, dest: Path) -> Path:
    """Build scorehouse's own wheel from its source tree (`pip wheel --no-deps`, in a copy
    of the tree, so the source gets no build/ or egg-info folder).

    Raises:
        BundleBuildError: the build failed (its build backend comes through pip's index).
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scorehouse-wheel-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", ".git", ".venv", "build", "dist", "*.egg-info", "tests",
            "bench", ".mypy_cache", ".ruff_cache", ".pytest_cache", "node_modules"))
        before = set(dest.glob("*.whl"))
        _run_pip(["wheel", "--no-deps", "--quiet", "-w", str(dest), str(copy)],
                 "building the scorehouse wheel")
    built = sorted(set(dest.glob("scorehouse-*.whl")) - before) or sorted(dest.glob("scorehouse-*.whl"))
    if not built:
        raise BundleBuildError(f"pip wheel wrote no scorehouse wheel into {dest}")
    return built[-1]


def download(requirements: Sequence[str], constraints: Sequence[str], target: Target,
             dest: Path) -> None:
    """`pip download` of `requirements` (and all they need) for `target` into `dest`.

    Raises:
        BundleBuildError: pip could not resolve or fetch them (no wheel for the target, a
            version the index does not have, conflicting pins).
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scorehouse-lock-") as tmp:
        req, con = Path(tmp) / "requirements.txt", Path(tmp) / "constraints.txt"
        req.write_text("\n".join(requirements) + "\n")
        con.write_text("\n".join(constraints) + "\n")
        _run_pip(["download", "--quiet", "--disable-pip-version-check", *target.pip_args(),
                  "-d", str(dest), "-r", str(req), "-c", str(con)],
                 f"pip download for Python {target.python_version} on {target.platforms[0]}")


def lock_wheelhouse(wheels: Path) -> list[LockedPackage]:
    """Every wheel in `wheels`, hashed, sorted by name.

    Raises:
        BundleBuildError: a file that is not a wheel (an sdist slipped in), or two wheels of
            one distribution.
    """
    out: dict[str, LockedPackage] = {}
    for path in sorted(wheels.iterdir()):
        if not path.name.endswith(".whl"):
            raise BundleBuildError(f"{path.name} in the wheelhouse is not a wheel")
        w = Wheel.parse(path.name)
        if w.name in out:
            raise BundleBuildError(f"two wheels of {w.name}: {out[w.name].file}, {path.name}")
        out[w.name] = LockedPackage(w.name, w.version, path.name, sha256_file(path))
    return [out[k] for k in sorted(out)]


def write_lock(path: Path, packages: Sequence[LockedPackage], header: Sequence[str]) -> None:
    """Write `requirements.lock`: `name==version \\` and `--hash=sha256:…` per package."""
    lines = [f"# {h}" for h in header]
    for p in packages:
        lines += [f"{p.name}=={p.version} \\", f"    --hash=sha256:{p.sha256}"]
    path.write_text("\n".join(lines) + "\n")


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, [sha256, …])} from a `--require-hashes` requirements file.

    Raises:
        UsageError: a requirement that is not `name==version` with hashes.
    """
    text = re.sub(r"\\\n", " ", path.read_text())
    out: dict[str, tuple[str, list[str]]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)$", line)
        if m is None:
            raise UsageError(f"{path}: {line[:80]!r} is not 'name==version --hash=sha256:…'")
        out[normalize(m[1])] = (m[2], re.findall(r"sha256:([0-9a-f]{64})", m[3]))
    return out


def installed_versions() -> dict[str, str]:
    """{name (PEP 503): version} of every distribution this interpreter sees."""
    import importlib.metadata as md

    out: dict[str, str] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name and normalize(name) not in out:
            out[normalize(name)] = dist.version
    return out


def directory_bytes(path: Path) -> int:
    """Total size of the files under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def source_tree() -> Path | None:
    """The scorehouse source tree this code runs from (a checkout or an editable install:
    a folder with pyproject.toml naming scorehouse), else None (an installed wheel)."""
    here = Path(__file__).resolve().parents[3]
    project = here / "pyproject.toml"
    if project.is_file() and 'name = "scorehouse"' in project.read_text():
        return here
    return None


__all__ = ["LOCK_FILE", "BundleBuildError", "LockedPackage", "Target", "Wheel", "build_wheel",
           "directory_bytes", "download", "expand_platform", "installed_versions",
           "lock_wheelhouse", "manylinux_glibc", "normalize", "read_lock",
           "running_platform", "sha256_file", "source_tree", "tag_arch", "write_lock"]
