"""A RevenueCat REST client (sync and async) and an SDK-style attribute syncer.

```python
import client

client.set_clevertap_id("user-1", "ct-42", api_key="sk_...")

with client.RevenueCat(api_key="sk_...") as rc:
    rc.set_attributes("user-1", {"$email": "ada@example.com", "plan": "pro"})
```
"""

from __future__ import annotations

from client._api import set_clevertap_id
from client._base import DEFAULT_BASE_URL, TimedValue
from client._bulk import (
    BulkProgress,
    BulkRefusal,
    BulkReport,
    IdentityPair,
    Mismatch,
    VerifyReport,
)
from client._bulk_input import (
    DEFAULT_ID_COLUMN,
    DEFAULT_USER_COLUMN,
    IdentityFileError,
    read_identities,
)
from client._client import AsyncRevenueCat, RevenueCat
from client._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AttributeErrorDetail,
    AttributeValidationError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    InvalidAttributeError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    RevenueCatError,
)
from client._keys import CLEVERTAP_ID, DISPLAY_NAME, EMAIL, PHONE_NUMBER, RESERVED_KEYS
from client._models import (
    CustomerAttribute,
    Entitlement,
    NonSubscription,
    Subscriber,
    SubscriberAttribute,
    Subscription,
)
from client._retry import RetryPolicy
from client._stores import (
    AttributeStore,
    MemoryAttributeStore,
    SQLiteAttributeStore,
    StagedAttribute,
)
from client._syncer import AsyncAttributeSyncer, AttributeSyncer, SyncReport, SyncResult

# Plain sorted() order, which tests/test_exported_members.py checks; ruff would put constants first.
__all__ = [  # noqa: RUF022
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncAttributeSyncer",
    "AsyncRevenueCat",
    "AttributeErrorDetail",
    "AttributeStore",
    "AttributeSyncer",
    "AttributeValidationError",
    "AuthenticationError",
    "BadRequestError",
    "BulkProgress",
    "BulkRefusal",
    "BulkReport",
    "CLEVERTAP_ID",
    "CustomerAttribute",
    "DEFAULT_BASE_URL",
    "DEFAULT_ID_COLUMN",
    "DEFAULT_USER_COLUMN",
    "DISPLAY_NAME",
    "EMAIL",
    "Entitlement",
    "IdentityFileError",
    "IdentityPair",
    "InternalServerError",
    "InvalidAttributeError",
    "InvalidResponseError",
    "MemoryAttributeStore",
    "Mismatch",
    "NonSubscription",
    "NotFoundError",
    "PHONE_NUMBER",
    "RESERVED_KEYS",
    "RateLimitError",
    "RetryPolicy",
    "RevenueCat",
    "RevenueCatError",
    "SQLiteAttributeStore",
    "StagedAttribute",
    "Subscriber",
    "SubscriberAttribute",
    "Subscription",
    "SyncReport",
    "SyncResult",
    "TimedValue",
    "VerifyReport",
    "read_identities",
    "set_clevertap_id",
]

__locals = locals()
for __name in __all__:
    if not __name.isupper():
        # Reprs and docs show ``client.RevenueCat``, not the private module (as httpx does).
        __locals[__name].__module__ = "client"
