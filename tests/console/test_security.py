"""Session security (config/security.py): the idle timeout, the second factor where it is
required (console, admin, API, htmx), CSRF on htmx requests and the security headers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from config import security
from conversations.models import Inbox, Membership
from tests.console.security_helpers import PASSWORD, enrolled, log_in, staff, totp_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def required(settings: Any) -> None:
    """Production's default: admins and supervisors need a second factor."""
    settings.OTP_REQUIRED_FOR_STAFF_ROLES = True
    settings.OTP_REQUIRED_FOR_EVERYONE = False


def age_session(client: Client, seconds: int) -> None:
    session = client.session
    session[security.LAST_SEEN_KEY] = int(time.time()) - seconds
    session.save()


# --- Idle timeout -----------------------------------------------------------------------------


def test_it_logs_out_a_session_idle_longer_than_the_timeout(client: Client, settings: Any) -> None:
    # given
    settings.SESSION_IDLE_MINUTES = 30
    user = staff("ana")
    log_in(client, user)
    age_session(client, 31 * 60)

    # when
    response = client.get("/accounts/password/")

    # then
    assert response.status_code == 302
    assert response.url == "/accounts/login/?next=/accounts/password/"
    assert "_auth_user_id" not in client.session


def test_it_keeps_a_session_used_within_the_timeout_and_moves_its_clock(client: Client, settings: Any) -> None:
    # given
    settings.SESSION_IDLE_MINUTES = 30
    user = staff("ana")
    log_in(client, user)
    age_session(client, 29 * 60)

    # when
    response = client.get("/accounts/password/")

    # then
    assert response.status_code == 200
    assert time.time() - client.session[security.LAST_SEEN_KEY] < 5


def test_it_does_not_write_the_session_on_every_request(client: Client) -> None:
    # given
    user = staff("ana")
    log_in(client, user)
    age_session(client, 10)
    before = client.session[security.LAST_SEEN_KEY]

    # when
    client.get("/accounts/password/")

    # then
    assert client.session[security.LAST_SEEN_KEY] == before


# --- The second factor ------------------------------------------------------------------------


def test_it_sends_a_supervisor_without_a_device_to_enrollment_in_production(
    client: Client, inbox: Inbox, required: None
) -> None:
    # given
    user = staff("renata", inbox=inbox, role=Membership.Role.SUPERVISOR)
    log_in(client, user)

    # when
    console = client.get("/console/")
    admin_page = client.get("/admin/")
    enrollment = client.get("/accounts/2fa/")

    # then
    assert console.status_code == 302
    assert console.url == "/accounts/2fa/?next=%2Fconsole%2F"
    assert admin_page.status_code == 302
    assert admin_page.url == "/accounts/2fa/?next=%2Fadmin%2F"
    assert enrollment.status_code == 200


def test_it_lets_an_attendant_in_without_a_device_unless_required_for_everyone(
    client: Client, inbox: Inbox, settings: Any, required: None
) -> None:
    # given
    user = staff("ana", inbox=inbox, role=Membership.Role.ATTENDANT)
    log_in(client, user)

    # when
    free = client.get("/accounts/password/")
    settings.OTP_REQUIRED_FOR_EVERYONE = True
    held = client.get("/accounts/password/")

    # then
    assert free.status_code == 200
    assert held.status_code == 302
    assert held.url.startswith("/accounts/2fa/?next=")


def test_it_relaxes_the_second_factor_when_the_setting_is_off(client: Client, settings: Any) -> None:
    # given: the embedded demo
    settings.OTP_REQUIRED_FOR_STAFF_ROLES = False
    admin_user = staff("root", superuser=True)
    log_in(client, admin_user)

    # when
    response = client.get("/admin/")

    # then
    assert response.status_code == 200


def test_it_lets_a_verified_admin_into_the_admin(client: Client, required: None) -> None:
    # given
    admin_user = staff("root", superuser=True)
    device = enrolled(admin_user)
    log_in(client, admin_user, device)

    # when
    response = client.get("/admin/")

    # then
    assert response.status_code == 200


def test_it_keeps_an_unverified_admin_out_of_the_admin_through_its_login(client: Client, required: None) -> None:
    # given: the admin's own login page, password only
    admin_user = staff("root", superuser=True)
    enrolled(admin_user)
    client.post("/admin/login/", {"username": "root", "password": PASSWORD})

    # when
    response = client.get("/admin/conversations/message/")

    # then
    assert response.status_code == 302
    assert response.url == "/accounts/2fa/verify/?next=%2Fadmin%2Fconversations%2Fmessage%2F"


