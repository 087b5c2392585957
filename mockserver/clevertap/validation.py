"""Per-record validation of ``POST /1/upload`` with CleverTap's codes and messages.

A record that fails is not stored and comes back in ``unprocessed`` as
``{"status": "fail", "code": <code>, "error": <message>Skipped record number : <n>, "record": ...}``
(reference §3.1).  Codes are DOC-ERR's (reference §3.1 table).  Where a real response was
recorded, the message is the recorded one, including its separator before ``Skipped``:

- 509, 513: RudderStack fixtures built from production responses (reference §1.3, §3.1);
- 515..520, 525: the RUBY cassettes recorded against api.clevertap.com (reference §2, §3.1).

Every other message is DOC-ERR's one-line description (UNCONFIRMED wording).

Checks, in the order the mock applies them (the server's order is UNCONFIRMED)::

    not an object / bad "type"                     524
    token: objectId 530, tokenData 531, id 532, type 533, unknown type 534, bad id/keys 535
    no identity/objectId/FBID/GPID                 523   (a malformed objectId: 526)
    "ts" not a positive integer of epoch seconds   525
    event: evtName 509, restricted 513, discarded 528, structure 512, > N properties 522
    profile: profileData 512, standard fields 514..520, operators 512, > N custom keys 522

The function here is the hot path of the mock (see ``benchmarks/mock_upload.py``): it uses
``type(x) is T`` and dict lookups, and no regex on the common path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal

#: Root identifiers; a record needs one (reference §5).
IDENTITY_KEYS: Final = ("identity", "objectId", "FBID", "GPID")

#: objectId: the CleverTap ID.  Custom CleverTap IDs are 1-64 characters from
#: ``A-Z a-z 0-9 ( ) ! : @ $ _ -`` (reference §5, set-clevertap-id); generated ones are hex GUIDs
#: with an optional ``-``/``__`` prefix, which the same alphabet covers.
OBJECT_ID = re.compile(r"[A-Za-z0-9()!:@$_\-]{1,64}")

#: Restricted system event names: the Android and web SDK lists (reference §1.3) plus
#: "Web Page Viewed", which the server refused with 513 in a recorded response.  The full
#: server-side list and its case sensitivity are UNCONFIRMED: matching is exact, and the set is
#: configurable through :class:`Limits`.
RESTRICTED_EVENT_NAMES: Final = frozenset(
    {
        "App Launched",
        "App Uninstalled",
        "Geocluster Entered",
        "Geocluster Exited",
        "Notification Bounced",
        "Notification Clicked",
        "Notification Sent",
        "Notification Viewed",
        "SCCampaignOptOut",
        "SCEnd",
        "SCIncoming",
        "SCOutgoing",
        "Stayed",
        "UTM Visited",
        "Web Page Viewed",
        "wzrk_d",
    }
)

#: Device token types (reference §2.4, RUD ``ALLOWED_DEVICE_TOKEN_TYPES``).
TOKEN_TYPES: Final = frozenset({"apns", "chrome", "fcm", "gcm", "mpns", "wns"})

#: A ts at or above this is taken for milliseconds (year 5138 in seconds).
MILLISECONDS_FROM: Final = 100_000_000_000

_PROFILE = "Profile data is incorrect. "

#: Message per code, ending with the separator that precedes "Skipped record number : N".
MESSAGES: Final[dict[int, str]] = {
    509: "Event Name is incorrect. ErrorCode: 509 - Event name is mandatory. ",
    512: "Invalid event structure. ",
    513: "Event Name is incorrect. ErrorCode: 513 - Trying to raise a restricted system event. ",
    514: _PROFILE + "Gender is not valid.",  # UNCONFIRMED wording, DOC-ERR "Gender invalid"
    515: _PROFILE + "Email is not valid.",
    516: _PROFILE + "Phone number is not valid.",
    517: _PROFILE + "Employed needs to be Y/N.",
    518: _PROFILE + "Education needs to be School/College/Graduate..",
    519: _PROFILE + "Married needs to be Y/N.",
    520: _PROFILE + "Age is invalid.",
    522: "Event properties limit exceeded. ",
    523: "Missing identity. ",
    524: "Data neither event nor profile. ",
    525: "Timestamp should be present in the Unix Epoch format. ",
    526: "objectId invalid. ",
    528: "Discarded event is raised. ",
    530: "Invalid objectId. ",
    531: "Invalid token data. ",
    532: "Token id is not present. ",
    533: "Token type is not present. ",
    534: "Token type is not valid for objectId. ",
    535: "Invalid token data. ",
    555: "Miscellaneous server error. ",
}

#: Codes a sender may retry; every other per-record code is permanent (DOC-ERR lists 555 as
#: "Miscellaneous server error", the only server-side one).
RETRYABLE_CODES: Final = frozenset({555})


def error_text(code: int, record_number: int) -> str:
    """CleverTap's ``error`` string for a skipped record (``record_number`` is 1-based).

    A code CleverTap does not document (only a fault rule can ask for one) reads as 555's
    "Miscellaneous server error".
    """
    message = MESSAGES.get(code, MESSAGES[555])
    return f"{message}Skipped record number : {record_number}"


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits and lists the validation applies; every default from the reference.

    Parameters:
        max_records: records per request (DOC-UE, DOC-UP: 1000).
        max_event_properties: distinct properties per event *type* (the newest DOC-UE says 100
            by default, configurable per account; older versions said 256): 522 beyond it.
        max_event_names: distinct event names per account (DOC-UE: 512); 512 beyond it
            (the code is UNCONFIRMED).
        max_profile_keys: custom profile keys (DOC-UP: 256); 522 beyond it (code UNCONFIRMED).
        max_key_length: key length: event property keys in characters (DOC-UE: "120
            characters"), profile keys in UTF-8 bytes (DOC-UP: "120 bytes").
        max_value_bytes: scalar value length in UTF-8 bytes (DOC-UE: 512).
        max_multi_values: items kept in a multi-value property, oldest dropped (FIFO).
        restricted_event_names: names answered with 513.
        discarded_event_names: names discarded in the dashboard, answered with 528.
        milliseconds_ts: what a ``ts`` in milliseconds gets.  UNCONFIRMED server behaviour
            (reference open question 1); ``"reject"`` (525, the default, so a sender's unit bug
            shows) or ``"convert"`` (divide by 1000).
    """

    max_records: int = 1000
    max_event_properties: int = 100
    max_event_names: int = 512
    max_profile_keys: int = 256
    max_key_length: int = 120
    max_value_bytes: int = 512
    max_multi_values: int = 100
    restricted_event_names: frozenset[str] = RESTRICTED_EVENT_NAMES
    discarded_event_names: frozenset[str] = frozenset()
    milliseconds_ts: Literal["reject", "convert"] = "reject"


