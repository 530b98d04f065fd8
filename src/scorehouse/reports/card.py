"""Model cards: one document for audit, built from what the artifact and the registry know
(after Mitchell et al.'s model cards and H2O's AutoDoc), as self-contained HTML (printable
to PDF by a browser) or Markdown.

`card_input` gathers the evidence (manifest, the author's card text, the newest stored
evaluation, alias history with gate results, gate policies, and the prediction log's drift
and decay when there is a log); `build_card` renders it (`card_views.py` shapes it for the
templates `card.html.j2` and `card.md.j2`). Nothing here computes a metric: the figures
are the evaluation's and the monitor's, read back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .. import artifact as artifact_io
from ..artifact import CARD_FILE, CardText, Manifest
from ..errors import ArtifactError, NotFoundError, UsageError
from ..evaluation import Evaluation
from ..registry.refs import ModelRef

if TYPE_CHECKING:
    from ..monitor import DecayReport, WindowAnalysis
    from ..registry import Registry
    from ..registry.evaluations import GatePolicyRecord
    from ..registry.records import Event, ModelVersion

#: Output suffixes and the format each means.
FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}


@dataclass(frozen=True)
class LogEvidence:
    """What the prediction log says since deployment: drift per window (`analysis`) and,
    with a labels file, performance per window (`decay`); `note` says what was left out."""

    analysis: WindowAnalysis | None = None
    decay: DecayReport | None = None
    note: str = ""


@dataclass(frozen=True)
class CardInput:
    """Everything a card shows. `version` is None for an artifact file (no registry):
    then there is no evaluation, history or gate policy to show."""

    manifest: Manifest
    manifest_sha256: str
    text: CardText
    version: ModelVersion | None = None
    evaluation: Evaluation | None = None
    evaluated: str = ""  # when and by whom the evaluation was stored
    history: list[Event] = field(default_factory=list)
    policies: list[GatePolicyRecord] = field(default_factory=list)
    log: LogEvidence | None = None
    generated: datetime | None = None

    @property
    def ref(self) -> str:
        """`name/version`, or the name alone for an artifact file."""
        return self.manifest.name if self.version is None else self.version.ref


@dataclass(frozen=True)
class LogOptions:
    """Where to look for drift and decay since deployment: the prediction log `source`
    (None: the default Parquet log), the `window`, and for decay a `labels` file with the
    row id and target columns. `enabled=False` leaves the section out."""

    enabled: bool = True
    source: str | None = None
    window: str = "day"
    labels: str | os.PathLike[str] | None = None
    id_column: str | None = None
    target: str | None = None


def card_input(ref: str | os.PathLike[str] | ModelRef, *, registry: Registry | None = None,
               trust: bool = False, log: LogOptions | None = None) -> CardInput:
    """The evidence for `ref`'s card: a registry reference (churn/3, churn@production) or
    an artifact file.

    Raises:
        NotFoundError: no such model, version, alias or file.
        IntegrityError: the artifact (card text included) does not match its hashes.
        ArtifactError: the artifact is refused otherwise.
        UsageError: the stored card text is not a card's JSON.
    """
    parsed = ModelRef.parse(ref)
    if parsed.path is not None:
        art = artifact_io.read(parsed.path, trust=trust, require_trust=False)
        return CardInput(art.manifest, art.manifest_sha256, _text(art))
    from ..evaluation import stored_evaluation
    from ..registry import Registry

    reg = registry or Registry()
    art, mv = reg.load_artifact(parsed)
    record = reg.latest_evaluation(mv.ref)
    return CardInput(
        art.manifest, art.manifest_sha256, _text(art), mv,
        stored_evaluation(reg, mv.ref),
        f"{record.at} by {record.user}" if record is not None else "",
        reg.history(mv.name), reg.gate_policy_history(mv.name),
        _log_evidence(mv.ref, reg, log or LogOptions()))


def _text(art: artifact_io.Artifact) -> CardText:
    data = art.files.get(CARD_FILE)
    return CardText() if data is None else CardText.from_bytes(data, art.source)


def _log_evidence(ref: str, reg: Registry, options: LogOptions) -> LogEvidence | None:
    """Drift (and decay with labels) of the version's logged rows; None when the log holds
    none of them (the card then has no such section)."""
    if not options.enabled:
        return None
    from ..monitor import analyse_log, decay, monitored

    scorer = monitored(ref, registry=reg)
    try:
        analysis = analyse_log(scorer, window=options.window, quality=False,
                               source=options.source)
    except (NotFoundError, ArtifactError):
        analysis = None
    if options.labels is None:
        return None if analysis is None else LogEvidence(
            analysis, note="no labels file given: performance since deployment not shown")
    if not (options.id_column and options.target):
        raise UsageError("a labels file needs its row id column and target column")
    try:
        report = decay(scorer, options.labels, id_column=options.id_column,
                       target=options.target, window=options.window, all_versions=False,
                       source=options.source)
    except NotFoundError as e:
        return LogEvidence(analysis, note=str(e))
    return LogEvidence(analysis, report)


def card_format(path: str | os.PathLike[str]) -> str:
    """'html' or 'markdown', by the output's suffix.

    Raises:
        UsageError: another suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"{path}: a card is written as .html or .md")
    return FORMATS[suffix]


def build_card(card: CardInput, path: str | os.PathLike[str] | None = None,
               fmt: str | None = None) -> str:
    """The card as HTML or Markdown text (`fmt`, else by `path`'s suffix, else HTML), also
    written to `path` when given (UTF-8).

    Sections: model details and lineage, the author's text, training data, holdout
    evaluation (curves), performance per segment, feature importance, compiled runtime,
    schema, alias history and gates, and drift and decay since deployment when the
    prediction log has them.

    Raises:
        UsageError: an output suffix other than .html or .md.
        OSError: `path` cannot be written.
    """
    from .card_views import render

    kind = fmt or (card_format(path) if path is not None else "html")
    text = render(card, kind)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
