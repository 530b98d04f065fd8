"""What a deployer can do from the console, each through the call the CLI makes:

| action | CLI | call |
|---|---|---|
| promote | `scorehouse promote REF ALIAS [--force]` | `evaluation.promote` (the alias's gates) |
| roll back an alias | `scorehouse rollback NAME ALIAS` | `Registry.rollback` |
| archive, restore | `scorehouse archive/restore REF` | `Registry.archive` / `.restore` |
| change weights | `scorehouse deploy set NAME --challenger REF=W` | `routing.registered.change` |
| roll back a deployment | `scorehouse deploy rollback NAME` | `Registry.rollback_deployment` |

Each is two POSTs to the same path: the first shows what will change and asks for a
confirmation (`confirm.html.j2`), the second (`confirmed=yes`) does it and redirects to
the page it came from with a note. A reason is required for every one (it goes into the
history). A promotion the gates refuse answers 409 with the gate table and, for a
deployer, a form to force it past them with a reason (`refused.html.j2`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.responses import Response

from ..errors import NotFoundError, UsageError
from .web import Ask

# evaluation (scikit-learn, scipy) and routing are imported by the actions that use them:
# the console starts without them.

#: The longest reason kept (the history shows it on every page).
MAX_REASON = 1000


@dataclass(frozen=True)
class Review:
    """An action awaiting confirmation: `title`, the `changes` it makes (one line each),
    the hidden `fields` the confirming POST sends again, and where it came `back` from."""

    title: str
    changes: list[str]
    fields: dict[str, str]
    back: str
    danger: bool = False
    notes: list[str] = field(default_factory=list)


def _reason(ask: Ask) -> str:
    reason = " ".join(ask.form.get("reason", "").split())
    if len(reason) > MAX_REASON:
        raise UsageError(f"a reason of {len(reason)} characters (at most {MAX_REASON})")
    return reason


def _review_or_do(ask: Ask, review: Review, do: Callable[[str], tuple[str, str]]) -> Response:
    """The confirmation page, unless confirmed with a reason: then `do(reason)` and a
    redirect to the (path, note) it returns."""
    reason = _reason(ask)
    if not reason or ask.form.get("confirmed") != "yes":
        error = "" if reason or "reason" not in ask.form else \
            "A reason is required: it is kept in the history."
        return ask.page("confirm.html.j2", 400 if error else 200, title=review.title,
                        review=review, reason=reason, error=error)
    path, note = do(reason)
    return ask.redirect(path, note)


def _form(ask: Ask, name: str) -> str:
    value = ask.form.get(name, "").strip()
    if not value:
        raise UsageError(f"the form lacks {name!r}")
    return value


def promote_action(ask: Ask) -> Response:
    """POST /models/{name}/promote: version, alias, reason[, force]."""
    from ..evaluation import GatesRefused, promote

    reg, name = ask.registry, ask.param("name")
    version, alias = _form(ask, "version"), _form(ask, "alias")
    force = ask.form.get("force") == "yes"
    target = reg.resolve(f"{name}/{version}")
    try:
        now = reg.resolve(f"{name}@{alias}").ref
    except (NotFoundError, UsageError):  # no such alias yet (a bad name: promote says so)
        now = None
    policy = reg.gate_policy(name, alias) if alias != "latest" else None
    review = Review(
        f"Promote {target.ref} to @{alias}",
        [f"{name}@{alias}: {now or '(new alias)'} → {target.ref}"],
        {"version": version, "alias": alias, **({"force": "yes"} if force else {})},
        f"/models/{name}", danger=force,
        notes=(["The gate policy of @" + alias + " runs first; a failing gate refuses."]
               if policy else []) + (["Forced past failing gates (recorded)."] if force else []))

    def do(reason: str) -> tuple[str, str]:
        done = promote(reg, target.ref, alias, force=force, reason=reason, user=ask.visitor.user)
        verb = "forced" if done.forced else "moved" if done.move.changed else "unchanged"
        return f"/models/{name}", f"{name}@{alias} → {target.ref} ({verb})"

    try:
        return _review_or_do(ask, review, do)
    except GatesRefused as e:
        return ask.page("refused.html.j2", 409, title=f"Gates refused {target.ref}",
                        report=e.report, message=str(e), name=name, version=version,
                        alias=alias, reason=_reason(ask))


def rollback_action(ask: Ask) -> Response:
    """POST /models/{name}/rollback: alias, reason."""
    reg, name = ask.registry, ask.param("name")
    alias = _form(ask, "alias")
    now = reg.resolve(f"{name}@{alias}")
    back = reg.rollback_target(name, alias)
    if back is None:
        raise UsageError(f"{name}@{alias} has no earlier version to roll back to")
    review = Review(f"Roll back {name}@{alias}",
                    [f"{name}@{alias}: {now.ref} → {name}/{back} (the version it held before)"],
                    {"alias": alias}, f"/models/{name}", danger=True)

    def do(reason: str) -> tuple[str, str]:
        move = reg.rollback(name, alias, reason=reason, user=ask.visitor.user)
        return f"/models/{name}", f"{name}@{alias} rolled back to {name}/{move.version}"

    return _review_or_do(ask, review, do)


def status_action(ask: Ask) -> Response:
    """POST /models/{name}/versions/{v}/archive or /restore: reason."""
    reg, name, number = ask.registry, ask.param("name"), ask.param("version")
    verb = ask.request.url.path.rsplit("/", 1)[-1]
    mv = reg.resolve(f"{name}/{number}")
    if verb == "archive":
        change = f"{mv.ref}: ready → archived (kept for audit, never promoted)"
    else:
        change = f"{mv.ref}: archived → ready"
    review = Review(f"{verb.capitalize()} {mv.ref}", [change], {}, f"/models/{name}",
                    danger=verb == "archive")

    def do(reason: str) -> tuple[str, str]:
        act = reg.archive if verb == "archive" else reg.restore
        done = act(mv.ref, reason=reason, user=ask.visitor.user)
        return f"/models/{name}", f"{done.ref} is {done.status.value}"

    return _review_or_do(ask, review, do)


def weights_action(ask: Ask) -> Response:
    """POST /deployments/{name}/weights: `weight:REF` per challenger (0 removes it)."""
    from ..routing import registered
    from ..routing.flags import SpecChanges

    reg, name = ask.registry, ask.param("name")
    _, spec = registered.read(reg, name)
    before = {c.model: c.weight for c in spec.challengers}
    given = {k.removeprefix("weight:"): v.strip() for k, v in ask.form.items()
             if k.startswith("weight:")}
    changed = {ref: w for ref, w in given.items() if ref in before and _float(w) != before[ref]}
    if not changed:
        raise UsageError("no weight changed")
    lines = [f"{ref}: {before[ref]:g} → {_float(w):g}" + (" (leaves)" if _float(w) == 0 else "")
             for ref, w in changed.items()]
    review = Review(f"Change the traffic split of {name}", lines,
                    {f"weight:{k}": v for k, v in changed.items()}, f"/deployments/{name}")

    def do(reason: str) -> tuple[str, str]:
        changes = SpecChanges(challengers=[f"{ref}={w}" for ref, w in changed.items()])
        stored = registered.change(reg, name, changes, reason=reason, user=ask.visitor.user)
        return f"/deployments/{name}", f"{name} is at revision {stored.revision}"

    return _review_or_do(ask, review, do)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"a weight is a number from 0 to 1, not {text!r}") from None


def deployment_rollback_action(ask: Ask) -> Response:
    """POST /deployments/{name}/rollback: reason."""
    reg, name = ask.registry, ask.param("name")
    stored = reg.deployment(name)
    review = Review(f"Roll back deployment {name}",
                    [f"{name}: revision {stored.revision} → the spec before its last change"],
                    {}, f"/deployments/{name}", danger=True)

    def do(reason: str) -> tuple[str, str]:
        done = reg.rollback_deployment(name, reason=reason, user=ask.visitor.user)
        return f"/deployments/{name}", f"{name} rolled back (revision {done.revision})"

    return _review_or_do(ask, review, do)


__all__ = ["Review", "deployment_rollback_action", "promote_action", "rollback_action",
           "status_action", "weights_action"]
