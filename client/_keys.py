"""RevenueCat's reserved attribute keys.

The list is the union of RevenueCat's customer-attributes docs page, the API v2
``CustomerAttributeReservedName`` enum and the SDK constants (reference §1.5).  RevenueCat
rejects any other ``$``-prefixed key, so the client does too, before sending.
"""

from __future__ import annotations

__all__ = [
    "CLEVERTAP_ID",
    "DISPLAY_NAME",
    "EMAIL",
    "PHONE_NUMBER",
    "RESERVED_KEYS",
]

# The SDKs (iOS and Android) and the v2 enum spell it with a lowercase "t".  RevenueCat's
# CleverTap docs page writes "$cleverTapId"; whether the backend treats both alike is
# UNCONFIRMED (reference §0 item 1, §3.1), so we send what the SDKs send.
CLEVERTAP_ID = "$clevertapId"
EMAIL = "$email"
DISPLAY_NAME = "$displayName"
PHONE_NUMBER = "$phoneNumber"

RESERVED_KEYS: frozenset[str] = frozenset(
    {
        # Docs: customer-attributes page.
        "$displayName",
        "$email",
        "$phoneNumber",
        "$apnsTokens",
        "$fcmTokens",
        "$attConsentStatus",
        "$clevertapId",
        "$idfa",
        "$idfv",
        "$gpsAdId",
        "$androidId",
        "$amazonAdId",
        "$adjustId",
        "$amplitudeDeviceId",
        "$amplitudeUserId",
        "$appsflyerId",
        "$brazeAliasName",
        "$brazeAliasLabel",
        "$fbAnonId",
        "$mparticleId",
        "$onesignalId",
        "$airshipChannelId",
        "$iterableUserId",
        "$iterableCampaignId",
        "$iterableTemplateId",
        "$firebaseAppInstanceId",
        "$mixpanelDistinctId",
        "$kochavaDeviceId",
        "$tenjinId",
        "$ip",
        "$posthogUserId",
        "$deviceVersion",
        "$appleRefundHandlingPreference",
        "$customerioId",
        "$mediaSource",
        "$campaign",
        "$adGroup",
        "$ad",
        "$keyword",
        "$creative",
        # API v2 enum additions.
        "$airbridgeDeviceId",
        "$appleAdsAdGroupId",
        "$appleAdsCampaignId",
        "$appleAdsKeywordId",
        "$appsflyerSharingFilter",
        "$branchId",
        "$onesignalUserId",
        "$telemetryDeckUserId",
        "$telemetryDeckAppId",
        "telemetry_deck_user_id",  # reserved in the v2 enum although it has no "$"
        "telemetry_deck_app_id",
        "$segmentId",
        "$solarEngineDistinctId",
        "$solarEngineAccountId",
        "$solarEngineVisitorId",
        # SDK-only constant.
        "$appstackId",
    }
)
