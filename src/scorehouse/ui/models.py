"""The registry's pages: the models (with search), one model (versions, aliases with the
active version, history timeline, gate policies), one version (lineage, schema, stored
evaluation), and two versions side by side. Every figure is read back through the
`Registry` and `evaluation` calls the CLI makes (`models show`, `models history`,
`models lineage`, `gates show`); nothing here decides anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from ..errors import UsageError
from ..registry import ModelVersion, Registry
from ..registry.evaluations import GatePolicyRecord
from ..registry.records import ModelSummary
from ..registry.refs import ACTIVE_ALIAS
from ..schema import Schema
from ..schema.diff import diff_schemas
from .kept import keep
from .web import Ask

if TYPE_CHECKING:  # evaluation (scikit-learn) loads with the first page that reads one
    from ..evaluation import Evaluation

#: Versions listed on a model's page before "show all".
SHOWN_VERSIONS = 200
#: Verified manifests by their sha256 (an artifact never changes under its hash: the
#: registry refuses one whose manifest does not match the version's record), the
#: MANIFESTS_KEPT most recently read.
MANIFESTS: dict[str, Any] = {}
MANIFESTS_KEPT = 128


def active_alias(aliases: dict[str, int] | list[str]) -> str | None:
    """The alias naming the active version (the registry's `ACTIVE_ALIAS`, what a bare
    model name resolves to), when `aliases` has it (None: no active version)."""
    return ACTIVE_ALIAS if ACTIVE_ALIAS in aliases else None


def _matches(m: ModelSummary, q: str) -> bool:
    words = q.lower().split()
    text = f"{m.name} {m.description} {' '.join(m.aliases)}".lower()
    return all(w in text for w in words)


def models_page(ask: Ask) -> Response:
    """GET /: every model, filtered by `q` (words all in its name, description or
    aliases), with its active version."""
    q = ask.query("q").strip()
    rows = [m for m in ask.registry.models() if not q or _matches(m, q)]
    listed = [{"m": m, "active": active_alias(m.aliases)} for m in rows]
    return ask.page("models.html.j2", title="Models", q=q, rows=listed)


def _policies(reg: Registry, name: str) -> list[GatePolicyRecord]:
    """The gate policies in force, one per alias."""
    latest: dict[str, GatePolicyRecord] = {}
    for p in reg.gate_policy_history(name):
        latest[p.alias] = p
    return [p for p in latest.values() if p.policy is not None]


def _summary(name: str, versions: list[ModelVersion]) -> ModelSummary:
    """A model's summary from its versions (oldest first): what `Registry.models()` says
    of it, without reading every other model."""
    aliases = {a: v.version for v in versions for a in v.aliases}
    ready = [v.version for v in versions if v.status.value == "ready"]
    return ModelSummary(name=name, description=versions[0].description if versions else "",
                        versions=len(versions), latest=max(ready, default=None),
                        aliases=dict(sorted(aliases.items())),
                        updated_at=max((v.created_at for v in versions), default=""))


def model_page(ask: Ask) -> Response:
    """GET /models/{name}: versions (newest first), aliases with the active version, the
    history as a timeline (newest first), gate policies, and the action forms."""
    reg, name = ask.registry, ask.param("name")
    versions = reg.versions(name)
    summary = _summary(name, versions)
    versions = versions[::-1]
    active = active_alias(summary.aliases)
    # Where each alias would roll back to: only a deployer sees the buttons that say it.
    rollback = {a: reg.rollback_target(name, a) for a in summary.aliases} \
        if ask.visitor.can_act else {}
    return ask.page(
        "model.html.j2", title=name, model=summary, versions=versions[:SHOWN_VERSIONS],
        hidden=max(0, len(versions) - SHOWN_VERSIONS), active=active,
        active_version=summary.aliases.get(active) if active else None,
        rollback=rollback, history=reg.history(name)[::-1], policies=_policies(reg, name),
        ready=[v for v in versions if v.status.value == "ready"])


def _version(reg: Registry, name: str, number: str) -> ModelVersion:
    if not number.isdigit():
        raise UsageError(f"a version is a number, not {number!r}")
    return reg.resolve(f"{name}/{number}")


@dataclass(frozen=True)
class VersionView:
    """A version with what its artifact says: schema, compiled runtime, training data."""

    version: ModelVersion
    schema: Schema
    manifest: Any
    evaluation: Evaluation | None
    evaluated: str


def version_view(reg: Registry, name: str, number: str, evaluation: bool = True
                 ) -> VersionView:
    """A registered version with its verified artifact's manifest and newest evaluation.

    Raises:
        UsageError: `number` is not a number.
        NotFoundError: no such model or version, or its artifact is missing.
        ArtifactError: the stored artifact does not match its record.
    """
    from ..evaluation import Evaluation

    mv = _version(reg, name, number)
    manifest = MANIFESTS.get(mv.manifest_sha256)
    if manifest is None:
        manifest = keep(MANIFESTS, mv.manifest_sha256, reg.load_artifact(mv.ref)[0].manifest,
                        MANIFESTS_KEPT)
    record = reg.latest_evaluation(mv.ref) if evaluation else None
    result = Evaluation.from_dict(record.result) if record else None
    when = f"{record.at} by {record.user} on {record.holdout}" if record else ""
    return VersionView(mv, Schema.from_dict(manifest.input_schema), manifest, result, when)


def version_page(ask: Ask) -> Response:
    """GET /models/{name}/versions/{v}: status, aliases, lineage, schema, compiled parity,
    the newest stored evaluation (metrics, segments)."""
    reg, name = ask.registry, ask.param("name")
    view = version_view(reg, name, ask.param("version"))
    others = [v.version for v in reg.versions(name) if v.version != view.version.version]
    return ask.page("version.html.j2", title=view.version.ref, v=view,
                    lineage=reg.lineage(view.version.ref), others=others[::-1])


def schema_fragment(ask: Ask) -> Response:
    """GET /models/{name}/versions/{v}/schema: the schema table alone (for htmx)."""
    view = version_view(ask.registry, ask.param("name"), ask.param("version"), False)
    return ask.page("schema.html.j2", title=f"schema of {view.version.ref}", v=view)


def _metric_rows(a: dict[str, float], b: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        delta = y - x if isinstance(x, (int, float)) and isinstance(y, (int, float)) else None
        rows.append({"name": k, "a": x, "b": y, "delta": delta})
    return rows


def _segments(a: Evaluation | None, b: Evaluation | None) -> list[dict[str, Any]]:
    """Rows (column, value, metric, a, b) of the segments either evaluation has."""
    table: dict[tuple[str, str, str], list[float | None]] = {}
    for i, e in enumerate((a, b)):
        for s in (e.segments if e else []):
            for metric, value in s.metrics.values.items():
                table.setdefault((s.column, s.value, metric), [None, None])[i] = value
    return [{"column": c, "value": v, "metric": m, "a": x, "b": y,
             "delta": None if x is None or y is None else y - x}
            for (c, v, m), (x, y) in sorted(table.items())]


def _parity(manifest: Any) -> dict[str, Any]:
    compiled = manifest.compiled
    parity = compiled.parity if compiled else None
    return {"status": (compiled.status if compiled else None) or "not compiled",
            "passed": bool(parity and parity.passed),
            "worst": max(parity.max_abs_diff.values(), default=None) if parity else None,
            "tolerance": parity.tolerance if parity else None,
            "flips": parity.label_flips if parity else None}


def compare_page(ask: Ask) -> Response:
    """GET /models/{name}/compare?a=N&b=M: two versions side by side: training and holdout
    metrics, schema differences (and what would break callers of `a`), parity, segments."""
    from ..evaluation import schema_breaks

    reg, name = ask.registry, ask.param("name")
    numbers = [v.version for v in reg.versions(name)][::-1]
    if len(numbers) < 2:
        raise UsageError(f"{name} has one version: nothing to compare it with")
    a = ask.query("a") or str(numbers[1])
    b = ask.query("b") or str(numbers[0])
    va, vb = version_view(reg, name, a), version_view(reg, name, b)
    ea, eb = va.evaluation, vb.evaluation
    return ask.page(
        "compare.html.j2", title=f"{name}: {a} vs {b}", name=name, a=va, b=vb,
        numbers=numbers,
        training=_metric_rows(dict(va.version.lineage.get("metrics", {})),
                              dict(vb.version.lineage.get("metrics", {}))),
        holdout=_metric_rows(ea.metrics.values if ea else {}, eb.metrics.values if eb else {}),
        diff=diff_schemas(va.schema, vb.schema),
        breaks=schema_breaks(va.schema, vb.schema),
        parity=[_parity(va.manifest), _parity(vb.manifest)],
        segments=_segments(ea, eb))


__all__ = ["VersionView", "active_alias", "compare_page", "model_page",
           "models_page", "schema_fragment", "version_page", "version_view"]
