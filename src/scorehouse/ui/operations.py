"""The pages of a model in operation beside its monitoring (`monitoring.py`): the
deployments (roles, traffic split, history) and the model card.

The figures come from the calls the CLI makes: `routing.registered.read` and
`Registry.deployment_history` (`deploy show|history`), the log's traffic per role (`deploy
compare`'s counts), and `reports.card` (`scorehouse card`). Charts are `charts.py`'s.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from markupsafe import Markup
from starlette.responses import Response

from ..errors import NotFoundError
from ..registry.refs import ModelRef
from .monitoring import labels_for
from .web import Ask


def deployments_page(ask: Ask) -> Response:
    """GET /deployments: every deployment with its champion, revision and last change."""
    return ask.page("deployments.html.j2", title="Deployments",
                    rows=ask.registry.deployments())


def _traffic(ask: Ask, name: str, since: dt.datetime) -> tuple[Any, list[Any]]:
    """The deployment's traffic since `since` as `deploy compare` counts it (requests,
    answers per role, fallback answers, off-path and rejected rows) and its arms (role,
    model, version, rows); (None, []) when it logged nothing."""
    from ..evaluation.compare import arms, counts, deployment_rows

    try:
        rows = deployment_rows(name, source=ask.console.settings.log_source, since=since)
    except NotFoundError:
        return None, []
    return counts(rows), [arm for arm, _ in arms(rows)]


def deployment_page(ask: Ask) -> Response:
    """GET /deployments/{name}: roles (and what each reference resolves to now), the
    traffic split, rows logged per version since a day ago, and the history."""
    from ..routing import registered
    from .charts import split_plot

    reg, name = ask.registry, ask.param("name")
    stored, spec = registered.read(reg, name)
    roles = []
    for role, ref in spec.roles():
        try:
            now = reg.resolve(ref).ref
        except NotFoundError as e:
            now = f"unresolved: {e}"
        roles.append({"role": role.value, "ref": ref, "now": now})
    shares = [(f"champion {spec.champion}", spec.champion_weight)] + \
        [(f"challenger {c.model}", c.weight) for c in spec.challengers]
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    traffic, arms = _traffic(ask, name, since)
    return ask.page("deployment.html.j2", title=f"Deployment {name}", stored=stored,
                    spec=spec, roles=roles, shares=shares, split=Markup(split_plot(shares)),
                    traffic=traffic, arms=arms, history=reg.deployment_history(name)[::-1])


def comparison_page(ask: Ask) -> Response:
    """GET /deployments/{name}/comparison: `deploy compare`'s page in this one."""
    name = ask.param("name")
    ask.registry.deployment(name)
    return ask.page("comparison.html.j2", title=f"Comparison of {name}", name=name,
                    since=ask.query("since", "24h"))


def comparison_file(ask: Ask) -> Response:
    """GET /deployments/{name}/comparison.html?since=24h: the page `scorehouse deploy
    compare NAME --since 24h -o FILE` writes (?download=1: as a file)."""
    from ..evaluation import compare_deployment
    from ..monitor import parse_time
    from ..reports import build_comparison_report

    name = ask.param("name")
    result = compare_deployment(name, source=ask.console.settings.log_source,
                                since=parse_time(ask.query("since", "24h")),
                                registry=ask.registry)
    response = Response(build_comparison_report(result), media_type="text/html; charset=utf-8")
    if ask.query("download"):
        response.headers["content-disposition"] = \
            f'attachment; filename="{name}-comparison.html"'
    return response


def _card_text(ask: Ask, kind: str) -> tuple[str, str]:
    from ..reports.card import LogOptions, build_card, card_input

    name, number = ask.param("name"), ask.param("version")
    labels = labels_for(ask, name)
    s = ask.console.settings
    options = LogOptions(True, s.log_source, "day", labels.path if labels else None,
                         s.label_id if labels else None, s.label_target if labels else None)
    evidence = card_input(ModelRef.parse(f"{name}/{int(number)}"), registry=ask.registry,
                          log=options)
    return evidence.ref, build_card(evidence, None, kind)


def card_page(ask: Ask) -> Response:
    """GET /models/{name}/versions/{v}/card: the model card in the page, with downloads."""
    name, number = ask.param("name"), ask.param("version")
    ask.registry.resolve(f"{name}/{int(number)}")
    return ask.page("card.html.j2", title=f"Model card of {name}/{number}", name=name,
                    number=number)


def card_file(ask: Ask) -> Response:
    """GET /models/{name}/versions/{v}/card.html or card.md (?download=1: as a file)."""
    kind = "markdown" if ask.request.url.path.endswith(".md") else "html"
    ref, text = _card_text(ask, kind)
    media = "text/markdown" if kind == "markdown" else "text/html"
    response = Response(text, media_type=f"{media}; charset=utf-8")
    if ask.query("download"):
        filename = f"{ref.replace('/', '-')}-card.{'md' if kind == 'markdown' else 'html'}"
        response.headers["content-disposition"] = f'attachment; filename="{filename}"'
    return response


__all__ = ["card_file", "card_page", "comparison_file", "comparison_page", "deployment_page",
           "deployments_page"]
