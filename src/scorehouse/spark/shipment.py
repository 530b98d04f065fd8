"""A model packed for executors: the artifact's bytes and the hash that makes them trusted.

The driver resolves the reference (registry or path) and checks the artifact once; executors
need no registry access. They reopen the bytes against the driver's manifest hash, which is
what trusts pickled code there, and keep one Scorer per Python process.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..artifact import MANIFEST_FILE, read_bytes
from ..artifact.files import manifest_bytes, zip_bytes
from ..artifact.hashing import sha256
from ..errors import IntegrityError
from ..monitor.log import LogOptions
from ..scorer import Scorer, ScorerCache


@dataclass(frozen=True)
class LogPlan:
    """How executors log the rows they score: each partition opens a logger on `options`
    and closes it (flushed) at the partition's end. A row's id is its `key` column's value
    when there is one (a null key: as without), else `<run_id>:<n>` with n Spark's
    `monotonically_increasing_id()` of the row (partition << 33 + row in the partition)."""

    options: LogOptions
    run_id: str
    key: str | None = None


@dataclass(frozen=True)
class Shipment:
    """What an executor needs to rebuild the driver's Scorer."""

    name: str
    version: int | None
    ref: str
    runtime: str
    manifest_sha256: str
    data: bytes
    #: The driver accepted a compiled graph that failed the parity gate (see runtime_for).
    accept_parity_difference: bool = False
    #: The prediction log of the rows executors score (None: none).
    log: LogPlan | None = None


def pack(scorer: Scorer, log: LogPlan | None = None) -> Shipment:
    """The Scorer's artifact as zip bytes, with the identity executors check it against,
    and the prediction log plan `log` (None: no log)."""
    art = scorer.artifact
    mbytes = manifest_bytes(art.manifest)
    if sha256(mbytes) != art.manifest_sha256:  # pragma: no cover - canonical form is stable
        raise IntegrityError(f"{art.source}: manifest is not in canonical form; re-package it")
    data = zip_bytes({MANIFEST_FILE: mbytes, **art.files})
    return Shipment(scorer.name, scorer.version, scorer.ref, scorer.runtime.name,
                    art.manifest_sha256, data, scorer.runtime.parity_accepted is not None, log)


def _build(shipment: Shipment) -> Scorer:
    art = read_bytes(shipment.data, f"{shipment.ref} (shipped from the driver)",
                     expected_sha256=shipment.manifest_sha256, check_versions=False)
    scorer = Scorer(art, version=shipment.version, runtime=shipment.runtime, ref=shipment.ref,
                    accept_parity_difference=shipment.accept_parity_difference)
    # Spark runs one task per core already; threads inside a task would fight them.
    scorer.runtime.use_one_thread()
    return scorer  # prepared by the cache


#: One Scorer per shipment identity and Python process. The key leaves out the bytes (each
#: task would otherwise hash the whole artifact to find its scorer), so each call gives the
#: loader that reads them.
_loaded: ScorerCache[tuple[str, str, str, int | None, bool]] = ScorerCache()


def unpack(shipment: Shipment) -> Scorer:
    """The shipment's Scorer, loaded once per Python process and reused by every task.

    Raises:
        IntegrityError: the bytes do not match the driver's manifest hash.
    """
    key = (shipment.manifest_sha256, shipment.runtime, shipment.ref, shipment.version,
           shipment.accept_parity_difference)
    return _loaded.get(key, loader=lambda _key: _build(shipment))
