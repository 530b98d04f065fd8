"""Content hashes: of artifact files, and a fingerprint of a training frame."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas only for fingerprints, at packaging: loading an artifact needs none
    import pandas as pd


def sha256(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """A sha256 that changes when any value, column name, dtype or row order changes."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "sha256:" + h.hexdigest()
