"""`write_context`: a container build context for serving models, and `build_image`.

    ctx/
      Containerfile   FROM a slim Debian Python base; the bundle installed offline into a
                      venv; non-root user; HEALTHCHECK on /v2/health/ready; SCOREHOUSE_*
                      serve settings; nothing written outside /tmp at run time
      entrypoint.sh   `scorehouse doctor` (artifact hashes, packages), then `scorehouse serve`
      bundle/         the hermetic bundle (`deploy.bundle`) for the base image's Python

The base must have Python (`python3` with `venv`, as the official `python:3.X-slim-bookworm`
images do) at the bundle's target version, on a glibc the wheels accept.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError, ScorehouseError, UsageError
from .bundle import BundleInfo, build_bundle, read_bundle
from .lock import Target
from .templates import CONTAINERFILE, ENTRYPOINT_SH, HEALTHCHECK_PY

if TYPE_CHECKING:
    from ..registry import Registry

#: The default base: Debian 12 slim with CPython 3.11 (the bundle's default target Python
#: is the running one: pass --python-version and a matching --base together).
DEFAULT_BASE = "docker.io/library/python:{python}-slim-bookworm"
DEFAULT_PORT = 8080
#: The image's user: not root, in group 0 (so a platform that picks its own uid still reads).
UID = 10001


class ImageBuildError(ScorehouseError):
    """No container engine, or its build failed (the message has its last lines)."""


@dataclass(frozen=True)
class ContainerContext:
    """What `write_context` wrote: the folder, the base image, the bundle inside."""

    path: Path
    base: str
    bundle: BundleInfo

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the bundle's sizes and target, not its whole lock)."""
        return {"context": str(self.path), "base": self.base,
                "containerfile": str(self.path / "Containerfile"),
                "target": self.bundle.target, "sizes": self.bundle.sizes,
                "artifacts": [a.file for a in self.bundle.artifacts],
                "packages": len(self.bundle.packages)}


def _bundle_into(dest: Path, refs: Sequence[str], existing: Path | None,
                 registry: Callable[[], Registry], **options: Any) -> BundleInfo:
    """The context's bundle: `existing` copied in (hard links where the filesystem allows),
    else a new one of `refs`."""
    if existing is None:
        return build_bundle(refs, dest, registry=registry, **options)
    if refs:
        raise UsageError("give model references or --bundle, not both")
    info = read_bundle(existing)
    shutil.rmtree(dest, ignore_errors=True)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(existing, dest, copy_function=link)
    return info


def write_context(refs: Sequence[str], out: Path, *, registry: Callable[[], Registry],
                  bundle: Path | None = None, base: str | None = None,
                  target: Target | None = None, extras: Sequence[str] = (),
                  trust: bool = False, port: int = DEFAULT_PORT) -> ContainerContext:
    """Write the build context of an image serving `refs` into `out` (see the module
    docstring): with `bundle`, that existing bundle folder is copied in instead of building
    one (its target then decides the default base); else the new bundle targets `target`
    (default: the running Python and machine).

    Raises:
        UsageError: both `refs` and `bundle`, or neither; a port out of range.
        ConflictError: `out` is not empty and not an earlier context.
        and what `build_bundle` or `read_bundle` raise.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "Containerfile").is_file():
        raise ConflictError(f"{out} is not empty and holds no Containerfile: choose an empty "
                            "or new folder")
    if not 0 < port < 65536:
        raise UsageError(f"--port {port} is not a TCP port")
    if not refs and bundle is None:
        raise UsageError("name at least one model, or an existing bundle with --bundle")
    target = target or Target.make()
    out.mkdir(parents=True, exist_ok=True)
    info = _bundle_into(out / "bundle", refs, bundle, registry, target=target,
                        extras=extras, trust=trust)
    base = base or DEFAULT_BASE.format(python=info.target["python_version"])
    artifacts = " ".join(shlex.quote(f"/opt/scorehouse/bundle/artifacts/{a.file}")
                         for a in info.artifacts)
    models = ", ".join(a.ref for a in info.artifacts)
    (out / "Containerfile").write_text(CONTAINERFILE.substitute(
        base=base, port=port, uid=UID, models=models, healthcheck=HEALTHCHECK_PY))
    (out / "entrypoint.sh").write_text(ENTRYPOINT_SH.substitute(artifacts=artifacts))
    (out / "entrypoint.sh").chmod(0o755)
    return ContainerContext(out, base, info)


def engine(preferred: str | None = None) -> str:
    """The container engine to build with: `preferred`, else podman, else docker.

    Raises:
        ImageBuildError: none of them is on PATH.
    """
    for name in ([preferred] if preferred else ["podman", "docker"]):
        found = shutil.which(name)
        if found:
            return found
    raise ImageBuildError("building an image needs podman or docker on PATH; neither was "
                          "found (the context is written: build it elsewhere)")


def build_command(context: Path, tag: str, tool: str) -> list[str]:
    """The build command: `podman build --format docker --layers=false` (HEALTHCHECK is a
    Docker-format field, OCI images drop it; no cached install stage keeping a second copy
    of the venv) or `docker build`, with no network (the install is offline)."""
    cmd = [tool, "build", "--network", "none", "-t", tag, "-f",
           str(context / "Containerfile")]
    if Path(tool).name == "podman":
        cmd += ["--format", "docker", "--layers=false"]
    return [*cmd, str(context)]


def build_image(context: Path, tag: str, tool: str | None = None) -> dict[str, Any]:
    """Build the image of `context` as `tag`; returns {"tag", "engine", "id", "bytes"}.

    Raises:
        ImageBuildError: no engine, or the build failed.
    """
    exe = engine(tool)
    cmd = build_command(Path(context), tag, exe)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-4:])
        raise ImageBuildError(f"{' '.join(cmd[:2])} exited {done.returncode}: {tail}")
    inspect = subprocess.run([exe, "image", "inspect", "--format", "{{.Id}} {{.Size}}", tag],
                             capture_output=True, text=True, check=False)
    image_id, _, size = inspect.stdout.strip().partition(" ")
    return {"tag": tag, "engine": Path(exe).name, "id": image_id,
            "bytes": int(size) if size.isdigit() else None}
