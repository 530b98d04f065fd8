"""Model references: `churn@production`, `churn/3`, `churn@latest`, bare `churn`, or a path.

`ModelRef.parse` decides once, at the edge (CLI argument, server setting, Python call),
which of the three kinds a reference is; everything after reads `ModelRef.kind`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from ..artifact.files import SUFFIX
from ..artifact.manifest import MANIFEST_FILE, MAX_NAME, NAME, valid_name
from ..errors import UsageError

__all__ = ["ACTIVE_ALIAS", "LATEST", "NAME", "MAX_NAME", "Ref", "ModelRef", "RefKind", "parse",
           "registry_ref", "valid_name"]

#: The alias a bare model name resolves to: the active version.
ACTIVE_ALIAS = "production"
LATEST = "latest"
_REF = re.compile(rf"^(?P<name>{NAME})(?:/(?P<version>\d+)|@(?P<alias>{NAME}))?$")


@dataclass(frozen=True)
class Ref:
    """A parsed registry reference: a name plus exactly one of version or alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.name}/{self.version}" if self.version is not None else f"{self.name}@{self.alias}"


def parse(ref: str) -> Ref:
    """Parse a registry reference; a bare name means `name@production`.

    Raises:
        UsageError: the text is not NAME, NAME/VERSION or NAME@ALIAS.
    """
    m = _REF.match(ref.strip())
    if not m:
        raise UsageError(f"invalid model reference {ref!r}: expected NAME, NAME/VERSION "
                         "or NAME@ALIAS (e.g. churn, churn/3, churn@production)")
    if m["version"]:
        return Ref(m["name"], version=int(m["version"]))
    return Ref(m["name"], alias=m["alias"] or ACTIVE_ALIAS)


class RefKind(Enum):
    """What a model reference names."""

    PATH = "path"  # an artifact file (.shz) or folder
    VERSION = "version"  # a registered version by number: churn/3
    ALIAS = "alias"  # a registered version by alias: churn@production, churn (= @production)


@dataclass(frozen=True)
class ModelRef:
    """A model reference, its kind decided once: an artifact path, a version or an alias.

    `text` is the reference as given (what messages and servers show); `path` is set for
    PATH, `registry` (the name with its version or alias) for VERSION and ALIAS.
    """

    kind: RefKind
    text: str
    path: Path | None = None
    registry: Ref | None = None

    @classmethod
    def parse(cls, ref: str | os.PathLike[str] | ModelRef) -> ModelRef:
        """The reference `ref` names; a ModelRef is returned as it is.

        A path-like object, a name ending in .shz, an existing file or artifact folder, or
        text that is no registry reference is a PATH (whether an artifact is there is
        checked when it is read); else `churn/3` is a VERSION, `churn@x` and `churn` ALIAS.

        Raises:
            UsageError: empty text.
        """
        if isinstance(ref, ModelRef):
            return ref
        if isinstance(ref, os.PathLike):
            return cls(RefKind.PATH, os.fspath(ref), path=Path(ref))
        if not isinstance(ref, str) or not ref.strip():
            raise UsageError(f"invalid model reference {ref!r}: expected NAME, NAME/VERSION, "
                             "NAME@ALIAS or the path of an artifact")
        p = Path(ref)
        if ref.endswith(SUFFIX) or p.is_file() or (p / MANIFEST_FILE).is_file():
            return cls(RefKind.PATH, ref, path=p)
        try:
            r = parse(ref)  # churn, churn/3, churn@production
        except UsageError:
            return cls(RefKind.PATH, ref, path=p)
        return cls(RefKind.VERSION if r.version is not None else RefKind.ALIAS, ref, registry=r)

    @property
    def is_path(self) -> bool:
        """True for an artifact path (loading it needs no registry)."""
        return self.kind is RefKind.PATH

    @property
    def name(self) -> str | None:
        """The registered model's name; None for a path (its manifest says)."""
        return self.registry.name if self.registry else None

    def __str__(self) -> str:
        return self.text


def registry_ref(ref: str | Ref | ModelRef) -> Ref:
    """The registered version `ref` names (text is parsed as a registry reference).

    Raises:
        UsageError: malformed text, or a ModelRef of an artifact path.
    """
    if isinstance(ref, Ref):
        return ref
    if isinstance(ref, ModelRef):
        if ref.registry is None:
            raise UsageError(f"{ref.text!r} is the path of an artifact, not a registry "
                             "reference (NAME, NAME/VERSION or NAME@ALIAS)")
        return ref.registry
    return parse(ref)
