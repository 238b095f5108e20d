"""Third-party apps under Portuguese names in the admin.

django-axes, django-otp's TOTP and static-token plugins and django-celery-beat ship no pt-BR
catalogue (or, for OTP devices, an untranslatable model name), so their admin sections read
"AXES", "OTP_TOTP", "OTP_STATIC" and "PERIODIC TASKS" in an otherwise Portuguese admin. INSTALLED_APPS names these
subclasses instead of the apps' own configs; labels, models and migrations stay the apps'.
Their model names are translated through our catalogue (msgids in config/admin_messages.py).
"""

from __future__ import annotations

from typing import Any

from axes.apps import AppConfig as BaseAxesConfig
from django.utils.translation import gettext_lazy as _
from django_celery_beat.apps import BeatConfig as BaseBeatConfig
from django_otp.plugins.otp_static.apps import DefaultConfig as BaseStaticConfig
from django_otp.plugins.otp_totp.apps import DefaultConfig as BaseTOTPConfig


class AxesConfig(BaseAxesConfig):
    verbose_name = _("Login attempts")


def rename_model(model: type, singular: Any, plural: Any) -> None:
    # The model declares a plain-string name (or none). Only the rendered names change here:
    # the migration state is built from Meta's original attributes, so no migration follows.
    model._meta.verbose_name = singular
    model._meta.verbose_name_plural = plural


class TOTPConfig(BaseTOTPConfig):
    verbose_name = _("Two-factor authentication")

    def ready(self) -> None:
        super().ready()
        from django_otp.plugins.otp_totp.models import TOTPDevice

        # Connects the login receiver of the idle timeout and the second factor.
        from config import security  # noqa: F401

        rename_model(TOTPDevice, _("TOTP device"), _("TOTP devices"))


class StaticTokensConfig(BaseStaticConfig):
    verbose_name = _("Two-factor backup codes")

    def ready(self) -> None:
        super().ready()
        from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

        rename_model(StaticDevice, _("backup code list"), _("backup code lists"))
        rename_model(StaticToken, _("backup code"), _("backup codes"))


class BeatConfig(BaseBeatConfig):
    verbose_name = _("Periodic tasks")
