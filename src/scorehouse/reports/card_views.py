"""A `CardInput` shaped for the card templates: plain rows of text and numbers, and the
plots as inline SVG (HTML only: the Markdown card has the same tables, no plots).

User text (the card text, model, column, category and parameter names) reaches the HTML
through Jinja2's autoescaping and the Markdown through `md` (HTML-escaped, and table
pipes escaped), never as markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

import jinja2
from markupsafe import Markup

from ..evaluation import Evaluation
from ..monitor import baseline_reference
from ..schema import Schema
from . import card_plots, plots
from .card import CardInput
from .html import _ENV

#: The author's sections, in the card's order, with their headings.
TEXT_TITLES = {"intended_use": "Intended use", "users": "Intended users",
               "out_of_scope": "Out-of-scope uses",
               "ethical_considerations": "Ethical considerations", "caveats": "Caveats and "
               "recommendations"}
SHOWN = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "f1", "ece",
         "rmse", "mae", "r2", "mape")


@dataclass(frozen=True)
class ParamRow:
    """One line of the parameter tree: `depth` levels in, `key` = `value` ('' for a
    nested estimator, whose class is the value)."""

    depth: int
    key: str
    value: str


@dataclass(frozen=True)
class FeatureView:
    """One input column of the training data: type, null rate, a summary line, a plot."""

    name: str
    type: str
    null_rate: float
    summary: str
    svg: Markup | None


def fmt(v: Any) -> str:
    """A figure as short text ('-' for none)."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def md(v: Any) -> str:
    """Text safe in Markdown (and in a Markdown table cell): HTML-escaped, pipes and
    newlines escaped, so an author's `<script>` stays text."""
    return html.escape(str(v), quote=False).replace("|", "\\|").replace("\n", " ")


def param_rows(tree: Any, depth: int = 0, key: str = "") -> Iterator[ParamRow]:
    """The `artifact.params` tree as indented rows: an estimator, then its parameters; a
    pipeline's (name, estimator) steps under their names; a list of plain values inline."""
    if isinstance(tree, Mapping) and "estimator" in tree and "params" in tree:
        yield ParamRow(depth, key, str(tree["estimator"]))
        for k, v in tree["params"].items():
            yield from param_rows(v, depth + 1, str(k))
    elif isinstance(tree, Mapping):
        if key:
            yield ParamRow(depth, key, "")
        for k, v in tree.items():
            yield from param_rows(v, depth + (1 if key else 0), str(k))
    elif isinstance(tree, list) and any(isinstance(v, (Mapping, list)) for v in tree):
        yield ParamRow(depth, key, "")
        for i, v in enumerate(tree):
            if _named(v):  # ("scale", StandardScaler(...)) or ("num", pipe, [columns])
                yield from param_rows(v[1], depth + 1, str(v[0]))
                for extra in v[2:]:
                    yield from param_rows(extra, depth + 2, "columns")
            else:
                yield from param_rows(v, depth + 1, f"[{i}]")
    elif isinstance(tree, list):
        yield ParamRow(depth, key, ", ".join("null" if v is None else str(v) for v in tree))
    else:
        yield ParamRow(depth, key, "null" if tree is None else str(tree))


def _named(v: Any) -> bool:
    return isinstance(v, list) and len(v) >= 2 and isinstance(v[0], str)


