"""API keys and the role each one carries, shared by the HTTP server and the web console.

A key file holds one key a line; blank lines and lines whose first non-blank character is
'#' are skipped, and so is a trailing comment (' #' after the key). After the key, a line
may name the key's `role` and the `user` its changes are recorded as:

    alpha                              # a reader (the default role)
    beta   role=deployer user=alice    # may promote, roll back, archive in the console
    gamma  role=reader                 # the ops dashboard

The server takes every key for scoring whatever its role; the console lets a `reader`
look and a `deployer` act. A key is never whitespace- or '#'-led and holds no blank.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .errors import ScorehouseError, UsageError


class Role(str, Enum):
    """What a key may do in the console: `reader` looks, `deployer` also changes aliases,
    versions and deployments."""

    READER = "reader"
    DEPLOYER = "deployer"


@dataclass(frozen=True)
class KeyEntry:
    """One key, its role, and the user its changes are recorded as (None: derived from
    the key's fingerprint)."""

    key: str
    role: Role = Role.READER
    user: str | None = None

    @property
    def fingerprint(self) -> str:
        """sha256 of the key, 32 hex digits: what a session cookie names (never the key)."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:32]

    @property
    def who(self) -> str:
        """The user recorded for this key's changes: `user`, else 'key:<first 8 hex>'."""
        return self.user or f"key:{self.fingerprint[:8]}"


def _strip_comment(line: str) -> str:
    return line.split(" #", 1)[0].split("\t#", 1)[0].strip()


def entries_in(text: str, source: str = "<keys>") -> list[KeyEntry]:
    """The keys of a key file with their roles (see the module docstring).

    Raises:
        UsageError: a word after a key that is not `role=reader|deployer` or `user=NAME`.
    """
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        words = _strip_comment(line).split()
        if not words or words[0].startswith("#"):
            continue
        attrs: dict[str, str] = {}
        for word in words[1:]:
            name, sep, value = word.partition("=")
            if not sep or name not in ("role", "user") or not value:
                raise UsageError(f"{source}:{number}: {word!r} after the key: write "
                                 "'KEY role=reader|deployer user=NAME' (both optional)")
            attrs[name] = value
        try:
            role = Role(attrs.get("role", Role.READER.value))
        except ValueError:
            raise UsageError(f"{source}:{number}: role must be reader or deployer, not "
                             f"{attrs['role']!r}") from None
        out.append(KeyEntry(words[0], role, attrs.get("user")))
    return out


def keys_in(text: str) -> list[str]:
    """The keys of a key file, in order (roles and users left out)."""
    return [e.key for e in entries_in(text)]


class KeyRing:
    """Valid keys: `keys` and `deployer_keys` given as text, plus the keys of the file at
    `path`, read again when it changes (a key removed from it is revoked at once).

    Raises:
        ScorehouseError: `path` names no file.
        UsageError: the file has a line `entries_in` cannot read.
    """

    def __init__(self, keys: list[str] | None = None, path: str | os.PathLike[str] | None = None,
                 deployer_keys: list[str] | None = None):
        self.fixed = [KeyEntry(k) for k in (keys or []) if k]
        self.fixed += [KeyEntry(k, Role.DEPLOYER) for k in (deployer_keys or []) if k]
        self.path = Path(path) if path else None
        self._stamp: tuple[float, int] | None = None
        self._from_file: list[KeyEntry] = []
        if self.path is not None and not self.path.is_file():
            raise ScorehouseError(f"API key file {self.path} does not exist")
        self._reload()

    @property
    def enabled(self) -> bool:
        """True when any key is configured (then every request needs one)."""
        return bool(self.fixed or self.path)

    def _reload(self) -> None:
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:  # removed: no key from the file is valid any more
            self._from_file, self._stamp = [], None
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp != self._stamp:
            self._from_file = entries_in(self.path.read_text(), str(self.path))
            self._stamp = stamp

    def entries(self) -> list[KeyEntry]:
        """Every valid key now (the file read again if it changed)."""
        self._reload()
        return self.fixed + self._from_file

    def find(self, token: str) -> KeyEntry | None:
        """The entry of `token`, compared with every key in constant time (None: no key)."""
        given = token.strip().encode()
        found = None
        for entry in self.entries():
            if hmac.compare_digest(given, entry.key.encode()):
                found = entry
        return found

    def by_fingerprint(self, fingerprint: str) -> KeyEntry | None:
        """The valid key whose `fingerprint` this is (None: revoked or never valid)."""
        found = None
        for entry in self.entries():
            if hmac.compare_digest(fingerprint.encode(), entry.fingerprint.encode()):
                found = entry
        return found


__all__ = ["KeyEntry", "KeyRing", "Role", "entries_in", "keys_in"]
