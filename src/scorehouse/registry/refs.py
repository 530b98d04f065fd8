"""Model references: `churn@production`, `churn/3`, `churn@latest`, or bare `churn`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

#: The alias a bare model name resolves to: the active version.
ACTIVE_ALIAS = "production"
LATEST = "latest"
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_REF = re.compile(rf"^(?P<name>{NAME})(?:/(?P<version>\d+)|@(?P<alias>{NAME}))?$")


@dataclass(frozen=True)
class Ref:
    """A parsed reference: a name plus exactly one of version or alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.name}/{self.version}" if self.version is not None else f"{self.name}@{self.alias}"


def valid_name(name: str, what: str = "model name") -> str:
    """`name` if it is a valid model or alias name, else a UsageError (exit 2) saying why."""
    if not isinstance(name, str) or not re.fullmatch(NAME, name) or len(name) > 100:
        raise UsageError(f"invalid {what} {name!r}: use letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit")
    return name


def parse(ref: str) -> Ref:
    """Parse a reference; a bare name means `name@production`. UsageError when malformed."""
    m = _REF.match(ref.strip())
    if not m:
        raise UsageError(f"invalid model reference {ref!r}: expected NAME, NAME/VERSION "
                              "or NAME@ALIAS (e.g. churn, churn/3, churn@production)")
    if m["version"]:
        return Ref(m["name"], version=int(m["version"]))
    return Ref(m["name"], alias=m["alias"] or ACTIVE_ALIAS)
