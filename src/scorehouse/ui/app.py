"""The console's ASGI app: its routes, static assets (htmx and the style sheet, shipped in
the wheel: no CDN), and signing in and out.

    app = create_app(UiSettings(registry="postgresql://...", allow_writes=True))

`scorehouse ui` serves it on its own port; `scorehouse serve --ui` mounts it under `/ui`
beside the scoring routes (the server takes it as a plain ASGI app: `serve` never imports
this package).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..registry import Registry
from . import actions, models, monitoring, operations
from .settings import UiSettings
from .web import HERE, Ask, Console, View, endpoint


def _safe_next(path: str, base: str) -> str:
    """Where to go after signing in: a path of this console only (no open redirect)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path[len(base):] if base and path.startswith(base) else path


def login_page(ask: Ask) -> Response:
    """GET /login: the form taking an API key."""
    return ask.page("login.html.j2", title="Sign in", next=ask.query("next", "/"), error="")


def login_action(ask: Ask) -> Response:
    """POST /login: key, next. A valid key starts a new session; a wrong one answers 401."""
    signed = ask.console.access.sign_in(ask.form.get("key", "").strip())
    target = _safe_next(ask.form.get("next", "/"), ask.base)
    if signed is None:
        return ask.page("login.html.j2", 401, title="Sign in", next=target,
                        error="That key is not valid here.")
    ask.visitor = signed
    return ask.redirect(target, f"Signed in as {signed.user} ({signed.role.value if signed.role else ''})")


def logout_action(ask: Ask) -> Response:
    """POST /logout: a new anonymous session."""
    ask.visitor = ask.console.access.signed_out()
    return ask.redirect("/login" if ask.console.access.keys.enabled else "/", "Signed out")


def health(ask: Ask) -> Response:
    """GET /healthz: 200 once the registry answers (no sign-in needed)."""
    ask.registry.models()
    return PlainTextResponse("ok")


def _routes(console: Console) -> list[BaseRoute]:
    def page(path: str, view: View, name: str, **options: bool) -> Route:
        return Route(path, endpoint(console, view, **options), methods=["GET"], name=name)

    def act(path: str, view: View, name: str) -> Route:
        return Route(path, endpoint(console, view, post=True), methods=["POST"], name=name)

    m = "/models/{name}"
    v = m + "/versions/{version:int}"
    return [
        page("/", models.models_page, "models"),
        page(m, models.model_page, "model"),
        page(v, models.version_page, "version"),
        page(v + "/schema", models.schema_fragment, "schema"),
        page(v + "/card", operations.card_page, "card"),
        page(v + "/card.html", operations.card_file, "card_html"),
        page(v + "/card.md", operations.card_file, "card_md"),
        page(m + "/compare", models.compare_page, "compare"),
        page(m + "/monitor", monitoring.monitor_page, "monitor"),
        page(m + "/monitor/charts/{kind}.svg", monitoring.monitor_chart, "monitor_chart"),
        page("/deployments", operations.deployments_page, "deployments"),
        page("/deployments/{name}", operations.deployment_page, "deployment"),
        page("/deployments/{name}/comparison", operations.comparison_page, "comparison"),
        page("/deployments/{name}/comparison.html", operations.comparison_file,
             "comparison_html"),
        act(m + "/promote", actions.promote_action, "promote"),
        act(m + "/rollback", actions.rollback_action, "rollback"),
        act(v + "/archive", actions.status_action, "archive"),
        act(v + "/restore", actions.status_action, "restore"),
        act("/deployments/{name}/weights", actions.weights_action, "weights"),
        act("/deployments/{name}/rollback", actions.deployment_rollback_action,
            "deployment_rollback"),
        page("/login", login_page, "login", open_page=True),
        Route("/login", endpoint(console, login_action, post=True, act=False, open_page=True),
              methods=["POST"]),
        Route("/logout", endpoint(console, logout_action, post=True, act=False,
                                  open_page=True), methods=["POST"]),
        page("/healthz", health, "health", open_page=True),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


async def _not_found(request: object, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    return PlainTextResponse("no such page" if status == 404 else "method not allowed", status)


def create_app(settings: UiSettings | None = None, *, registry: Registry | None = None
               ) -> Starlette:
    """The console for `settings` (default: the default registry, read-only), on
    `registry` when given (else one opened from the settings).

    Raises:
        RegistryError: the registry cannot be opened.
        ScorehouseError: the API key file does not exist.
        UsageError: a line of the key file cannot be read.
    """
    console = Console((settings or UiSettings()).with_secret(), registry)
    app = Starlette(routes=_routes(console),
                    exception_handlers={404: _not_found, 405: _not_found})
    app.state.console = console
    return app


def redirect_to_console(prefix: str) -> Response:
    """A redirect from `prefix` to `prefix/` (what a mount at /ui answers for /ui)."""
    return RedirectResponse(prefix + "/", 308)


__all__ = ["create_app", "redirect_to_console"]
