from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BotsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "bots"
    verbose_name = _("Bots")

    def ready(self) -> None:
        # The reply pipeline listens to new customer messages, finished media downloads and
        # ownership changes; the customer notices (queue position, out of hours, ratings) to
        # handoffs and closes.
        from bots import demo, notices, receivers  # noqa: F401
