"""`check_environment`: does the running environment match a bundle's lock?

Checks, one `Check` each: the Python (implementation and `major.minor` of the target), the
platform (machine, and a glibc at least as new as the newest any locked wheel needs), every
locked package (installed, at the locked version), and every artifact (present, with the
sha256 recorded in bundle.json). The outcome is an exit code, not an error:

    0                 everything matches
    EXIT_ARTIFACT 5   an artifact is missing or its hash differs (refused, as a tampered one)
    EXIT_MISMATCH 8   the environment differs: a package missing or at another version, or
                      another Python or platform (5 wins when both apply)
"""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import NotFoundError
from . import lock
from .bundle import BundleInfo, read_bundle

EXIT_ARTIFACT = 5
EXIT_MISMATCH = 8


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table: `kind` (python, platform, package, artifact), what is
    checked (`name`), what the bundle expects, what was found, and whether they match."""

    kind: str
    name: str
    expected: str
    found: str
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class DoctorReport:
    """Every check against the bundle at `bundle`, and the exit code they add up to."""

    bundle: str
    checks: list[Check]

    @property
    def problems(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if not c.ok]

    @property
    def exit_code(self) -> int:
        """0, EXIT_ARTIFACT or EXIT_MISMATCH (see the module docstring)."""
        kinds = {c.kind for c in self.problems}
        if "artifact" in kinds:
            return EXIT_ARTIFACT
        return EXIT_MISMATCH if kinds else 0

    def summary(self) -> str:
        """One line: `58 checks, all match` or `58 checks, 1 mismatch: package numpy …`."""
        bad = self.problems
        if not bad:
            return f"{len(self.checks)} checks against {self.bundle}: all match"
        listed = "; ".join(f"{c.kind} {c.name}: expected {c.expected}, found {c.found}"
                           for c in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        return (f"{len(self.checks)} checks against {self.bundle}: {len(bad)} mismatch"
                f"{'es' if len(bad) > 1 else ''}: {listed}{more}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (`ok`, `exit_code`, `checks`)."""
        return {"bundle": self.bundle, "ok": not self.problems, "exit_code": self.exit_code,
                "checks": [c.to_dict() for c in self.checks]}


def _python(info: BundleInfo) -> Check:
    want = f"{info.target['implementation']} {info.target['python_version']}"
    impl = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, sys.implementation.name)
    here = ".".join(platform.python_version_tuple()[:2])
    return Check("python", "interpreter", want, f"{impl} {platform.python_version()}",
                 impl == info.target["implementation"]
                 and here == info.target["python_version"])


def _platform(info: BundleInfo) -> Check:
    machines = {lock.tag_arch(t) for t in info.target["platforms"]} - {None}
    needed = [g for g in (lock.Wheel.parse(p.file).glibc_needed() for p in info.packages) if g]
    want = "/".join(sorted(m for m in machines if m)) or "any"
    if needed:
        want += ", glibc >= " + ".".join(map(str, max(needed)))
    libc, version = platform.libc_ver()
    found = f"{platform.machine()}, {libc or 'libc'} {version or '?'}"
    ok = not machines or platform.machine() in machines
    if needed:
        have = tuple(int(x) for x in version.split(".")[:2]) if libc == "glibc" else None
        ok = ok and have is not None and have >= max(needed)
    return Check("platform", "machine", want, found, ok)


def _packages(root: Path) -> list[Check]:
    locked = lock.read_lock(root / lock.LOCK_FILE)
    installed = lock.installed_versions()
    return [Check("package", name, version, installed.get(name, "missing"),
                  installed.get(name) == version)
            for name, (version, _) in sorted(locked.items())]


def _artifacts(root: Path, info: BundleInfo) -> list[Check]:
    out = []
    for a, path in zip(info.artifacts, info.artifact_paths(root), strict=True):
        found = lock.sha256_file(path) if path.is_file() else "missing"
        out.append(Check("artifact", a.file, f"sha256:{a.sha256[:12]}",
                         f"sha256:{found[:12]}" if found != "missing" else found,
                         found == a.sha256))
    return out


def check_environment(root: Path) -> DoctorReport:
    """Check the running interpreter's environment against the bundle folder `root`.

    Raises:
        NotFoundError: no bundle.json (or no requirements.lock) there.
        UsageError: a bundle.json or lock this version cannot read.
    """
    root = Path(root)
    info = read_bundle(root)
    if not (root / lock.LOCK_FILE).is_file():
        raise NotFoundError(f"{root / lock.LOCK_FILE} not found: the bundle is incomplete")
    checks = [_python(info), _platform(info), *_packages(root), *_artifacts(root, info)]
    return DoctorReport(str(root), checks)
