"""RevenueCat's response schemas, transcribed by hand from its OpenAPI specs, and a checker.

Transcribed (for the fields the mock serves) from RevenueCat's ``api-v1.yaml``
(``Subscriber``, ``Error``, the delete-subscriber and 7263 responses) and ``api-v2.yaml``
(``Customer``, ``CustomerAttribute``, ``ListCustomerAttributes``, ``CustomerEntitlement``,
``DeletedObject``, ``Error``).  Stricter than the specs in one way: every property the mock
serves is listed as required, so a field dropped by accident fails the test.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_STR: Schema = {"type": "string"}
_NSTR: Schema = {"type": "string", "nullable": True}
_INT: Schema = {"type": "integer"}
_NINT: Schema = {"type": "integer", "nullable": True}
_BOOL: Schema = {"type": "boolean"}
_PRICE: Schema = {
    "type": "object",
    "required": ["amount", "currency"],
    "properties": {"amount": {"type": "number"}, "currency": _STR},
}


def _obj(props: dict[str, Schema], *, extra: bool = False) -> Schema:
    return {"type": "object", "required": list(props), "properties": props, "additional": extra}


V1_SUBSCRIPTION = _obj({
    "auto_resume_date": _NSTR, "billing_issues_detected_at": _NSTR, "display_name": _STR,
    "expires_date": _NSTR, "grace_period_expires_date": _NSTR, "is_sandbox": _BOOL,
    "original_purchase_date": _STR,
    "ownership_type": {"type": "string", "enum": ["PURCHASED", "FAMILY_SHARED"]},
    "period_type": {"type": "string", "enum": ["normal", "trial", "intro"]},
    "price": _PRICE, "purchase_date": _STR, "refunded_at": _NSTR, "store": _STR,
    "store_transaction_id": _STR, "unsubscribe_detected_at": _NSTR,
})  # fmt: skip
V1_NON_SUBSCRIPTION = _obj({
    "display_name": _STR, "id": _STR, "is_sandbox": _BOOL, "price": _PRICE,
    "purchase_date": _STR, "store": _STR, "store_transaction_id": _STR,
})  # fmt: skip
V1_ENTITLEMENT = _obj({
    "expires_date": _NSTR, "grace_period_expires_date": _NSTR, "product_identifier": _STR,
    "purchase_date": _STR,
})  # fmt: skip
V1_ATTRIBUTE = _obj({"value": _STR, "updated_at_ms": _INT})


V1_OFFERINGS = _obj({
    "current_offering_id": _STR,
    "offerings": {"type": "array", "items": _obj({
        "description": _STR, "identifier": _STR,
        "packages": {"type": "array", "items": _obj({
            "identifier": _STR, "platform_product_identifier": _STR,
        })},
    })},
})  # fmt: skip


def v1_subscriber(*, with_attributes: bool) -> Schema:
    props: dict[str, Schema] = {
        "entitlements": {"type": "object", "values": V1_ENTITLEMENT},
        "first_seen": _STR,
        "last_seen": _STR,
        "management_url": _NSTR,
        "non_subscriptions": {
            "type": "object", "values": {"type": "array", "items": V1_NON_SUBSCRIPTION}
        },
        "original_app_user_id": _STR,
        "original_application_version": _NSTR,
        "original_purchase_date": _NSTR,
        "other_purchases": {"type": "object"},
        "subscriptions": {"type": "object", "values": V1_SUBSCRIPTION},
    }  # fmt: skip
    if with_attributes:
        props["subscriber_attributes"] = {"type": "object", "values": V1_ATTRIBUTE}
    return _obj({"request_date": _STR, "request_date_ms": _INT, "subscriber": _obj(props)})


# ``code`` is optional in the spec; the mock omits it where RevenueCat's code is unknown (404s).
V1_ERROR = {**_obj({"message": _STR, "code": {"type": "number"}}), "required": ["message"]}
V1_ATTRIBUTE_ERROR = _obj({
    "code": _INT, "message": _STR,
    "attribute_errors": {"type": "array", "items": _obj({"key_name": _STR, "message": _STR})},
})  # fmt: skip
V1_DELETED = _obj({"app_user_id": _STR, "deleted": _BOOL})

V2_ATTRIBUTE = _obj({
    "object": {"type": "string", "enum": ["customer.attribute"]}, "name": _STR,
    "value": _NSTR, "updated_at": _INT,
})  # fmt: skip


def _v2_list(items: Schema) -> Schema:
    return _obj({
        "object": {"type": "string", "enum": ["list"]},
        "items": {"type": "array", "items": items}, "next_page": _NSTR, "url": _STR,
    })  # fmt: skip


V2_ATTRIBUTE_LIST = _v2_list(V2_ATTRIBUTE)
V2_ENTITLEMENT = _obj({
    "object": {"type": "string", "enum": ["customer.active_entitlement"]},
    "entitlement_id": _STR, "expires_at": _NINT,
})  # fmt: skip


def v2_customer(*, expanded: bool) -> Schema:
    props: dict[str, Schema] = {
        "object": {"type": "string", "enum": ["customer"]}, "id": _STR, "project_id": _STR,
        "first_seen_at": _INT, "last_seen_at": _NINT, "last_seen_app_version": _NSTR,
        "last_seen_country": _NSTR, "last_seen_platform": _NSTR,
        "last_seen_platform_version": _NSTR, "active_entitlements": _v2_list(V2_ENTITLEMENT),
        "experiment": {"type": "object", "nullable": True},
    }  # fmt: skip
    if expanded:
        props["attributes"] = V2_ATTRIBUTE_LIST
    return _obj(props)


V2_DELETED = _obj({
    "object": {"type": "string", "enum": ["customer"]}, "id": _STR, "deleted_at": _INT
})  # fmt: skip
_V2_ERROR_TYPES = [
    "parameter_error", "resource_already_exists", "resource_missing", "idempotency_error",
    "rate_limit_error", "authentication_error", "authorization_error", "store_error",
    "server_error", "resource_locked_error", "unprocessable_entity_error", "invalid_request",
]  # fmt: skip


def v2_error(*, param: bool = False, backoff: bool = False) -> Schema:
    props: dict[str, Schema] = {
        "object": {"type": "string", "enum": ["error"]},
        "type": {"type": "string", "enum": _V2_ERROR_TYPES},
        "message": _STR, "retryable": _BOOL, "doc_url": _STR,
    }  # fmt: skip
    if param:
        props["param"] = _NSTR
    if backoff:
        props["backoff_ms"] = _NINT
    return _obj(props)


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,),
}  # fmt: skip


def problems(value: Any, schema: Schema, path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (empty when it conforms)."""
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null"]
    expected = schema.get("type")
    if expected is not None:
        ok = isinstance(value, _TYPES[expected])
        if expected in ("integer", "number") and isinstance(value, bool):
            ok = False
        if not ok:
            return [f"{path}: {type(value).__name__} is not {expected}"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        found += [f"{path}.{k}: missing" for k in schema.get("required", []) if k not in value]
        if "properties" in schema and not schema.get("additional", True):
            found += [f"{path}.{k}: not in the schema" for k in value if k not in props]
        for key, item in value.items():
            sub = props.get(key) or schema.get("values")
            if sub is not None:
                found += problems(item, sub, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(item, schema["items"], f"{path}[{index}]")
    return found
