"""Optional API keys: bearer tokens from a file re-read when it changes (revoke by editing it).

The key file's format (one key a line, optionally with `role=` and `user=`) is
`scorehouse.apikeys`'s, shared with the web console; the server takes any valid key,
whatever its role.
"""

from __future__ import annotations

import os

from ..apikeys import KeyRing, keys_in
from ..errors import ScorehouseError

__all__ = ["ApiKeys", "Unauthorized", "keys_in"]


class Unauthorized(ScorehouseError):
    """A request without a valid bearer token."""


class ApiKeys(KeyRing):
    """Valid tokens: given ones plus the keys in the file at `path` (see `apikeys`)."""

    def __init__(self, keys: list[str] | None = None, path: str | os.PathLike | None = None):
        super().__init__(keys, path)

    def check(self, authorization: str | None) -> None:
        """Raise Unauthorized unless the Authorization header carries a valid bearer token."""
        if not self.enabled:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        if self.find(token) is None:
            raise Unauthorized("invalid API key")
