"""Staff accounts, under /accounts/: log in and out, change the password, and two-factor
authentication (TOTP with django-otp: enrollment with a QR code, backup codes, the
verification after login, disabling).

Who must use a second factor, the idle timeout and the headers are in config/security.py;
lockouts after failed logins are django-axes' (settings ``AXES_*``).
"""

from __future__ import annotations

from base64 import b32encode
from typing import Any

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from config import security

BACKUP_DEVICE_NAME = "backup"


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Code"),
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )

    def clean_code(self) -> str:
        # Authenticator apps show "123 456"; backup codes are lowercase.
        return "".join(self.cleaned_data["code"].split()).lower()


class DisableForm(CodeForm):
    password = forms.CharField(
        label=gettext_lazy("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    field_order = ["password", "code"]


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _check_code(user: Any, code: str) -> tuple[Any, bool]:
    """The device that accepts ``code`` (a TOTP code, or a backup code, used up here), or None;
    and whether a device refused to check it (django-otp throttles each device after a wrong
    code, doubling the wait each time: guessing a 6-digit code is out of reach). Each kind is
    tried only on its own devices, so a mistyped TOTP code does not count against the backup
    codes' throttle (and the other way round)."""
    backup = not code.isdigit()
    throttled = False
    with transaction.atomic():
        # for_verify locks the devices: a backup code used in two requests at once works once.
        for device in devices_for_user(user, for_verify=True):
            if isinstance(device, StaticDevice) != backup:
                continue
            if not device.verify_is_allowed()[0]:
                throttled = True
                continue
            if device.verify_token(code):
                return device, False
    return None, throttled


def _code_error(throttled: bool) -> str:
    if throttled:
        return gettext("Too many wrong codes. Wait a few seconds and try again.")
    return gettext("This code is not valid.")


def _new_backup_codes(user: Any) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(settings.OTP_BACKUP_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def _qr_svg(url: str) -> str:
    # Rendered here as inline SVG: no script, no external QR service ever sees the secret.
    return segno.make(url, error="m").svg_inline(scale=5, dark="#1f2933", title=gettext("QR code"))


def _group_secret(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# --- Views ------------------------------------------------------------------------------------

login_view = auth_views.LoginView.as_view(template_name="registration/login.html", redirect_authenticated_user=True)
logout_view = auth_views.LogoutView.as_view()


@sensitive_post_parameters()
@never_cache
@login_required
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        # Keeps this session; every other one no longer matches the new password hash and is
        # logged out on its next request.
        update_session_auth_hash(request, form.user)
        messages.success(request, gettext("Your password was changed. Your other sessions were logged out."))
        return redirect("password_change")
    return render(request, "accounts/password_change.html", {"form": form})


@sensitive_post_parameters()
@never_cache
@login_required
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    user = request.user
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        if not request.user.is_verified():
            # Enrolled from another session: this one verifies first.
            security.remember_device(request.session, user)
            return redirect("two_factor_verify")
        return render(request, "accounts/two_factor.html", _enabled_context(user, DisableForm()))

    # One unconfirmed device per user: reloading the page keeps the same secret (the one
    # already scanned); confirming it replaces every older device.
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Atende", confirmed=False)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["code"]):
            with transaction.atomic():
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
                codes = _new_backup_codes(user)
            otp_login(request, device)
            request.session[security.ENROLLED_KEY] = True
            # Shown this once; no page shows them again (new ones replace them all).
            return render(request, "accounts/backup_codes.html", {"codes": codes, "next": _next_url(request)})
        form.add_error("code", gettext("This code is not valid. Check the time on your phone and try again."))

    secret = b32encode(device.bin_key).decode()
    context = {
        "enabled": False,
        "form": form,
        "qr_svg": _qr_svg(device.config_url),
        "secret": _group_secret(secret),
        "required": security.second_factor_required(user),
        "next": request.GET.get("next", ""),
    }
    return render(request, "accounts/two_factor.html", context)


@never_cache
@login_required
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    next_url = _next_url(request)
    if request.user.is_verified() or not security.remember_device(request.session, request.user):
        return redirect(next_url)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device, throttled = _check_code(request.user, form.cleaned_data["code"])
        if device is not None:
            otp_login(request, device)
            if isinstance(device, StaticDevice):
                left = device.token_set.count()
                messages.warning(
                    request,
                    ngettext(
                        "You used a backup code; %(count)d left. You can get new ones under Two-factor authentication.",
                        "You used a backup code; %(count)d left. You can get new ones under Two-factor authentication.",
                        left,
                    )
                    % {"count": left},
                )
            return redirect(next_url)
        form.add_error("code", _code_error(throttled))
    return render(request, "accounts/two_factor_verify.html", {"form": form, "next": next_url})


@sensitive_post_parameters()
@never_cache
@login_required
def two_factor_disable(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect("two_factor_setup")
    form = DisableForm(request.POST)
    if form.is_valid():
        if not request.user.check_password(form.cleaned_data["password"]):
            form.add_error("password", gettext("Your password is not correct."))
        elif (checked := _check_code(request.user, form.cleaned_data["code"]))[0] is None:
            form.add_error("code", _code_error(checked[1]))
        else:
            with transaction.atomic():
                TOTPDevice.objects.filter(user=request.user).delete()
                StaticDevice.objects.filter(user=request.user).delete()
            request.session.pop(DEVICE_ID_SESSION_KEY, None)
            request.session[security.ENROLLED_KEY] = False
            messages.success(request, gettext("Two-factor authentication was turned off."))
            return redirect("two_factor_setup")
    return render(request, "accounts/two_factor.html", _enabled_context(request.user, form), status=400)


@sensitive_post_parameters()
@never_cache
@login_required
def backup_codes(request: HttpRequest) -> HttpResponse:
    """New backup codes (the old ones stop working), confirmed like turning 2FA off."""
    if request.method != "POST" or not TOTPDevice.objects.filter(user=request.user, confirmed=True).exists():
        return redirect("two_factor_setup")
    form = DisableForm(request.POST)
    if form.is_valid():
        if not request.user.check_password(form.cleaned_data["password"]):
            form.add_error("password", gettext("Your password is not correct."))
        elif (checked := _check_code(request.user, form.cleaned_data["code"]))[0] is None:
            form.add_error("code", _code_error(checked[1]))
        else:
            with transaction.atomic():
                codes = _new_backup_codes(request.user)
            return render(request, "accounts/backup_codes.html", {"codes": codes, "next": reverse("two_factor_setup")})
    return render(request, "accounts/two_factor.html", _enabled_context(request.user, form), status=400)


def _enabled_context(user: Any, form: forms.Form) -> dict[str, Any]:
    backup = StaticDevice.objects.filter(user=user).first()
    return {
        "enabled": True,
        "form": form,
        "backup_left": backup.token_set.count() if backup else 0,
        "required": security.second_factor_required(user),
    }


urlpatterns = [
    path("login/", login_view, name="login"),
    path("logout/", logout_view, name="logout"),
    path("password/", password_change, name="password_change"),
    path("2fa/", two_factor_setup, name="two_factor_setup"),
    path("2fa/verify/", two_factor_verify, name="two_factor_verify"),
    path("2fa/disable/", two_factor_disable, name="two_factor_disable"),
    path("2fa/backup-codes/", backup_codes, name="two_factor_backup_codes"),
]
