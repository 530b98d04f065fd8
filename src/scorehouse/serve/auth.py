"""Optional API keys: bearer tokens from a file re-read when it changes (revoke by editing it)."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from ..errors import ScorehouseError


class Unauthorized(ScorehouseError):
    """A request without a valid bearer token."""


def keys_in(text: str) -> list[str]:
    """The keys of a key file: one per line, surrounding blanks stripped; blank lines and
    lines whose first non-blank character is '#' are skipped, and so is a trailing comment
    (' #' after the key): a key is never whitespace or '#'-led."""
    keys = []
    for line in text.splitlines():
        key = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if key and not key.startswith("#"):
            keys.append(key)
    return keys


class ApiKeys:
    """Valid tokens: given ones plus the keys in the file at `path` (see `keys_in`)."""

    def __init__(self, keys: list[str] | None = None, path: str | os.PathLike | None = None):
        self.fixed = [k for k in (keys or []) if k]
        self.path = Path(path) if path else None
        self._stamp: tuple[float, int] | None = None
        self._from_file: list[str] = []
        if self.path is not None and not self.path.is_file():
            raise ScorehouseError(f"API key file {self.path} does not exist")
        self._reload()

    @property
    def enabled(self) -> bool:
        """True when any key is configured (then every scoring request needs one)."""
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
            self._from_file = keys_in(self.path.read_text())
            self._stamp = stamp

    def check(self, authorization: str | None) -> None:
        """Raise Unauthorized unless the Authorization header carries a valid bearer token."""
        if not self.enabled:
            return
        self._reload()
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        given = token.strip().encode()
        # Compare with every key in constant time, so timing does not leak a prefix.
        if not any(hmac.compare_digest(given, k.encode()) for k in self.fixed + self._from_file):
            raise Unauthorized("invalid API key")
