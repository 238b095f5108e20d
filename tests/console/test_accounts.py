"""Staff accounts (console/accounts.py): login and lockout, two-factor enrollment,
verification, backup codes and disabling, password change."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from conversations.models import Inbox, Membership
from tests.console.security_helpers import PASSWORD, enrolled, log_in, staff, totp_code

pytestmark = pytest.mark.django_db


def fail_login(client: Client, username: str, times: int, ip: str = "10.0.0.1") -> Any:
    response = None
    for _ in range(times):
        response = client.post("/accounts/login/", {"username": username, "password": "wrong"}, REMOTE_ADDR=ip)
    return response


# --- Login and logout ------------------------------------------------------------------------


def test_it_shows_the_login_page_in_portuguese(client: Client) -> None:
    # when
    response = client.get("/accounts/login/")

    # then
    assert response.status_code == 200
    body = response.content.decode()
    assert '<html lang="pt-br">' in body
    assert "Entrar" in body
    assert 'name="csrfmiddlewaretoken"' in body


def test_it_logs_staff_in_and_sends_them_to_the_console(client: Client, inbox: Inbox) -> None:
    # given
    staff("ana", inbox=inbox, role=Membership.Role.ATTENDANT)

    # when
    response = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})

    # then
    assert response.status_code == 302
    assert response.url == "/console/"
    assert client.session["_auth_user_id"]


def test_it_keeps_a_safe_next_and_drops_a_foreign_one(client: Client, inbox: Inbox) -> None:
    # given
    staff("ana", inbox=inbox, role=Membership.Role.ATTENDANT)

    # when
    kept = client.post("/accounts/login/?next=/console/c/1/", {"username": "ana", "password": PASSWORD})
    client.logout()
    dropped = client.post("/accounts/login/?next=https://evil.example/", {"username": "ana", "password": PASSWORD})

    # then
    assert kept.url == "/console/c/1/"
    assert dropped.url == "/console/"


def test_it_logs_out_only_with_post(client: Client, inbox: Inbox) -> None:
    # given
    user = staff("ana", inbox=inbox, role=Membership.Role.ATTENDANT)
    client.force_login(user)

    # when
    refused = client.get("/accounts/logout/")
    still_in = "_auth_user_id" in client.session
    done = client.post("/accounts/logout/")

    # then
    assert refused.status_code == 405
    assert still_in
    assert done.status_code == 302
    assert done.url == "/accounts/login/"
    assert "_auth_user_id" not in client.session


def test_it_refuses_a_login_post_without_the_csrf_token(inbox: Inbox) -> None:
    # given
    staff("ana", inbox=inbox, role=Membership.Role.ATTENDANT)
    client = Client(enforce_csrf_checks=True)

    # when
    response = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})

    # then
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


# --- Lockout (django-axes) -------------------------------------------------------------------


def test_it_locks_a_username_after_the_failure_limit_with_a_lockout_page(
    client: Client, settings: Any, english: None
) -> None:
    # given
    settings.AXES_FAILURE_LIMIT = 3
    staff("ana")

    # when
    fail_login(client, "ana", 3)
    response = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD}, REMOTE_ADDR="10.0.0.2")

    # then: locked from any address, even with the right password
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed logins" in body
    assert "Try again in 60 minutes" in body
    assert "_auth_user_id" not in client.session


def test_it_does_not_lock_colleagues_behind_the_same_address(client: Client, settings: Any) -> None:
    # given: one person mistyping at the office; everyone shares the NAT address
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_IP_FAILURE_LIMIT = 20
    staff("ana")
    staff("bruno")
    fail_login(client, "ana", 5)

    # when
    response = client.post("/accounts/login/", {"username": "bruno", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")

    # then
    assert response.status_code == 302
    assert client.session["_auth_user_id"]


def test_it_locks_an_address_trying_many_usernames(client: Client, settings: Any) -> None:
    # given: one address spraying a password over many usernames, each below its own limit
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_IP_FAILURE_LIMIT = 6
    staff("bruno")
    for name in ("a1", "a2", "a3"):
        fail_login(client, name, 2, ip="10.9.9.9")

    # when
    locked = client.post("/accounts/login/", {"username": "bruno", "password": PASSWORD}, REMOTE_ADDR="10.9.9.9")
    elsewhere = Client().post("/accounts/login/", {"username": "bruno", "password": PASSWORD}, REMOTE_ADDR="10.0.0.7")

    # then
    assert locked.status_code == 429
    assert elsewhere.status_code == 302


def test_it_locks_the_admin_login_too(client: Client, settings: Any) -> None:
    # given
    settings.AXES_FAILURE_LIMIT = 2
    staff("root", superuser=True)
    for _ in range(2):
        client.post("/admin/login/", {"username": "root", "password": "wrong"})

    # when
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})

    # then
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_it_lets_an_admin_unlock_a_user_in_the_admin(client: Client, settings: Any) -> None:
    # given
    settings.AXES_FAILURE_LIMIT = 2
    settings.OTP_REQUIRED_FOR_STAFF_ROLES = False
    staff("ana")
    fail_login(Client(), "ana", 2)
    attempt = AccessAttempt.objects.get(username="ana")
    admin = staff("root", superuser=True)
    client.force_login(admin)

    # when
    listed = client.get("/admin/axes/accessattempt/")
    deleted = client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    after = Client().post("/accounts/login/", {"username": "ana", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")

    # then
    assert listed.status_code == 200
    assert "ana" in listed.content.decode()
    assert deleted.status_code == 302
    assert after.status_code == 302


# --- Two-factor: enrollment ------------------------------------------------------------------


def test_it_enrolls_a_device_with_a_server_rendered_qr_code_and_shows_backup_codes_once(
    client: Client, inbox: Inbox
) -> None:
    # given
    user = staff("ana", inbox=inbox, role=Membership.Role.ATTENDANT)
    client.force_login(user)

    # when
    page = client.get("/accounts/2fa/")
    device = TOTPDevice.objects.get(user=user)
    confirmed = client.post("/accounts/2fa/", {"code": totp_code(device)})
    again = client.get("/accounts/2fa/")

    # then
    body = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in body and "<script" not in body.split("</head>")[1]
    assert "".join(body.split('data-testid="totp-secret">')[1].split("<")[0].split()) != ""
    assert device.confirmed is False
    assert confirmed.status_code == 200
    codes = [t.token for t in StaticToken.objects.filter(device__user=user)]
    assert len(codes) == 10
    assert all(code in confirmed.content.decode() for code in codes)
    device.refresh_from_db()
    assert device.confirmed is True
    assert client.session["otp_device_id"] == device.persistent_id
    assert not any(code in again.content.decode() for code in codes)


def test_it_keeps_the_same_secret_until_confirmed(client: Client) -> None:
    # given
    user = staff("ana")
    client.force_login(user)

    # when
    client.get("/accounts/2fa/")
    client.get("/accounts/2fa/")

    # then
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_it_refuses_a_wrong_enrollment_code(client: Client) -> None:
    # given
    user = staff("ana")
    client.force_login(user)
    client.get("/accounts/2fa/")

    # when
    response = client.post("/accounts/2fa/", {"code": "000000"})

    # then
    assert response.status_code == 200
    assert TOTPDevice.objects.get(user=user).confirmed is False
    assert not StaticDevice.objects.filter(user=user).exists()


# --- Two-factor: verification after login ---------------------------------------------------


def test_it_asks_a_user_with_a_device_for_a_code_after_the_password(client: Client, inbox: Inbox) -> None:
    # given
    user = staff("ana", inbox=inbox, role=Membership.Role.ATTENDANT)
    device = enrolled(user)

    # when
    login = client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
    console = client.get("/console/")
    verify = client.post("/accounts/2fa/verify/?next=/console/", {"code": totp_code(device)})

    # then
    assert login.url == "/console/"
    assert console.status_code == 302
    assert console.url == "/accounts/2fa/verify/?next=%2Fconsole%2F"
    assert verify.status_code == 302
    assert verify.url == "/console/"
    assert client.session["otp_device_id"] == device.persistent_id


def test_it_refuses_a_wrong_code_and_stays_unverified(client: Client) -> None:
    # given
    user = staff("ana")
    enrolled(user)
    client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})

    # when
    response = client.post("/accounts/2fa/verify/", {"code": "123456"})

    # then
    assert response.status_code == 200
    assert "otp_device_id" not in client.session


def test_it_accepts_a_backup_code_once(client: Client) -> None:
    # given
    user = staff("ana")
    enrolled(user, backup_codes=("abcd2345",))
    client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})

    # when
    used = client.post("/accounts/2fa/verify/", {"code": "ABCD 2345"})
    other = Client()
    other.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
    reused = other.post("/accounts/2fa/verify/", {"code": "abcd2345"})

    # then
    assert used.status_code == 302
    assert "otp_device_id" in client.session
    assert reused.status_code == 200
    assert "otp_device_id" not in other.session
    assert not StaticToken.objects.filter(device__user=user).exists()


# --- Two-factor: disabling and re-enrolling ---------------------------------------------------


def test_it_disables_two_factor_with_password_and_code(client: Client) -> None:
    # given
    user = staff("ana")
    device = enrolled(user)
    log_in(client, user, device)

    # when
    response = client.post("/accounts/2fa/disable/", {"password": PASSWORD, "code": totp_code(device, steps_ahead=1)})

    # then
    assert response.status_code == 302
    assert response.url == "/accounts/2fa/"
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not StaticDevice.objects.filter(user=user).exists()
    assert "otp_device_id" not in client.session


def test_it_does_not_disable_two_factor_with_a_wrong_password(client: Client) -> None:
    # given
    user = staff("ana")
    device = enrolled(user)
    log_in(client, user, device)

    # when
    response = client.post("/accounts/2fa/disable/", {"password": "wrong", "code": totp_code(device, steps_ahead=1)})

    # then
    assert response.status_code == 400
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1
    assert StaticToken.objects.filter(device__user=user).count() == 2


def test_it_does_not_disable_two_factor_without_a_valid_code(client: Client) -> None:
    # given
    user = staff("ana")
    device = enrolled(user)
    log_in(client, user, device)

    # when
    response = client.post("/accounts/2fa/disable/", {"password": PASSWORD, "code": "000000"})

    # then
    assert response.status_code == 400
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1


def test_it_re_enrolls_with_a_new_secret_after_disabling(client: Client, settings: Any) -> None:
    # given: a supervisor in production, who must have a device
    settings.OTP_REQUIRED_FOR_STAFF_ROLES = True
    inbox = Inbox.objects.create(name="Loja", phone_number_id="PN1")
    user = staff("renata", inbox=inbox, role=Membership.Role.SUPERVISOR)
    device = enrolled(user)
    log_in(client, user, device)
    client.post("/accounts/2fa/disable/", {"password": PASSWORD, "code": "backup01"})

    # when
    elsewhere = client.get("/console/")
    client.get("/accounts/2fa/")
    new_device = TOTPDevice.objects.get(user=user)
    confirmed = client.post("/accounts/2fa/", {"code": totp_code(new_device)})

    # then
    assert elsewhere.status_code == 302
    assert elsewhere.url.startswith("/accounts/2fa/?next=")
    assert new_device.key != device.key
    assert confirmed.status_code == 200
    new_device.refresh_from_db()
    assert new_device.confirmed


# --- Password change --------------------------------------------------------------------------


def test_it_changes_the_password_and_logs_out_every_other_session(inbox: Inbox) -> None:
    # given: the same attendant logged in on two computers
    user = staff("ana", inbox=inbox, role=Membership.Role.ATTENDANT)
    here, there = Client(), Client()
    log_in(here, user)
    log_in(there, user)
    assert there.get("/accounts/password/").status_code == 200

    # when
    response = here.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": "a-brand-new-secret-42", "new_password2": "a-brand-new-secret-42"},
    )

    # then
    assert response.status_code == 302
    assert here.get("/accounts/password/").status_code == 200
    kicked = there.get("/accounts/password/")
    assert kicked.status_code == 302
    assert kicked.url.startswith("/accounts/login/")
    user.refresh_from_db()
    assert user.check_password("a-brand-new-secret-42")


def test_it_refuses_a_password_change_with_the_wrong_old_password(client: Client) -> None:
    # given
    user = staff("ana")
    client.force_login(user)

    # when
    response = client.post(
        "/accounts/password/",
        {"old_password": "nope", "new_password1": "a-brand-new-secret-42", "new_password2": "a-brand-new-secret-42"},
    )

    # then
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_it_sends_anonymous_users_to_the_login_page(client: Client) -> None:
    # when
    responses = [client.get(url) for url in ("/accounts/password/", "/accounts/2fa/", "/accounts/2fa/verify/")]

    # then
    assert [r.status_code for r in responses] == [302, 302, 302]
    assert all(r.url.startswith("/accounts/login/?next=") for r in responses)


def test_it_tells_in_seed_demo_that_two_factor_is_relaxed(settings: Any) -> None:
    # given
    from io import StringIO

    from django.core.management import call_command

    settings.PRODUCTION = False
    settings.OTP_REQUIRED_FOR_STAFF_ROLES = False
    out = StringIO()

    # when
    call_command("seed_demo", stdout=out)

    # then
    assert "Two-factor authentication is relaxed in this demo" in out.getvalue()
    assert User.objects.filter(username="admin").exists()


def test_it_shows_the_lockout_page_in_portuguese(client: Client, settings: Any) -> None:
    # given
    settings.AXES_FAILURE_LIMIT = 1
    staff("ana")

    # when
    response = fail_login(client, "ana", 2)

    # then
    assert response.status_code == 429
    assert '<html lang="pt-br">' in response.content.decode()
    assert "Muitas tentativas de login sem sucesso" in response.content.decode()
    assert response["Content-Language"] == "pt-br"


def test_it_replaces_the_backup_codes_with_password_and_code(client: Client) -> None:
    # given
    user = staff("ana")
    device = enrolled(user, backup_codes=("oldcode1", "oldcode2"))
    log_in(client, user, device)

    # when
    response = client.post("/accounts/2fa/backup-codes/", {"password": PASSWORD, "code": "oldcode1"})

    # then
    codes = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert response.status_code == 200
    assert len(codes) == 10
    assert "oldcode2" not in codes
    assert all(code in response.content.decode() for code in codes)
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1


def test_it_keeps_the_backup_codes_without_the_password(client: Client) -> None:
    # given
    user = staff("ana")
    device = enrolled(user, backup_codes=("oldcode1", "oldcode2"))
    log_in(client, user, device)

    # when
    response = client.post("/accounts/2fa/backup-codes/", {"password": "wrong", "code": "oldcode1"})

    # then
    assert response.status_code == 400
    assert sorted(StaticToken.objects.filter(device__user=user).values_list("token", flat=True)) == [
        "oldcode1",
        "oldcode2",
    ]