_OPERATORS: Final = frozenset({"$add", "$remove", "$incr", "$decr", "$delete", "$set"})
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_PHONE = re.compile(r"\+[1-9][0-9]{5,14}")  # E.164 (DOC-UP); "223" and "+44+441234" fail


_SCALAR_TYPES: Final = frozenset({str, int, float, bool, type(None)})


def _is_number(value: object) -> bool:
    kind = type(value)
    return kind is int or kind is float


def _gender(value: object) -> int:
    return 0 if value in ("M", "F") else 514


def _email(value: object) -> int:
    # The length bound comes first: it keeps the regex linear on hostile input.
    return 0 if type(value) is str and len(value) <= 254 and _EMAIL.fullmatch(value) else 515


def _phone(value: object) -> int:
    return 0 if type(value) is str and len(value) <= 16 and _PHONE.fullmatch(value) else 516


def _employed(value: object) -> int:
    return 0 if value in ("Y", "N") else 517


def _education(value: object) -> int:
    return 0 if value in ("School", "College", "Graduate") else 518


def _married(value: object) -> int:
    return 0 if value in ("Y", "N") else 519


def _age(value: object) -> int:
    # The string "18" was accepted and "aa" refused (RUBY cassettes, reference §2).
    if _is_number(value):
        return 0 if value >= 0 else 520  # type: ignore[operator]
    if type(value) is str and value.isdigit():
        return 0
    return 520


_STANDARD_FIELDS: Final = {
    "Gender": _gender,
    "Email": _email,
    "Phone": _phone,
    "Employed": _employed,
    "Education": _education,
    "Married": _married,
    "Age": _age,
}


def _scalar_ok(value: object, max_bytes: int) -> bool:
    if type(value) is str:
        # A str of at most max_bytes // 4 characters cannot exceed max_bytes in UTF-8.
        return len(value) <= max_bytes // 4 or len(value.encode()) <= max_bytes
    kind = type(value)
    return kind is int or kind is float or kind is bool or value is None


def check_record(record: object, limits: Limits) -> int:
    """0 when ``record`` is acceptable, otherwise CleverTap's per-record code.

    Account-wide limits (distinct event names, properties per event type) are checked by the
    backend, which holds the account's state.
    """
    if type(record) is not dict:
        return 524
    kind = record.get("type")
    if kind == "event":
        code = _identity_and_ts(record, limits)
        return code or _event_body(record, limits)
    if kind == "profile":
        code = _identity_and_ts(record, limits)
        return code or _profile_body(record.get("profileData"), limits)
    if kind == "token":
        return _token(record)
    return 524


