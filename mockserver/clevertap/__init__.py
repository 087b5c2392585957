"""A local CleverTap: the Upload API with CleverTap's validation and codes, the read APIs,
its concurrency limits, and inspection.

Facts and their sources: reference sections cited in each module.  Layout (moto style)::

    accounts.py     Account, regions, the credential check (401)
    errors.py       CleverTapError: request-level failures and their body
    validation.py   per-record checks with CleverTap's codes (509..535, 555)
    store.py        per-account profiles, identity index, events, profile operators
    backend.py      CleverTapBackend: upload, reads, limits, journal, counters, inspection,
                    each under the backend's lock
    reads.py        read APIs' rules: queries, cursors, record shapes, deletion
    routes.py       thin endpoints under /1
    control.py      inspection and reset under /_mock/clevertap
"""

from __future__ import annotations

from mockserver.clevertap.accounts import DEFAULT_ACCOUNT as DEFAULT_ACCOUNT
from mockserver.clevertap.accounts import REGIONS as REGIONS
from mockserver.clevertap.accounts import Account
from mockserver.clevertap.backend import CleverTapBackend
from mockserver.clevertap.control import control_routes
from mockserver.clevertap.errors import CleverTapError
from mockserver.clevertap.routes import api_routes
from mockserver.clevertap.validation import MESSAGES as MESSAGES
from mockserver.clevertap.validation import RETRYABLE_CODES as RETRYABLE_CODES
from mockserver.clevertap.validation import Limits, error_text

# Constants (DEFAULT_ACCOUNT, MESSAGES, REGIONS, RETRYABLE_CODES) are re-exported by alias and
# kept out of __all__, whose plain sorted() order the export test checks.
__all__ = [
    "Account",
    "CleverTapBackend",
    "CleverTapError",
    "Limits",
    "api_routes",
    "control_routes",
    "error_text",
]
