"""`load()`: one entry point from a reference (registry name or artifact path) to a Scorer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from . import artifact as artifact_io
from .errors import ScorehouseError
from .registry.refs import parse
from .scorer import Scorer

if TYPE_CHECKING:  # the registry's SQL stack only when a reference needs it
    from .registry import Registry


def is_path(ref: str | os.PathLike) -> bool:
    """True when `ref` names an artifact file or folder rather than a registry entry."""
    if isinstance(ref, os.PathLike) or str(ref).endswith(artifact_io.SUFFIX):
        return True
    p = Path(ref)
    if p.is_file() or (p / artifact_io.MANIFEST_FILE).is_file():
        return True
    try:
        parse(str(ref))  # churn, churn/3, churn@production
    except ScorehouseError:
        return True
    return False


def load(ref: str | os.PathLike, *, registry: Registry | None = None, runtime: str | None = None,
         trust: bool = False, key: str | bytes | None = None,
         accept_parity_difference: bool = False) -> Scorer:
    """A Scorer for `churn@production`, `churn/3`, or a path to an artifact.

    A path holding pickled code needs `trust=True` or a valid signature (`key` or
    $SCOREHOUSE_SIGNING_KEY); a registry version is trusted through its recorded hash.
    `runtime="onnx"` on a model whose compiled graph failed the parity gate raises
    ParityError unless `accept_parity_difference=True` (see `runtime.runtime_for`).
    """
    if is_path(ref):
        art = artifact_io.read(ref, trust=trust, key=key)
        return Scorer(art, runtime=runtime, ref=str(ref),
                      accept_parity_difference=accept_parity_difference)
    from .registry import Registry

    reg = registry or Registry()
    return reg.load(str(ref), runtime=runtime, key=key,
                    accept_parity_difference=accept_parity_difference)
