"""HMAC signatures over an artifact's manifest (which holds every file's sha256)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os

from ..errors import SignatureError

SIGNATURE_FILE = "SIGNATURE"
KEY_ENV = "SCOREHOUSE_SIGNING_KEY"


def signing_key(key: str | bytes | None = None) -> bytes | None:
    """The key to use: the one given, else $SCOREHOUSE_SIGNING_KEY, else None."""
    key = key if key is not None else os.environ.get(KEY_ENV) or None
    return key.encode() if isinstance(key, str) else key


def key_id(key: bytes) -> str:
    """A short public name for a key, so a mismatch can say which key signed."""
    return hashlib.sha256(b"scorehouse-key-id:" + key).hexdigest()[:12]


def sign(manifest_bytes: bytes, key: bytes) -> bytes:
    """The SIGNATURE file's content for `manifest_bytes`."""
    mac = hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()
    return json.dumps({"algorithm": "hmac-sha256", "key_id": key_id(key), "mac": mac}).encode()


def verify(manifest_bytes: bytes, signature: bytes | None, key: bytes, where: str) -> None:
    """Raise SignatureError unless `signature` is a valid HMAC of the manifest under `key`."""
    if signature is None:
        raise SignatureError(f"{where} is not signed, but a signing key is set; "
                             f"sign it with `scorehouse sign` or unset {KEY_ENV}")
    try:
        sig = json.loads(signature)
        mac = sig["mac"]
    except (ValueError, KeyError, TypeError):
        raise SignatureError(f"{where}: {SIGNATURE_FILE} is unreadable") from None
    expected = hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, expected):
        raise SignatureError(
            f"{where}: signature does not verify (signed with key {sig.get('key_id')}, "
            f"checking with key {key_id(key)}); the artifact was changed or the key differs"
        )
