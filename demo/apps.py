from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    """A stand-in for Meta's Graph API and a customer's phone (/demo/phone/), for the embedded
    mode and the tests. Installed everywhere (its templates and tests need it), but every view
    404s unless ``settings.DEMO_ENABLED``, which production mode never sets."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
    verbose_name = _("Demo")
