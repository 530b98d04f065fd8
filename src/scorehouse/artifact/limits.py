"""How big an artifact may be once inflated: limits checked before a byte is decompressed.

An artifact is read into memory, so its inflated size is what reading it costs. A `.shz` zip
declares every entry's sizes in its directory; those declarations are checked against these
limits (and against the manifest) before anything is inflated, and inflating never goes
past a declared size. Defaults suit models of a few GiB; each limit has an environment
variable:

| variable | default | limit |
|---|---|---|
| `SCOREHOUSE_ARTIFACT_MAX_FILES` | 64 | entries in the zip (or files in the folder) |
| `SCOREHOUSE_ARTIFACT_MAX_BYTES` | 4G | total inflated size of all entries (suffix K, M, G) |
| `SCOREHOUSE_ARTIFACT_MAX_RATIO` | 200 | inflated / compressed size of any entry over 1 MiB |
| `SCOREHOUSE_ARTIFACT_MAX_MANIFEST_BYTES` | 64M | MANIFEST.json (read before the other entries) |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import ArtifactError

FILES_ENV = "SCOREHOUSE_ARTIFACT_MAX_FILES"
BYTES_ENV = "SCOREHOUSE_ARTIFACT_MAX_BYTES"
RATIO_ENV = "SCOREHOUSE_ARTIFACT_MAX_RATIO"
MANIFEST_ENV = "SCOREHOUSE_ARTIFACT_MAX_MANIFEST_BYTES"

#: Entries up to this inflated size are exempt from the ratio limit: a small file of repeated
#: bytes compresses very well and costs nothing.
RATIO_EXEMPT_BYTES = 1 << 20

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _size(env: str, default: str) -> int:
    raw = os.environ.get(env) or default
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", raw, re.I)
    if not m or int(m.group(1)) <= 0:
        raise ArtifactError(f"${env}={raw!r} is not a size: use a positive number of bytes, "
                            "optionally with K, M or G (e.g. 4G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


@dataclass(frozen=True)
class Limits:
    """The limits one artifact read is held to (see the module docstring for defaults)."""

    max_files: int
    max_bytes: int  # total inflated bytes of all entries
    max_ratio: int  # inflated / compressed, for entries over RATIO_EXEMPT_BYTES
    max_manifest_bytes: int

    @classmethod
    def from_env(cls) -> Limits:
        """The limits in force: the environment's, else the defaults.

        Raises ArtifactError when a variable is set to something that is not a size.
        """
        return cls(max_files=_size(FILES_ENV, "64"), max_bytes=_size(BYTES_ENV, "4G"),
                   max_ratio=_size(RATIO_ENV, "200"),
                   max_manifest_bytes=_size(MANIFEST_ENV, "64M"))


def human(n: int) -> str:
    """`n` bytes for a message: '1.5 GiB', '300 MiB', '12 KiB', '17 bytes'."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