def _summary(profile: Mapping[str, Any]) -> str:
    if "quantiles" in profile:
        q = profile["quantiles"]
        return (f"mean {fmt(profile.get('mean'))} · std {fmt(profile.get('std'))} · min "
                f"{fmt(q.get('0.0'))} · median {fmt(q.get('0.5'))} · max {fmt(q.get('1.0'))}")
    if "frequencies" in profile:
        top = sorted(profile["frequencies"].items(), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{k} {v:.0%}" for k, v in top)
        return f"{profile.get('n_unique', len(profile['frequencies']))} values · top: {shown}"
    return ""


def features(card: CardInput, draw: bool) -> list[FeatureView]:
    """A view per input column the training baseline profiles, in schema order."""
    m = card.manifest
    if m.baseline is None:
        return []
    schema = Schema.from_dict(m.input_schema)
    baseline = m.baseline.to_dict()
    reference = baseline_reference(baseline, schema) if draw else None
    out = []
    for col in schema.columns:
        profile = baseline.get("inputs", {}).get(col.name)
        if profile is None:
            continue
        ref = reference.features.get(col.name) if reference is not None else None
        svg = Markup(card_plots.training_plot(ref.sketch)) if ref is not None else None
        out.append(FeatureView(col.name, str(col.type), float(profile.get("null_rate", 0.0)),
                               _summary(profile), svg))
    return out


def _metric_rows(e: Evaluation) -> list[list[str]]:
    names = [n for n in SHOWN if n in e.metrics.values or n in e.metrics.absent]
    return [[n, fmt(e.metrics.get(n)), e.metrics.absent.get(n, "")] for n in names]


def _segment_rows(e: Evaluation) -> tuple[list[str], list[list[str]]]:
    names = [n for n in SHOWN if any(n in s.metrics.values for s in e.segments)]
    return names, [[s.column, s.value, str(s.metrics.rows), *(fmt(s.metrics.get(n))
                                                             for n in names)]
                   for s in e.segments]


def evaluation_view(e: Evaluation | None, draw: bool) -> dict[str, Any] | None:
    """Metrics, counts, per class, per segment, curves and importance of the evaluation."""
    if e is None:
        return None
    seg_names, seg_rows = _segment_rows(e)
    cols = ["roc_auc", "pr_auc", "brier", "f1", "ece"]
    imp = e.importance
    return {
        "e": e, "metrics": _metric_rows(e),
        "per_class_columns": cols,
        "per_class": [[k, str(v.rows), *(fmt(v.get(c)) for c in cols)]
                      for k, v in e.per_class.items()],
        "segment_columns": seg_names, "segments": seg_rows,
        "curves": {k: Markup(v) for k, v in card_plots.curve_plots(e).items()} if draw else {},
        "importance": imp,
        "importance_svg": _markup(card_plots.importance_plot(imp)) if draw and imp else None,
    }


def _markup(svg: str | None) -> Markup | None:
    return None if svg is None else Markup(svg)


def history_view(card: CardInput) -> dict[str, Any]:
    """Alias history rows, the gate results promotions recorded, the policies in force."""
    from ..evaluation import GatePolicy

    events = [[e.at, e.user, e.action.value, e.alias or "", fmt(e.version),
               fmt(e.from_version), e.reason] for e in card.history]
    gated = [(e, [[g.get("name", ""), fmt(g.get("figure")), fmt(g.get("threshold")),
                   str(g.get("verdict", "")), str(g.get("detail", ""))] for g in e.gates])
             for e in card.history if e.gates]
    current = {p.alias: p for p in card.policies}
    policies = [(a, GatePolicy.from_dict(p.policy).lines() if p.policy else [], p)
                for a, p in sorted(current.items())]
    return {"events": events, "gated": gated, "policies": policies}


def log_view(card: CardInput, draw: bool) -> dict[str, Any] | None:
    """Drift per window of the prediction log and performance per window (decay)."""
    log = card.log
    if log is None:
        return None
    drift = [(w.start.strftime("%Y-%m-%d %H:%M:%S"), w) for w in
             (log.analysis.windows if log.analysis else ()) if w.drift is not None]
    rows = [[label, str(w.traffic.rows), f"{w.drift.share:.0%}",
             ", ".join(w.drift.drifted_columns) or "none"] for label, w in drift if w.drift]
    decay = log.decay
    perf = [(w.start.strftime("%Y-%m-%d %H:%M:%S"), {n: v for n in decay.metrics
                                                  if (v := w.metric(n)) is not None})
            for w in decay.windows] if decay else []
    svg: dict[str, Markup | None] = {"drift": None, "performance": None}
    if draw and len(drift) > 1:
        svg["drift"] = Markup(plots.drift_over_time([(lbl, w.drift) for lbl, w in drift
                                                     if w.drift]))
    if draw and perf and any(m for _, m in perf):
        ref = {k: v.value for k, v in decay.reference.items()} if decay else {}
        svg["performance"] = Markup(plots.performance_plot(perf, ref))
    return {"drift": rows, "perf": [[w, *(fmt(m.get(n)) for n in decay.metrics)]
                                    for w, m in perf] if decay else [],
            "metrics": list(decay.metrics) if decay else [], "note": log.note, "svg": svg}


def render(card: CardInput, kind: str) -> str:
    """The card as 'html' or 'markdown' text."""
    draw = kind == "html"
    m = card.manifest
    lineage = m.lineage
    context = {
        "c": card, "m": m, "draw": draw,
        "generated": (card.generated or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC"),
        "text": [(TEXT_TITLES[f.name], getattr(card.text, f.name)) for f in fields(card.text)],
        "params": list(param_rows(dict(m.model.params))),
        "libraries": sorted((lineage.libraries if lineage else {}).items()),
        "training_metrics": sorted((lineage.metrics if lineage else {}).items()),
        "features": features(card, draw),
        "ev": evaluation_view(card.evaluation, draw),
        "schema": Schema.from_dict(m.input_schema).columns,
        "history": history_view(card),
        "log": log_view(card, draw),
    }
    name = "card.html.j2" if draw else "card.md.j2"
    return _MD.get_template(name).render(context) if not draw else \
        _ENV.get_template(name).render(context)




def _md_finalize(value: Any) -> Any:
    # Every {{ value }} of the Markdown card is escaped; a macro's table (already made of
    # escaped values) is marked `| safe` in the template and passes as is.
    return value if isinstance(value, Markup) else md(value)


# Markdown is not HTML: no autoescaping there (`md` escapes each value instead).
_MD = jinja2.Environment(loader=_ENV.loader, autoescape=False, undefined=jinja2.StrictUndefined,
                         trim_blocks=True, lstrip_blocks=True, finalize=_md_finalize)
_ENV.filters["fmt"] = fmt
_MD.filters["fmt"] = fmt
