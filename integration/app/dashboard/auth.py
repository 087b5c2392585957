"""Logging in to the dashboard: the admin token, once, for a signed session cookie.

A session is a cookie ``rcct_session = <expires>.<nonce>.<signature>``: the signature is an
HMAC-SHA256 of ``<expires>.<nonce>`` under a key derived from ``[admin] token``, so the
server keeps no session table, every instance of the engine accepts the others' sessions, and
changing the token ends every session at once.  Every comparison is constant time
(:func:`hmac.compare_digest`).  The cookie is HttpOnly, SameSite=Strict, and Secure when the
page was served over HTTPS.

The CSRF token of a session is an HMAC of its nonce under the same key: pages put it in every
form (and htmx sends it as ``X-CSRF-Token``); a state-changing request without it is refused
with 403.  Logging out clears the cookie in that browser; a copied cookie stays valid until it
expires (``[admin] session_s``) or the token changes.

Starlette's ``SessionMiddleware`` would need itsdangerous and sets ``Secure`` for all
requests or none; this is the same construction (an HMAC-signed cookie) in the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from integration.config import Secret

__all__ = ["COOKIE", "CSRF_FIELD", "CSRF_HEADER", "Session", "Sessions"]

COOKIE = "rcct_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
#: The token given on the login form; longer answers are refused without comparing them.
MAX_TOKEN_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Session:
    """A valid login: when it ends, and the CSRF token its forms carry."""

    expires_at: float
    csrf: str


class Sessions:
    """Issues and checks session cookies and CSRF tokens for one admin token.

    Example::

        sessions = Sessions(Secret("a-long-random-admin-token"), lifetime_s=3600)
        if sessions.token_matches(form_token):
            sessions.start(response, request)
        session = sessions.of(request)   # None without a valid cookie

    Parameters:
        token: the ``[admin] token``.
        lifetime_s: how long a login lasts.
        clock: epoch seconds (tests pass a fake clock).
    """

    def __init__(
        self, token: Secret, *, lifetime_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._token = token.reveal().encode()
        self._key = hmac.new(self._token, b"rc-clevertap dashboard session v1", "sha256").digest()
        self._lifetime_s = lifetime_s
        self._clock = clock

    def __repr__(self) -> str:
        return f"Sessions(lifetime_s={self._lifetime_s!r})"

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is the admin token, compared in constant time."""
        if len(given) > MAX_TOKEN_CHARS:
            return False
        return hmac.compare_digest(given.encode(), self._token)

    def bearer_matches(self, request: Request) -> bool:
        """Whether the request carries ``Authorization: Bearer <admin token>`` (the JSON API
        for scripts; a browser uses the session cookie)."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(given.strip())

    def start(self, response: Response, request: Request) -> Session:
        """Set a new session cookie on ``response``."""
        expires = int(self._clock() + self._lifetime_s)
        nonce = secrets.token_hex(16)
        payload = f"{expires}.{nonce}"
        response.set_cookie(
            COOKIE,
            f"{payload}.{self._sign(payload)}",
            max_age=int(self._lifetime_s),
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return Session(float(expires), self._csrf(nonce))

    @staticmethod
    def end(response: Response, request: Request) -> None:
        """Clear the session cookie in this browser."""
        response.delete_cookie(
            COOKIE,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def of(self, request: Request) -> Session | None:
        """The request's session, or ``None`` when its cookie is missing, forged or expired."""
        value = request.cookies.get(COOKIE, "")
        expires, _, rest = value.partition(".")
        nonce, _, signature = rest.partition(".")
        # Anyone can send any cookie: only ASCII reaches compare_digest (it raises TypeError
        # on other text) and int() (``"²".isdigit()`` is true, ``int("²")`` raises).
        if not (number(expires) is not None and nonce and signature and value.isascii()):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{expires}.{nonce}")):
            return None
        if int(expires) <= self._clock():
            return None
        return Session(float(expires), self._csrf(nonce))

    def csrf_matches(self, session: Session, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def _csrf(self, nonce: str) -> str:
        return hmac.new(self._key, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()[:32]


#: Digits a number from a request may have: ids and times fit, a 4,300-digit int() does not run.
MAX_DIGITS = 18


def number(text: str) -> int | None:
    """``text`` as a non-negative integer when it is 1 to :data:`MAX_DIGITS` ASCII digits,
    else ``None``: what the dashboard reads from cookies, forms and query strings."""
    if 0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None
