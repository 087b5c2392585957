"""Which API keys the mock accepts, and how a request's ``Authorization`` header is checked.

RevenueCat has three kinds of keys (revenuecat.md section 1.1, 2.4):

* public (SDK) keys, one per app: v1 only, can read customers and write attributes;
* secret keys, ``sk_...``: v1 only, also see ``subscriber_attributes`` and may delete customers;
* v2 secret keys: v2 only, ``Authorization: Bearer <key>`` required.

v1 accepts ``Bearer <key>`` or the bare key; v1 keys do not work on v2 and v2 keys not on v1.
Keys are compared in constant time and never appear in a ``repr`` or an error message.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from mockserver.revenuecat.errors import AuthenticationError, InvalidAPIKey

__all__ = [
    "DEFAULT_PUBLIC_KEY",
    "DEFAULT_SECRET_KEY",
    "DEFAULT_V2_KEY",
    "ApiKeys",
    "KeyKind",
    "redact",
]

# The mock's documented default keys: not secrets, printed by `rc-clevertap mock` at start-up.
DEFAULT_PUBLIC_KEY = "appl_mock_public_key"
DEFAULT_SECRET_KEY = "sk_mock_secret_key"  # noqa: S105
DEFAULT_V2_KEY = "sk_mock_v2_key"


class KeyKind(enum.Enum):
    """What a v1 key may do."""

    PUBLIC = "public"
    SECRET = "secret"  # noqa: S105 (a key kind, not a password)


def redact(key: str) -> str:
    """A key shown safely: its first four characters and its length."""
    return f"{key[:4]}…({len(key)} chars)" if len(key) > 8 else "…"


def _matches(candidate: str, keys: tuple[str, ...]) -> bool:
    found = False
    for key in keys:
        # Check every key so that timing does not tell which one (or how many) matched.
        found |= hmac.compare_digest(candidate.encode(), key.encode())
    return found


def _bearer(header: str) -> str | None:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class ApiKeys:
    """The keys the mock accepts.

    Example::

        keys = ApiKeys(public=("appl_x",), secret=("sk_x",), v2=("sk_v2",))
        keys.authenticate_v1("Bearer sk_x")        # KeyKind.SECRET

    Parameters:
        public: v1 public (SDK) keys.
        secret: v1 secret keys; each must start with ``sk_``.
        v2: API v2 keys (accepted on ``/v2`` only, with ``Bearer``).
    """

    public: tuple[str, ...] = (DEFAULT_PUBLIC_KEY,)
    secret: tuple[str, ...] = (DEFAULT_SECRET_KEY,)
    v2: tuple[str, ...] = (DEFAULT_V2_KEY,)

    def __post_init__(self) -> None:
        for name, keys in (("public", self.public), ("secret", self.secret), ("v2", self.v2)):
            if not isinstance(keys, tuple) or not all(isinstance(k, str) and k for k in keys):
                raise ValueError(f"{name} keys must be a tuple of non-empty strings")
        if not all(key.startswith("sk_") for key in self.secret):
            raise ValueError("secret keys must start with 'sk_'")
        overlap = (set(self.public) | set(self.secret)) & set(self.v2)
        if overlap or set(self.public) & set(self.secret):
            raise ValueError("a key cannot be of two kinds")

    def __repr__(self) -> str:
        return (
            f"ApiKeys(public={len(self.public)} key(s), secret={len(self.secret)} key(s), "
            f"v2={len(self.v2)} key(s))"
        )

    @classmethod
    def of(cls, *, public: Iterable[str], secret: Iterable[str], v2: Iterable[str]) -> ApiKeys:
        """Build from any iterables (the CLI passes lists)."""
        return cls(public=tuple(public), secret=tuple(secret), v2=tuple(v2))

    def authenticate_v1(self, header: str | None) -> KeyKind:
        """The kind of the v1 key in ``header`` (``Bearer <key>`` or the bare key)."""
        if not header:
            raise InvalidAPIKey()
        token = _bearer(header) or header.strip()
        if _matches(token, self.secret):
            return KeyKind.SECRET
        if _matches(token, self.public):
            return KeyKind.PUBLIC
        raise InvalidAPIKey()

    def authenticate_v2(self, header: str | None) -> str:
        """The v2 key in ``header``; v2 requires ``Bearer`` and rejects v1 keys."""
        token = _bearer(header or "")
        if token is None or not _matches(token, self.v2):
            raise AuthenticationError()
        return token
