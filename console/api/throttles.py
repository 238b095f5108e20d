"""Per-user rate limits of the API (rates in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``,
from ``API_THROTTLE_RATE`` and ``API_SEND_THROTTLE_RATE``).

DRF's throttles copy the rates into a class attribute when they are imported, so a changed
setting (an override in a test, say) would never reach them: these read the current settings
on every request.
"""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class UserThrottle(UserRateThrottle):
    """Every API request, per user (per address for anonymous requests, which are refused)."""

    scope = "user"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class SendThrottle(UserThrottle):
    """Sends (text, media, templates): each one reaches a customer's phone, so a runaway
    script is stopped long before the general limit."""

    scope = "sends"
