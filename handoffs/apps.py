from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HandoffsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "handoffs"
    verbose_name = _("Handoffs")

    def ready(self) -> None:
        # Listens to conversations' signals: handoff timestamps (assigned, first answered,
        # closed), the audit row of a reopen by the customer, an echo pausing the bot.
        from handoffs import receivers  # noqa: F401
