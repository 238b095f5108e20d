"""Shared by the accounts, security and access-walk tests: staff users and TOTP codes."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.models import User
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from conversations.models import Inbox, Membership

PASSWORD = "correct-horse-battery-9"


def staff(username: str, *, inbox: Inbox | None = None, role: str | None = None, superuser: bool = False) -> User:
    if superuser:
        user = User.objects.create_superuser(username, password=PASSWORD)
    else:
        user = User.objects.create_user(username, password=PASSWORD, is_staff=True, first_name=username.title())
    if inbox is not None and role is not None:
        Membership.objects.create(user=user, inbox=inbox, role=role)
    return user


def totp_code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The code the authenticator app shows now (or ``steps_ahead`` periods later: a device
    refuses a code of a period it already accepted one from)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def enrolled(user: User, backup_codes: tuple[str, ...] = ("backup01", "backup02")) -> TOTPDevice:
    device = TOTPDevice.objects.create(user=user, name="Atende", confirmed=True)
    static = StaticDevice.objects.create(user=user, name="backup", confirmed=True)
    for code in backup_codes:
        StaticToken.objects.create(device=static, token=code)
    return device


def log_in(client: Any, user: User, device: TOTPDevice | None = None, code: str | None = None) -> None:
    """A session logged in through the login form (and verified with ``device`` if given, with
    ``code`` or the code of the moment)."""
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    if device is not None:
        response = client.post("/accounts/2fa/verify/", {"code": code or totp_code(device)})
        assert response.status_code == 302
