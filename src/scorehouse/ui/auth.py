"""Who is asking, and whether they may act: roles on the server's API keys, a signed
session cookie, and a CSRF token per session.

* With API keys configured (`UiSettings.has_keys`), every page needs one: a person signs
  in once with a key (the session cookie then names the key's fingerprint, never the key,
  and is re-checked against the key file on every request, so a revoked key signs out);
  a script sends `Authorization: Bearer KEY`. A `reader` key looks, a `deployer` key acts.
* Without keys, the console is read-only, unless started with `allow_writes` (then
  everyone acts, as the deployer role).
* Every POST from a browser session carries the session's CSRF token in a form field
  (`csrf`), equal to the `scorehouse_csrf` cookie; both are derived from the session id
  with the settings' secret. The cookies are `SameSite=Strict` (and `HttpOnly` for the
  session), so another site can neither send them nor read the token. A request signed
  with a bearer header carries no ambient credential and needs no token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from ..apikeys import KeyEntry, KeyRing, Role
from ..errors import ScorehouseError
from .settings import UiSettings

SESSION = "scorehouse_session"
CSRF = "scorehouse_csrf"
FLASH = "scorehouse_flash"
#: Seconds a session cookie lives in the browser (its key is checked on every request).
SESSION_SECONDS = 12 * 3600


class Forbidden(ScorehouseError):
    """A request the visitor may not make (answered 403): no deployer role, or a POST
    without the session's CSRF token."""


class SignInNeeded(ScorehouseError):
    """A page asked for without a valid key while keys are required (sign in first)."""


@dataclass(frozen=True)
class Visitor:
    """Who asks: `role` (None: keys are required and none was given), `user` recorded on
    their changes (None: the registry's default user), the session id `sid` and its
    `csrf` token, the `fingerprint` of the key signed in with ('' for none), `bearer`
    (the key came in a header), and `fresh` (the session cookie must be set on the
    answer)."""

    role: Role | None
    user: str | None
    sid: str
    csrf: str
    fingerprint: str = ""
    bearer: bool = False
    fresh: bool = False

    @property
    def key(self) -> bool:
        """True when signed in with an API key."""
        return bool(self.fingerprint)

    @property
    def can_act(self) -> bool:
        """True for the deployer role: promote, roll back, archive, change deployments."""
        return self.role is Role.DEPLOYER


class Access:
    """The console's rules of access for one set of settings (see the module docstring)."""

    def __init__(self, settings: UiSettings):
        self.keys = KeyRing(settings.api_keys, settings.api_key_file, settings.deployer_keys)
        self.allow_writes = settings.allow_writes
        self._secret = (settings.secret or secrets.token_hex(32)).encode()

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()[:40]

    def _anonymous_role(self) -> Role | None:
        if self.keys.enabled:
            return None
        return Role.DEPLOYER if self.allow_writes else Role.READER

    def _visitor(self, sid: str, entry: KeyEntry | None, fresh: bool) -> Visitor:
        csrf = self._sign(f"csrf|{sid}")
        if entry is None:
            return Visitor(self._anonymous_role(), None, sid, csrf, fresh=fresh)
        return Visitor(entry.role, entry.who, sid, csrf, entry.fingerprint, fresh=fresh)

    def visitor(self, request: Request) -> Visitor:
        """The visitor of `request`: from its bearer header, else its session cookie, else a
        new anonymous session."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token and self.keys.enabled:
            entry = self.keys.find(token)
            if entry is not None:
                return Visitor(entry.role, entry.who, "", "", entry.fingerprint, bearer=True)
        sid, fingerprint = self._session(request.cookies.get(SESSION, ""))
        if sid is None:
            return self._visitor(secrets.token_urlsafe(18), None, fresh=True)
        entry = self.keys.by_fingerprint(fingerprint) if fingerprint else None
        return self._visitor(sid, entry, fresh=bool(fingerprint) and entry is None)

    def _session(self, cookie: str) -> tuple[str | None, str]:
        sid, _, rest = cookie.partition(".")
        fingerprint, _, signature = rest.partition(".")
        if not sid or not signature or not hmac.compare_digest(
                signature, self._sign(f"session|{sid}|{fingerprint}")):
            return None, ""
        return sid, fingerprint

    def sign_in(self, token: str) -> Visitor | None:
        """A new session (a new id: no fixation) for the key `token` (None: no such key)."""
        entry = self.keys.find(token) if token else None
        if entry is None:
            return None
        return self._visitor(secrets.token_urlsafe(18), entry, fresh=True)

    def signed_out(self) -> Visitor:
        """A new anonymous session."""
        return self._visitor(secrets.token_urlsafe(18), None, fresh=True)

    def check_post(self, visitor: Visitor, form: Mapping[str, str], request: Request,
                   act: bool = True) -> None:
        """Refuse (Forbidden) a POST without the session's CSRF token, or, when `act`,
        from a visitor without the deployer role."""
        if not visitor.bearer:
            given, cookie = form.get("csrf", ""), request.cookies.get(CSRF, "")
            if not (given and cookie and hmac.compare_digest(given, visitor.csrf)
                    and hmac.compare_digest(cookie, visitor.csrf)):
                raise Forbidden("the form's CSRF token is missing or wrong (reload the page "
                                "and try again)")
        if act and not visitor.can_act:
            why = ("sign in with a deployer key" if self.keys.enabled else
                   "this console is read-only: start it with --allow-writes or with API keys")
            raise Forbidden(f"changing the registry needs the deployer role: {why}")

    def remember(self, response: Response, visitor: Visitor, request: Request) -> None:
        """Set the session and CSRF cookies on `response` when the session is new."""
        if visitor.bearer or not (visitor.fresh or CSRF not in request.cookies):
            return
        path = (request.scope.get("root_path") or "") + "/"
        secure = request.url.scheme == "https"
        if visitor.fresh:
            fp = visitor.fingerprint
            value = f"{visitor.sid}.{fp}.{self._sign(f'session|{visitor.sid}|{fp}')}"
            response.set_cookie(SESSION, value, max_age=SESSION_SECONDS, path=path,
                                httponly=True, samesite="strict", secure=secure)
        response.set_cookie(CSRF, visitor.csrf, max_age=SESSION_SECONDS, path=path,
                            httponly=True, samesite="strict", secure=secure)


__all__ = ["CSRF", "FLASH", "SESSION", "Access", "Forbidden", "SignInNeeded", "Visitor"]
