"""RevenueCat's input rules, checked before anything is sent.

Rules (reference §1.4, §2.4; api-v2.yaml ``CustomerAttributeCustomName``):

* a key starting with ``$`` must be one of :data:`client.RESERVED_KEYS`;
* a custom key matches ``^[a-zA-Z][a-zA-Z0-9_-]*$`` and has at most 40 characters;
* a value is a string of at most 500 characters, or ``None`` (``None`` and ``""`` delete);
* one call carries at most 50 custom attributes (v1) or 1..50 attributes in all (v2).

A call with several attributes is rejected whole when any of them breaks a rule, and the
error lists every offending key.  The caller meant one write; sending part of it would leave
RevenueCat in a state nobody asked for, and how the server handles a partly-bad batch is
itself UNCONFIRMED (reference §1.2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from client._exceptions import AttributeErrorDetail, InvalidAttributeError
from client._keys import RESERVED_KEYS

__all__ = [
    "MAX_ATTRIBUTES_PER_CALL",
    "MAX_KEY_LENGTH",
    "MAX_VALUE_LENGTH",
    "check_attribute",
    "check_attributes",
    "check_id",
]

MAX_KEY_LENGTH = 40
MAX_VALUE_LENGTH = 500
MAX_ATTRIBUTES_PER_CALL = 50
# v2 path limits (api-v2.yaml: project_id maxLength 255, customer_id 1..1500).
MAX_PROJECT_ID_LENGTH = 255
MAX_CUSTOMER_ID_LENGTH = 1500

_CUSTOM_KEY = re.compile(r"[a-zA-Z][a-zA-Z0-9_-]*")
_RESERVED_BY_LOWER = {key.lower(): key for key in RESERVED_KEYS}


def is_custom(key: str) -> bool:
    """Whether ``key`` counts against the custom-attribute limit."""
    return key not in RESERVED_KEYS


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return f"Key must be a string, not {type(key).__name__}."
    if key in RESERVED_KEYS:
        return None
    if key.startswith("$"):
        known = _RESERVED_BY_LOWER.get(key.lower())
        hint = f" Did you mean {known!r}?" if known else ""
        return f"Keys starting with '$' are reserved and this one is not known.{hint}"
    if len(key) > MAX_KEY_LENGTH:
        return f"Key is longer than {MAX_KEY_LENGTH} characters."
    if not _CUSTOM_KEY.fullmatch(key):
        return (
            "Key name format is not valid: it must start with a letter and hold only "
            "letters, digits, '-' and '_'."
        )
    return None


def _value_problem(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return f"Value must be a string or None, not {type(value).__name__}."
    if len(value) > MAX_VALUE_LENGTH:
        return f"Value is longer than {MAX_VALUE_LENGTH} characters."
    return None


def _shown(key: object) -> str:
    return key if isinstance(key, str) else repr(key)


def check_attribute(key: object, value: object) -> str | None:
    """Validate one attribute and return its value, with ``""`` normalised to ``None``."""
    problem = _key_problem(key) or _value_problem(value)
    if problem is not None:
        raise InvalidAttributeError(
            f"Invalid attribute {_shown(key)!r}: {problem}",
            [AttributeErrorDetail(_shown(key), problem)],
        )
    assert value is None or isinstance(value, str)
    return value or None


def check_attributes(
    attributes: Mapping[str, str | None], *, max_total: int | None = None
) -> dict[str, str | None]:
    """Validate a whole batch; return it with ``""`` values normalised to ``None``.

    ``max_total`` caps every attribute (v2); otherwise only custom keys are capped (v1).
    """
    if not isinstance(attributes, Mapping):
        raise InvalidAttributeError(
            f"Attributes must be a mapping of key to value, not {type(attributes).__name__}."
        )
    if not attributes:
        raise InvalidAttributeError("Attributes must not be empty: there is nothing to set.")
    errors = [
        AttributeErrorDetail(_shown(key), problem)
        for key, value in attributes.items()
        if (problem := _key_problem(key) or _value_problem(value)) is not None
    ]
    if errors:
        listed = "; ".join(f"{e.key_name!r}: {e.message}" for e in errors)
        raise InvalidAttributeError(f"Invalid attributes, nothing was sent. {listed}", errors)
    if max_total is not None and len(attributes) > max_total:
        raise InvalidAttributeError(
            f"At most {max_total} attributes can be set in one call, got {len(attributes)}."
        )
    custom = sum(1 for key in attributes if is_custom(key))
    if custom > MAX_ATTRIBUTES_PER_CALL:
        raise InvalidAttributeError(
            f"At most {MAX_ATTRIBUTES_PER_CALL} custom attributes can be set in one call, "
            f"got {custom}."
        )
    return {key: value or None for key, value in attributes.items()}


def check_id(name: str, value: object, *, max_length: int | None = None) -> str:
    """Validate a path identifier (app user id, project id, customer id)."""
    if not isinstance(value, str):
        raise InvalidAttributeError(f"{name} must be a string, not {type(value).__name__}.")
    if not value.strip():
        raise InvalidAttributeError(f"{name} must not be empty.")
    if max_length is not None and len(value) > max_length:
        raise InvalidAttributeError(f"{name} is longer than {max_length} characters.")
    return value
