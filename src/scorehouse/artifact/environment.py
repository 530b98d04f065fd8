"""Which packages (and versions) a model needs, and a warning when the running ones differ."""

from __future__ import annotations

import importlib.metadata as md
import pickletools
import platform
import re
import sys
import warnings
from collections.abc import Iterable, Mapping


class VersionMismatchWarning(UserWarning):
    """A package the model was packaged with is missing or at another minor version."""


def _top_modules_in_pickle(data: bytes) -> set[str]:
    # Global references in a pickle appear as strings naming modules; keep those that are
    # loaded now, which is exactly what unpickling will import.
    names: set[str] = set()
    for op, arg, _ in pickletools.genops(data):
        if isinstance(arg, str) and op.name in ("GLOBAL", "SHORT_BINUNICODE", "BINUNICODE",
                                                 "UNICODE", "BINUNICODE8"):
            for part in re.split(r"[ \n]", arg):
                top = part.split(".", 1)[0]
                if top and top.isidentifier() and top in sys.modules:
                    names.add(top)
    return names


def distributions_for(modules: Iterable[str]) -> dict[str, str]:
    """{distribution: installed version} for top-level module names (stdlib ones dropped)."""
    owners = md.packages_distributions()
    out: dict[str, str] = {}
    for m in modules:
        for dist in owners.get(m, []):
            try:
                out[dist] = md.version(dist)
            except md.PackageNotFoundError:
                continue
    return dict(sorted(out.items()))


def requirements_for(modules: Iterable[str], pickle_bytes: bytes | None = None) -> dict[str, str]:
    """The packages a model needs: the flavor's libraries plus whatever a pickle references."""
    mods = set(modules) | ({"numpy"} if modules else set())
    if pickle_bytes is not None:
        mods |= _top_modules_in_pickle(pickle_bytes)
    mods.discard("scorehouse")
    return distributions_for(mods)


def python_version() -> str:
    """The running Python's version, e.g. '3.11.7'."""
    return platform.python_version()


def _minor(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:2])


def version_problems(requirements: Mapping[str, str], python: str | None,
                     pickled: bool) -> list[str]:
    """Human-readable differences that can change predictions (empty when none)."""
    problems = []
    for dist, wanted in requirements.items():
        try:
            have = md.version(dist)
        except md.PackageNotFoundError:
            problems.append(f"{dist}=={wanted} is needed but not installed")
            continue
        if _minor(have) != _minor(wanted):
            problems.append(f"{dist} is {have} here but the model was packaged with {wanted}")
    if pickled and python and _minor(python) != _minor(python_version()):
        problems.append(f"Python is {python_version()} here but the model was pickled "
                        f"under {python}")
    return problems


def warn_on_mismatch(name: str, requirements: Mapping[str, str], python: str | None,
                     pickled: bool) -> list[str]:
    """Emit one VersionMismatchWarning listing every difference; returns them."""
    problems = version_problems(requirements, python, pickled)
    if problems:
        warnings.warn(
            f"model {name!r}: " + "; ".join(problems)
            + ". Predictions may differ from the packaged model; install the recorded "
            "versions (see `scorehouse inspect`) to be sure.",
            VersionMismatchWarning, stacklevel=3,
        )
    return problems
