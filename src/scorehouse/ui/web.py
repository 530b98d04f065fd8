"""The console's plumbing: the registry and templates it renders with (`Console`), one
request as a view sees it (`Ask`), and `endpoint`, which turns a view into a Starlette
endpoint with access checks, errors as pages and the session cookies.

Views are plain functions `view(ask) -> Response`, run in a worker thread (the registry's
calls block); `endpoint(console, view, post=True)` reads the form, checks its CSRF token
and the deployer role first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..errors import ScorehouseError
from ..registry import Registry
from .auth import FLASH, Access, Forbidden, SignInNeeded, Visitor
from .kept import MonitorViews
from .settings import UiSettings

HERE = Path(__file__).parent
#: Most bytes of a form body (a reason is a sentence; nothing here uploads files).
MAX_FORM = 64 * 1024
#: HTTP status of each exit code of the errors tree (anything else: 500).
STATUS = {2: 400, 3: 404, 4: 400, 5: 422, 6: 409}
#: Where the browser may load anything from: this server only (no CDN); inline SVG
#: charts carry style attributes.
POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
          "frame-ancestors 'self'; form-action 'self'; base-uri 'none'")


class Console:
    """What every view shares: the settings, the registry, access rules and templates."""

    def __init__(self, settings: UiSettings, registry: Registry | None = None):
        self.settings = settings
        self.registry = registry or Registry(settings.registry, settings.artifacts)
        self.access = Access(settings)
        #: Models the monitoring pages read, by manifest sha256 (loaded once each).
        self.scorers: dict[str, Any] = {}
        #: The monitoring pages' computed figures (see `monitoring.py`).
        self.monitoring = MonitorViews()
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["j2"]),
            undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.templates.filters["num"] = number
        self.templates.filters["q"] = lambda v: quote(str(v), safe="")


def number(v: Any, digits: int = 4) -> str:
    """A figure for a table: floats to `digits` significant digits, None as '–'."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


@dataclass
class Ask:
    """One request as a view sees it: the `visitor`, the `form` of a POST, the path
    parameters and query, and `base`, the path the console is mounted at ('' or '/ui')."""

    console: Console
    request: Request
    visitor: Visitor
    form: Mapping[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        """The prefix of every link ('' standalone, '/ui' inside `scorehouse serve`)."""
        return str(self.request.scope.get("root_path") or "")

    @property
    def registry(self) -> Registry:
        """The console's registry."""
        return self.console.registry

    def param(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])

    def query(self, name: str, default: str = "") -> str:
        """A query parameter ('' or `default` when absent)."""
        return self.request.query_params.get(name, default)

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """`template` rendered with `context` plus what every page shows."""
        flash = unquote(self.request.cookies.get(FLASH, ""))
        html = self.console.templates.get_template(template).render(
            base=self.base, visitor=self.visitor, flash=flash, path=self.request.url.path,
            allow_writes=self.console.access.allow_writes,
            keys=self.console.access.keys.enabled, **context)
        response = HTMLResponse(html, status)
        if flash:
            response.delete_cookie(FLASH, path=self.base + "/")
        return response

    def redirect(self, path: str, note: str = "") -> RedirectResponse:
        """303 to `path` (under `base`), with `note` shown once on the next page."""
        response = RedirectResponse(self.base + path, 303)
        if note:
            response.set_cookie(FLASH, quote(note)[:1500], path=self.base + "/",
                                httponly=True, samesite="strict")
        return response


View = Callable[[Ask], Response]


def endpoint(console: Console, view: View, *, post: bool = False, act: bool = True,
             open_page: bool = False) -> Callable[[Request], Any]:
    """A Starlette endpoint running `view` in a worker thread.

    `post`: the request is a form POST, refused (403) without the session's CSRF token and,
    when `act`, without the deployer role. `open_page`: shown without a key (sign-in).
    A ScorehouseError becomes an error page with its status (STATUS by exit code).
    """
    async def run(request: Request) -> Response:
        visitor = console.access.visitor(request)
        ask = Ask(console, request, visitor)
        try:
            if post:
                ask.form = await _form(request)
                console.access.check_post(visitor, ask.form, request, act=act)
            if visitor.role is None and not open_page:
                raise SignInNeeded("sign in with an API key")
            response = await run_in_threadpool(view, ask)
        except SignInNeeded:
            response = RedirectResponse(f"{ask.base}/login?next={quote(request.url.path)}", 303)
        except Forbidden as e:
            response = _error(ask, e, 403)
        except ScorehouseError as e:
            response = _error(ask, e, STATUS.get(e.exit_code, 500))
        _secure(response)
        console.access.remember(response, ask.visitor, request)
        return response
    return run


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (the last value of a repeated field)."""
    body = await request.body()
    if len(body) > MAX_FORM:
        raise Forbidden(f"a form of {len(body)} bytes (at most {MAX_FORM})")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _error(ask: Ask, error: Exception, status: int) -> Response:
    return ask.page("error.html.j2", status, title=f"{status}: {type(error).__name__}",
                    message=str(error), kind=type(error).__name__)


def _secure(response: Response) -> None:
    response.headers.setdefault("content-security-policy", POLICY)
    response.headers.setdefault("x-content-type-options", "nosniff")
    response.headers.setdefault("referrer-policy", "same-origin")
    response.headers.setdefault("cache-control", "no-store")


__all__ = ["Ask", "Console", "View", "endpoint", "number"]
