from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    """The attendants' and supervisors' web console and its API: the surface built on the domain
    apps (conversations, handoffs, and later bots). It owns no tables of its own."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "console"
    verbose_name = _("Console")

    def ready(self) -> None:
        # Presence goes offline on logout (a user_logged_out receiver).
        from console import presence  # noqa: F401

        # API tokens are revoked when the password changes.
        from console.api import tokens  # noqa: F401
