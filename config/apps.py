"""Third-party apps under Portuguese names in the admin.

django-axes, django-otp's TOTP plugin and django-celery-beat ship no pt-BR catalogue (or,
for TOTP devices, an untranslatable model name), so their admin sections read "AXES",
"OTP_TOTP" and "PERIODIC TASKS" in an otherwise Portuguese admin. INSTALLED_APPS names these
subclasses instead of the apps' own configs; labels, models and migrations stay the apps'.
Their model names are translated through our catalogue (msgids in config/admin_messages.py).
"""

from __future__ import annotations

from axes.apps import AppConfig as BaseAxesConfig
from django.utils.translation import gettext_lazy as _
from django_celery_beat.apps import BeatConfig as BaseBeatConfig
from django_otp.plugins.otp_totp.apps import DefaultConfig as BaseTOTPConfig


class AxesConfig(BaseAxesConfig):
    verbose_name = _("Login attempts")


class TOTPConfig(BaseTOTPConfig):
    verbose_name = _("Two-factor authentication")

    def ready(self) -> None:
        super().ready()
        from django_otp.plugins.otp_totp.models import TOTPDevice

        # The model declares a plain-string name. Only the rendered names change here: the
        # migration state is built from Meta's original attributes, so no migration follows.
        TOTPDevice._meta.verbose_name = _("TOTP device")
        TOTPDevice._meta.verbose_name_plural = _("TOTP devices")


class BeatConfig(BaseBeatConfig):
    verbose_name = _("Periodic tasks")