def test_it_composes_the_admin_permission_with_the_role_check(rf: Any, inbox: Inbox, required: None) -> None:
    # given
    attendant = staff("ana", inbox=inbox, role=Membership.Role.ATTENDANT)
    admin_user = staff("root", superuser=True)
    TOTPDevice.objects.create(user=admin_user, confirmed=True)

    def request_for(user: Any, verified: bool) -> Any:
        request = rf.get("/admin/")
        request.session = {}
        request.user = user
        user.is_verified = lambda: verified
        return request

    # then: the role check still refuses an is_staff attendant, and a superuser needs the device
    assert admin.site.has_permission(request_for(attendant, True)) is False
    assert admin.site.has_permission(request_for(admin_user, False)) is False
    assert admin.site.has_permission(request_for(admin_user, True)) is True
    assert admin.site.has_permission.wrapped.__name__ == "may_enter_admin"


def test_it_answers_403_in_json_to_the_api_while_the_second_factor_is_pending(client: Client) -> None:
    # given
    user = staff("ana")
    enrolled(user)
    log_in(client, user)

    # when
    response = client.get("/api/conversations/")

    # then
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"


def test_it_tells_htmx_to_redirect_while_the_second_factor_is_pending(client: Client) -> None:
    # given
    user = staff("ana")
    enrolled(user)
    log_in(client, user)

    # when
    response = client.get("/console/", HTTP_HX_REQUEST="true")

    # then
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/accounts/2fa/verify/?next=%2Fconsole%2F"


def test_it_reports_whether_a_websocket_session_is_usable(client: Client, required: None, settings: Any) -> None:
    # given
    user = staff("root", superuser=True)
    device = enrolled(user)
    log_in(client, user)
    pending = dict(client.session.items())

    # when
    log_in(Client(), user)  # unrelated session
    verified_client = Client()
    log_in(verified_client, user, device)
    verified = dict(verified_client.session.items())
    age_session(verified_client, settings.SESSION_IDLE_MINUTES * 60 + 1)
    idle = dict(verified_client.session.items())

    # then
    assert security.session_is_usable(user, pending) is False
    assert security.session_is_usable(user, verified) is True
    assert security.session_is_usable(user, idle) is False
    assert security.session_is_usable(AnonymousUser(), verified) is False


def test_it_does_not_accept_the_same_totp_code_twice(client: Client) -> None:
    # given: a code seen over the shoulder, already used
    # (the same code: one computed again could fall in the next 30 s period, a new code)
    user = staff("ana")
    device = enrolled(user)
    code = totp_code(device)
    log_in(client, user, device, code)
    replay = Client()
    replay.post("/accounts/login/", {"username": "ana", "password": PASSWORD})

    # when
    response = replay.post("/accounts/2fa/verify/", {"code": code})

    # then
    assert response.status_code == 200
    assert "otp_device_id" not in replay.session


# --- CSRF -------------------------------------------------------------------------------------


def test_it_refuses_an_htmx_post_without_the_csrf_header(inbox: Inbox) -> None:
    # given
    user = staff("ana", inbox=inbox, role=Membership.Role.ATTENDANT)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/accounts/password/")
    token = page.content.decode().split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]

    # when
    refused = client.post("/accounts/logout/", HTTP_HX_REQUEST="true")
    still_in = "_auth_user_id" in client.session
    accepted = client.post("/accounts/logout/", HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)

    # then
    assert refused.status_code == 403
    assert still_in
    assert accepted.status_code == 302
    assert "_auth_user_id" not in client.session


def test_it_puts_the_csrf_token_in_the_htmx_headers_of_every_page(client: Client) -> None:
    # when
    body = client.get("/accounts/login/").content.decode()

    # then
    assert 'hx-headers=\'{"X-CSRFToken": "' in body


# --- Headers ----------------------------------------------------------------------------------


def test_it_sends_a_content_security_policy_without_inline_scripts(client: Client) -> None:
    # when
    response = client.get("/accounts/login/")

    # then
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"] == "'self' ws://testserver"
    assert "unsafe-inline" not in policy["script-src"] and "unsafe-eval" not in policy["script-src"]


