"""PostgreSQL connection strings: validate them early and never show their password.

A URL (``postgresql://user:secret@host:5432/db?sslmode=require``) or a libpq key/value string
(``host=db user=forwarder password=secret``) may carry a password in the user-info part or in
a ``password`` parameter.  :func:`redact` hides both for reprs and logs; :func:`scrub` removes a
known password from any text (a driver error message) before it is shown.

URLs may also name the outbox's schema (``?schema=rc_clevertap``): :func:`pop_schema` takes
that parameter off before libpq sees the URL.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from psycopg import conninfo as pg_conninfo

MASK = "***"

# libpq key/value strings: ``password=secret`` or ``password = 'se cret'``.
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URL_SCHEMES = ("postgresql://", "postgres://")


class ConninfoError(ValueError):
    """The connection string cannot be parsed; its text is never repeated in the message."""


def is_url(conninfo: str) -> bool:
    return conninfo.lower().startswith(_URL_SCHEMES)


def redact(conninfo: str) -> str:
    """The connection string with any password replaced by ``***``."""
    if not is_url(conninfo):
        return _KV_PASSWORD.sub(lambda m: m.group(1) + MASK, conninfo)
    parts = urlsplit(conninfo)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, has_password, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostinfo}" if has_password else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        redacted = [(k, MASK if k.lower() == "password" else v) for k, v in pairs]
        query = urlencode(redacted, safe="*/:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def pop_schema(conninfo: str) -> tuple[str, str | None]:
    """Split our own ``schema`` query parameter off a URL, which libpq would refuse."""
    if not is_url(conninfo):
        return conninfo, None
    parts = urlsplit(conninfo)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in pairs if k == "schema"]
    if not schemas:
        return conninfo, None
    query = urlencode([(k, v) for k, v in pairs if k != "schema"])
    return urlunsplit(parts._replace(query=query)), schemas[-1]


def password_of(conninfo: str) -> str | None:
    """The password the string carries, or ``None``; raises :class:`ConninfoError` if invalid."""
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except Exception:  # the driver's message may quote the string, password included
        raise ConninfoError(f"invalid PostgreSQL connection string: {redact(conninfo)}") from None
    password = params.get("password")
    return None if password is None else str(password)


def scrub(text: str, password: str | None) -> str:
    """``text`` with every occurrence of ``password`` (raw or URL-quoted) masked."""
    if not password:
        return text
    for form in {password, quote(password, safe=""), unquote(password)}:
        if form:
            text = text.replace(form, MASK)
    return text