def _identity_and_ts(record: dict[str, Any], limits: Limits) -> int:
    found = False
    for key in IDENTITY_KEYS:
        value = record.get(key)
        if value is None:
            continue
        if key == "objectId":
            if type(value) is not str or not OBJECT_ID.fullmatch(value):
                return 526
            found = True
        elif (type(value) is str and value.strip()) or type(value) is int:
            found = True
    if not found:
        return 523
    if "ts" in record:
        ts = record["ts"]
        if type(ts) is not int or ts <= 0:
            return 525
        if ts >= MILLISECONDS_FROM and (
            limits.milliseconds_ts == "reject" or ts >= MILLISECONDS_FROM * 1000
        ):
            return 525
    return 0


def _event_body(record: dict[str, Any], limits: Limits) -> int:
    name = record.get("evtName")
    if type(name) is not str or not name.strip():
        return 509
    if name in limits.restricted_event_names:
        return 513
    if name in limits.discarded_event_names:
        return 528
    data = record.get("evtData")
    # evtData is required, {} allowed (reference §1.3).  Its absence as 512 is UNCONFIRMED.
    if type(data) is not dict:
        return 512
    if len(data) > limits.max_event_properties:
        return 522
    if not data:
        return 0
    # Fast path, C-level: every value a plain scalar, every key and string short.
    values = data.values()
    if (
        set(map(type, values)) <= _SCALAR_TYPES
        and max(map(len, data)) <= limits.max_key_length
        and max(map(len, filter(str.__instancecheck__, values)), default=0)
        <= limits.max_value_bytes // 4
    ):
        return 0
    max_key = limits.max_key_length
    max_bytes = limits.max_value_bytes
    for key, value in data.items():
        if len(key) > max_key:
            return 512
        if not _scalar_ok(value, max_bytes):
            # Event properties are scalars; Charged's Items (a list of flat objects) is the
            # one exception (reference §1.3, §1.4).  Nested values: UNCONFIRMED, refused.
            if key == "Items" and name == "Charged" and _items_ok(value, limits):
                continue
            return 512
    return 0


def _items_ok(items: object, limits: Limits) -> bool:
    if type(items) is not list:
        return False
    for item in items:
        if type(item) is not dict:
            return False
        for key, value in item.items():
            if len(key) > limits.max_key_length or not _scalar_ok(value, limits.max_value_bytes):
                return False
    return True


def _profile_body(data: object, limits: Limits) -> int:
    # profileData is required (NODE, PYCT); the code for its absence is UNCONFIRMED.
    if type(data) is not dict:
        return 512
    if len(data) > limits.max_profile_keys:
        return 522
    max_key = limits.max_key_length
    max_bytes = limits.max_value_bytes
    for key, value in data.items():
        # Profile keys are measured in bytes (DOC-UP), so 41 three-byte characters are too many.
        if len(key) > max_key // 4 and len(key.encode()) > max_key:
            return 512
        standard = _STANDARD_FIELDS.get(key)
        if standard is not None:
            code = standard(value)
            if code:
                return code
            continue
        if _scalar_ok(value, max_bytes):
            continue
        kind = type(value)
        if kind is list:
            if not _multi_ok(value, limits):
                return 512
        elif kind is dict:
            if not _operator_ok(value, limits):
                return 512
        else:
            return 512
    return 0


def _multi_ok(values: list[Any], limits: Limits) -> bool:
    # Multi-value items are strings of at most 512 characters (platform-considerations).
    return all(type(v) is str and len(v) <= limits.max_value_bytes for v in values)


def _operator_ok(command: dict[str, Any], limits: Limits) -> bool:
    """A profile operator: ``{"$add": [...]}`` and friends (reference §2.1).

    Only ``$add`` is confirmed over REST (GOCT); ``$remove``, ``$incr``, ``$decr``, ``$delete``
    and ``$set`` are the SDK command strings and are accepted too (UNCONFIRMED).
    """
    if len(command) != 1:
        return False
    ((op, arg),) = command.items()
    if op not in _OPERATORS:
        return False
    if op in ("$incr", "$decr"):
        return _is_number(arg)
    if op in ("$add", "$remove"):
        if type(arg) is str:
            return len(arg) <= limits.max_value_bytes
        return type(arg) is list and _multi_ok(arg, limits)
    if op == "$set":
        if type(arg) is list:
            return _multi_ok(arg, limits)
        return _scalar_ok(arg, limits.max_value_bytes)
    return True  # $delete takes any argument


def _token(record: dict[str, Any]) -> int:
    object_id = record.get("objectId")
    if type(object_id) is not str or not OBJECT_ID.fullmatch(object_id):
        return 530
    data = record.get("tokenData")
    if type(data) is not dict:
        return 531
    token_id = data.get("id")
    if token_id is None or token_id == "":
        return 532
    token_type = data.get("type")
    if token_type is None or token_type == "":
        return 533
    if type(token_type) is not str or token_type not in TOKEN_TYPES:
        return 534
    if type(token_id) is not str or type(data.get("keys", {})) is not dict:
        return 535
    return 0
