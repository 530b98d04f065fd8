"""`load()`: one entry point from a reference (registry name or artifact path) to a Scorer."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import artifact as artifact_io
from .registry.refs import ModelRef
from .scorer import Scorer

if TYPE_CHECKING:  # the registry's SQL stack only when a reference needs it
    from .registry import Registry


def load(ref: str | os.PathLike[str] | ModelRef, *, registry: Registry | None = None,
         runtime: str | None = None, trust: bool = False, key: str | bytes | None = None,
         accept_parity_difference: bool = False) -> Scorer:
    """A Scorer for `churn@production`, `churn/3`, or a path to an artifact.

    Text is parsed once (`ModelRef.parse`). A path holding pickled code needs `trust=True`
    or a valid signature (`key` or $SCOREHOUSE_SIGNING_KEY); a registry version is trusted
    through its recorded hash. `registry` is used only for a registry reference (default:
    `Registry()`, the configured one); a path never opens a registry.

    Raises:
        UsageError: an empty reference.
        NotFoundError: no artifact at the path, or no such model, version or alias.
        TrustError: a pickled artifact at a path that nothing trusts.
        ParityError: `runtime="onnx"` on a model whose compiled graph failed the parity gate,
            unless `accept_parity_difference=True` (see `runtime.runtime_for`).
        ArtifactError, IntegrityError, SignatureError: the artifact does not verify.
    """
    parsed = ModelRef.parse(ref)
    if parsed.path is not None:
        art = artifact_io.read(parsed.path, trust=trust, key=key)
        return Scorer(art, runtime=runtime, ref=parsed.text,
                      accept_parity_difference=accept_parity_difference)
    from .registry import Registry

    reg = registry or Registry()
    return reg.load(parsed, runtime=runtime, key=key,
                    accept_parity_difference=accept_parity_difference)
