"""`scorehouse bundle`, `doctor` and `container`: ship models to a machine with no index (a
hermetic bundle), check an environment against it, and build a serving image of it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .common import JsonOpt, click_exc, open_registry
from .output import console, emit_json, err_console, table

#: Merged into the root app by `cli/app.py`.
commands = typer.Typer()

Refs = Annotated[list[str], typer.Argument(help="Models: churn@production fraud/3 path/to/model.shz …")]
PythonOpt = Annotated[str | None, typer.Option(
    "--python-version", help="Target Python, e.g. 3.11 (default: the running one).")]
PlatformOpt = Annotated[list[str] | None, typer.Option(
    "--platform", help="Target platform tag, e.g. manylinux_2_36_x86_64 (repeatable; default: "
    "this machine's). Older glibc tags are included.")]
ExtraOpt = Annotated[list[str] | None, typer.Option(
    "--extra", help="A scorehouse extra to include as well, e.g. postgres (repeatable).")]
TrustOpt = Annotated[bool, typer.Option(
    "--trust", help="Accept pickled artifact files given by path (registry versions are "
    "verified by their recorded hash).")]


def _target(python_version: str | None, platforms: list[str] | None) -> Any:
    from ..deploy.lock import Target
    from ..errors import UsageError

    try:
        return Target.make(python_version, platforms or [])
    except UsageError as e:
        raise click_exc.BadParameter(str(e)) from None


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:,.1f} MiB"


@commands.command()
def bundle(
    refs: Refs,
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder to write (empty, new, or an earlier bundle).")],
    python_version: PythonOpt = None,
    platform: PlatformOpt = None,
    extra: ExtraOpt = None,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a hermetic bundle: the artifacts, a hash-pinned lock of every package needed to
    score them, their wheels for the target, and install.sh (no index, no network).

    Example:

        scorehouse bundle churn@production -o bundle/ && sh bundle/install.sh
    """
    from ..deploy.bundle import build_bundle

    say = (lambda *_: None) if as_json else err_console.print
    target = _target(python_version, platform)
    say(f"bundling {', '.join(refs)} for Python {target.python_version} on "
        f"{target.platforms[0]} (pip download through the configured index) …")
    info = build_bundle(refs, out, registry=open_registry, target=target,
                        extras=list(extra or []), trust=trust)
    if as_json:
        emit_json(info.to_dict())
        return
    console.print(f"wrote {out}: {len(info.artifacts)} artifact(s) ({_mib(info.sizes['artifacts'])}), "
                  f"{len(info.packages)} packages ({_mib(info.sizes['wheels'])}), locked in "
                  f"{out / 'requirements.lock'} (resolution: {info.resolution})\n"
                  f"install: PYTHON=/path/to/venv/bin/python sh {out / 'install.sh'}\n"
                  f"check:   scorehouse doctor --bundle {out}")


@commands.command()
def doctor(
    bundle_dir: Annotated[Path, typer.Option("--bundle", envvar="SCOREHOUSE_BUNDLE", help="The bundle folder to check against.")] = Path("bundle"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print one line when all match (the table of mismatches otherwise).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check this environment against a bundle: Python, platform, every locked package at its
    version, every artifact's sha256. Exit 0 when all match, 5 when an artifact is missing or
    differs, 8 when the environment differs.

    Example:

        scorehouse doctor --bundle bundle/
    """
    from ..deploy.doctor import check_environment

    report = check_environment(bundle_dir)
    if as_json:
        emit_json(report.to_dict())
    else:
        shown = report.problems if quiet else report.checks
        if shown:
            table(["check", "name", "expected", "found", "status"],
                  [[c.kind, c.name, c.expected, c.found, "ok" if c.ok else "MISMATCH"]
                   for c in shown])
        console.print(report.summary())
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@commands.command()
def container(
    refs: Annotated[list[str] | None, typer.Argument(help="Models: churn@production fraud/3 path/to/model.shz … (or --bundle).")] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="Build context folder to write.")] = Path("ctx"),
    from_bundle: Annotated[Path | None, typer.Option("--bundle", help="Use this existing bundle (scorehouse bundle … -o DIR) instead of building one.")] = None,
    base: Annotated[str | None, typer.Option(help="Base image with python3 and venv at the target Python (default: python:<version>-slim-bookworm).")] = None,
    build: Annotated[bool, typer.Option("--build", help="Then build it with podman (else docker), with no network.")] = False,
    tag: Annotated[str, typer.Option(help="Image name for --build.")] = "scorehouse-serve:latest",
    port: Annotated[int, typer.Option(help="Port the image serves on (SCOREHOUSE_PORT).")] = 8080,
    python_version: PythonOpt = None,
    platform: PlatformOpt = None,
    extra: ExtraOpt = None,
    trust: TrustOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a container build context serving the models (Containerfile, entrypoint, the
    bundle); with --build, build the image (offline: --network none).

    Example:

        scorehouse container churn@production -o ctx/ --build --tag churn:1
        scorehouse container --bundle bundle/ -o ctx/ --base python:3.11-slim-bookworm
    """
    from ..deploy.container import build_image, write_context

    say = (lambda *_: None) if as_json else err_console.print
    target = _target(python_version, platform)
    ctx = write_context(list(refs or []), out, registry=open_registry, bundle=from_bundle,
                        base=base, target=target, extras=list(extra or []), trust=trust,
                        port=port)
    result: dict[str, Any] = ctx.to_dict()
    say(f"wrote {out / 'Containerfile'} (FROM {ctx.base}), bundle "
        f"{_mib(ctx.bundle.sizes.get('total'))}")
    if build:
        say(f"building {tag} …")
        result["image"] = build_image(out, tag)
    if as_json:
        emit_json(result)
        return
    if build:
        console.print(f"built {tag} with {result['image']['engine']}: "
                      f"{_mib(result['image']['bytes'])}\nrun: {result['image']['engine']} run "
                      f"--read-only -p {port}:{port} {tag}")
    else:
        console.print(f"build: podman build --format docker -t {tag} {out}")
