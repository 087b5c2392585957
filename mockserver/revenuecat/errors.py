"""Errors of the RevenueCat mock.  Each carries its HTTP status and its wire shape.

::

    WireError (mockserver._http)        .status, .body(), .headers(): how an answer is rendered
    RevenueCatMockError                 root of this mock's errors
     ├── V1Error                        {"code": int, "message": str}         API v1
     │    ├── InvalidAPIKey             401, 7225
     │    ├── SecretKeyRequired         403, 7243 (code UNCONFIRMED)
     │    ├── EmptyAppUserId            400, 7220
     │    ├── InvalidAttributesBody     400, 7264
     │    ├── InvalidSubscriberAttributes 400, 7263 + attribute_errors
     │    ├── SubscriberNotFound        404
     │    └── V1RouteNotFound           404 / 405
     ├── V2Error                        {"object": "error", "type", "message", "retryable",
     │    │                              "doc_url", "param"?, "backoff_ms"?}  API v2
     │    ├── AuthenticationError       401 authentication_error
     │    ├── AuthorizationError        403 authorization_error
     │    ├── ParameterError            400 parameter_error
     │    ├── InvalidRequest            400 invalid_request
     │    ├── ResourceMissing           404 resource_missing
     │    └── RateLimitError            429 rate_limit_error, Retry-After + backoff_ms
     └── SimulationError                409, control API: an operation the state does not allow
          └── UnknownEntity             404, control API: no such customer/product/delivery

Messages never contain an API key or a webhook authorization value.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mockserver._http import WireError

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "EmptyAppUserId",
    "InvalidAPIKey",
    "InvalidAttributesBody",
    "InvalidRequest",
    "InvalidSubscriberAttributes",
    "ParameterError",
    "RateLimitError",
    "ResourceMissing",
    "RevenueCatMockError",
    "SecretKeyRequired",
    "SimulationError",
    "SubscriberNotFound",
    "UnknownEntity",
    "V1Error",
    "V1RouteNotFound",
    "V2Error",
]


class RevenueCatMockError(WireError):
    """Root of the mock's errors: something the mock answers with a non-2xx status."""

    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body sent on the wire."""
        return {"message": self.message}


# --- API v1 ---------------------------------------------------------------------------------


class V1Error(RevenueCatMockError):
    """An API v1 error: ``{"code": ..., "message": ...}`` (api-v1.yaml ``Error``)."""

    code: int | None = None

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.code is not None:
            body["code"] = self.code
        return body


class InvalidAPIKey(V1Error):
    """A missing or unknown v1 key (the code 7225 is the SDKs' ``invalidAPIKey``)."""

    status = 401
    code = 7225

    def __init__(self) -> None:
        super().__init__("Invalid API key.")


class SecretKeyRequired(V1Error):
    """A public key used where RevenueCat requires a secret (``sk_``) key."""

    status = 403
    # UNCONFIRMED: RevenueCat's code for this case is not public; 7243 is the v1 spec's own
    # example error code.  Clients should branch on the status, not on this number.
    code = 7243

    def __init__(self) -> None:
        super().__init__("This endpoint requires a secret API key.")


class EmptyAppUserId(V1Error):
    """An empty ``app_user_id`` in the path (SDK code ``emptyAppUserId``)."""

    status = 400
    code = 7220

    def __init__(self) -> None:
        super().__init__("app_user_id cannot be empty.")


class InvalidAttributesBody(V1Error):
    """An attributes body that is not ``{"attributes": {key: {"value": ...}}}`` (7264)."""

    status = 400  # UNCONFIRMED: the status that goes with 7264 is not documented
    code = 7264


class InvalidSubscriberAttributes(V1Error):
    """Some attribute keys were rejected (7263); the valid ones were saved."""

    status = 400
    code = 7263

    def __init__(self, attribute_errors: list[dict[str, str]]) -> None:
        super().__init__("Some customer attribute keys were unable to be saved.")
        self.attribute_errors = attribute_errors

    def body(self) -> dict[str, Any]:
        return {**super().body(), "attribute_errors": self.attribute_errors}


class SubscriberNotFound(V1Error):
    """No customer with this app user id (DELETE, and attribute writes when creation is off)."""

    status = 404

    def __init__(self) -> None:
        super().__init__("Subscriber not found.")


class V1RouteNotFound(V1Error):
    """An unknown ``/v1`` path (404) or a known path with the wrong method (405)."""

    def __init__(self, *, method_not_allowed: bool = False) -> None:
        if method_not_allowed:
            super().__init__("Method not allowed.", status=405)
        else:
            super().__init__("Not found.", status=404)


# --- API v2 ---------------------------------------------------------------------------------


class V2Error(RevenueCatMockError):
    """An API v2 error object (api-v2.yaml ``components.schemas.Error``)."""

    type: ClassVar[str] = "server_error"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        status: int | None = None,
        backoff_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.param = param
        self.backoff_ms = backoff_ms
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "object": "error",
            "type": self.type,
            "message": self.message,
            "retryable": self.retryable,
            "doc_url": "https://errors.rev.cat/" + self.type.replace("_", "-"),
        }
        if self.param is not None:
            body["param"] = self.param
        if self.backoff_ms is not None:
            body["backoff_ms"] = self.backoff_ms
        return body


class AuthenticationError(V2Error):
    """A missing, non-Bearer or unknown v2 key."""

    status = 401
    type = "authentication_error"

    def __init__(self) -> None:
        super().__init__("Invalid API key")


class AuthorizationError(V2Error):
    """A valid v2 key used on a project it does not belong to."""

    status = 403
    type = "authorization_error"

    def __init__(self) -> None:
        super().__init__("You're not authorized to access this resource")


class ParameterError(V2Error):
    """A path, query or body parameter that breaks the v2 schema."""

    status = 400
    type = "parameter_error"


class InvalidRequest(V2Error):
    """A body that is not JSON, or an unknown ``/v2`` route or method."""

    status = 400
    type = "invalid_request"


class ResourceMissing(V2Error):
    """An unknown customer (v2 does not create customers on read)."""

    status = 404
    type = "resource_missing"

    def __init__(self, message: str = "Resource not found", *, param: str | None = None):
        super().__init__(message, param=param)


class RateLimitError(V2Error):
    """Too many requests for this key in the current minute."""

    status = 429
    type = "rate_limit_error"
    retryable = True

    def __init__(self, *, retry_after_s: int, usage: int, limit: int) -> None:
        # backoff_ms = Retry-After in ms (revenuecat.md section 2.4; Retry-After is in seconds).
        super().__init__("Rate limit exceeded", backoff_ms=retry_after_s * 1000)
        self.retry_after_s = retry_after_s
        self.usage = usage
        self.limit = limit

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after_s),
            "RevenueCat-Rate-Limit-Current-Usage": str(self.usage),
            "RevenueCat-Rate-Limit-Current-Limit": str(self.limit),
        }


# --- control API ----------------------------------------------------------------------------


class SimulationError(RevenueCatMockError):
    """A store-simulator operation that the subscription's current state does not allow."""

    status = 409

    def body(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "message": self.message}


class UnknownEntity(SimulationError):
    """No such customer, product, subscription or delivery (control API)."""

    status = 404