def test_it_uses_wss_in_the_policy_over_https(client: Client) -> None:
    # when
    response = client.get("/accounts/login/", secure=True)

    # then
    assert "connect-src 'self' wss://testserver" in response["Content-Security-Policy"]


def test_it_sends_the_secure_headers(client: Client) -> None:
    # when
    response = client.get("/accounts/login/")

    # then
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    assert "microphone=()" in response["Permissions-Policy"]


@pytest.mark.parametrize(
    "template",
    [
        "registration/login.html",
        "registration/lockout.html",
        "accounts/two_factor.html",
        "accounts/two_factor_verify.html",
        "accounts/backup_codes.html",
        "accounts/password_change.html",
        "base.html",
    ],
)
def test_it_has_no_inline_script_in_the_account_templates(template: str) -> None:
    # given
    from django.template.loader import get_template

    source = get_template(template).template.source

    # then: only <script src=...> (and no on* handlers)
    for chunk in source.split("<script")[1:]:
        assert chunk.lstrip().startswith("src="), chunk[:80]
    assert " onclick=" not in source and " onload=" not in source and "javascript:" not in source


def test_it_turns_off_htmx_inline_styles_and_eval_the_policy_would_block(client: Client) -> None:
    # when
    body = client.get("/accounts/login/").content.decode()

    # then
    assert '<meta name="htmx-config" content=\'{"includeIndicatorStyles": false, "allowEval": false}\'>' in body


def test_it_relaxes_only_styles_and_only_for_the_api_docs(client: Client) -> None:
    # when
    docs = client.get("/api/docs/")
    login = client.get("/accounts/login/")

    # then
    assert "style-src 'self' 'unsafe-inline'" in docs["Content-Security-Policy"]
    assert "script-src 'self';" in docs["Content-Security-Policy"]
    assert "style-src 'self';" in login["Content-Security-Policy"]


def test_it_does_not_trap_a_session_whose_device_was_removed_elsewhere(client: Client) -> None:
    # given: logged in with a device (not yet verified), then an admin deletes the lost phone's device
    user = staff("ana")
    enrolled(user)
    client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
    TOTPDevice.objects.filter(user=user).delete()

    # when
    first = client.get("/accounts/password/")
    verify = client.get(first.url)
    after = client.get("/accounts/password/")

    # then
    assert first.url == "/accounts/2fa/verify/?next=%2Faccounts%2Fpassword%2F"
    assert verify.status_code == 302
    assert verify.url == "/accounts/password/"
    assert after.status_code == 200


def test_it_throttles_code_guessing(client: Client, english: None) -> None:
    # given: a stolen password; the thief guesses codes
    user = staff("ana")
    device = enrolled(user)
    client.post("/accounts/login/", {"username": "ana", "password": PASSWORD})
    for guess in ("111111", "222222", "333333"):
        client.post("/accounts/2fa/verify/", {"code": guess})

    # when: even the right code is refused while the device waits out its delay
    response = client.post("/accounts/2fa/verify/", {"code": totp_code(device)})

    # then
    assert response.status_code == 200
    assert "Too many wrong codes" in response.content.decode()
    assert "otp_device_id" not in client.session
    device.refresh_from_db()
    # the guesses after the first were not even checked
    assert device.throttling_failure_count == 1


def test_it_tells_a_long_lived_socket_when_its_session_is_over(settings: Any) -> None:
    # given: three sessions of the same user
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore
    user = staff("ana")
    kept, logged_out, elsewhere = Client(), Client(), Client()
    for client in (kept, logged_out, elsewhere):
        log_in(client, user)

    def session_of(client: Client) -> Any:
        return store(client.cookies[settings.SESSION_COOKIE_NAME].value)

    sockets = {
        name: session_of(c) for name, c in (("kept", kept), ("logged_out", logged_out), ("elsewhere", elsewhere))
    }
    assert all(security.session_is_current(user, s) for s in sockets.values())

    # when: one logs out, then the password changes from the kept one
    logged_out.post("/accounts/logout/")
    before_change = security.session_is_current(user, sockets["elsewhere"])
    kept.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": "a-brand-new-secret-42", "new_password2": "a-brand-new-secret-42"},
    )
    user.refresh_from_db()

    # then
    assert security.session_is_current(user, sockets["logged_out"]) is False
    assert before_change is True
    assert security.session_is_current(user, sockets["elsewhere"]) is False
    assert security.session_is_current(user, session_of(kept)) is True
