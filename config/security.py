"""Staff session security: lockout counting, the second factor, the idle timeout and the
security headers of every response.

- ``AxesHandler`` counts failed logins per username and per IP address, each against its own
  limit (``AXES_FAILURE_LIMIT``, ``AXES_IP_FAILURE_LIMIT``).
- ``SessionSecurityMiddleware`` logs a session out after ``SESSION_IDLE_MINUTES`` without a
  request, and keeps a logged-in user whose second factor is pending (a device to verify, or
  an enrollment the settings require) on the two-factor pages until it is done.
- ``SecurityHeadersMiddleware`` sets the Content-Security-Policy (no inline scripts) and the
  Permissions-Policy.
- ``admin_permission`` wraps the admin site's permission check so the admin also needs a
  verified device where two-factor authentication is required.

The websocket (Channels) does not run through Django's middleware: a consumer asks
``session_is_usable(user, session)`` on connect, and ``session_is_current(user, session)``
now and then while it stays open (logout, password change, idle timeout).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from importlib import import_module
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off, get_failure_limit, get_lockout_parameters
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model, logout
from django.contrib.auth.signals import user_logged_in
from django.core.exceptions import DisallowedHost
from django.db.models import Sum
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import urlencode
from django.utils.translation import gettext
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from conversations.models import Membership

# Session keys: the time of the last request (idle timeout) and whether the user had a TOTP
# device when this session logged in (so pages do not look it up on every request).
LAST_SEEN_KEY = "last_seen"
ENROLLED_KEY = "otp_enrolled"
# Per-request memo of the pending second-factor step.
_PENDING = "_atende_second_factor_pending"

# --- Lockouts -----------------------------------------------------------------------------


class AxesHandler(AxesDatabaseHandler):
    """Axes compares the largest of its per-parameter failure counts with one limit, so with
    ``["username", "ip_address"]`` ten typos by one person would lock their whole office
    (everyone behind the same NAT address). Here the IP count is compared with its own, larger
    limit, scaled onto the username limit axes checks against."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        user_limit = settings.AXES_FAILURE_LIMIT
        ip_limit = max(getattr(settings, "AXES_IP_FAILURE_LIMIT", user_limit), 1)
        parameters = get_lockout_parameters(request, credentials)
        worst = 0
        for parameter, attempts in zip(parameters, self.get_user_attempts(request, credentials), strict=True):
            failures = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            if parameter == "ip_address":
                failures = user_limit if failures >= ip_limit else failures * user_limit // ip_limit
            worst = max(worst, failures)
        return worst


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The lockout page, in the user's language (AXES_LOCKOUT_CALLABLE)."""
    cool_off = get_cool_off(request)
    context = {
        "failure_limit": get_failure_limit(request, credentials),
        "wait_minutes": math.ceil(cool_off.total_seconds() / 60) if cool_off else 0,
    }
    return render(request, "registration/lockout.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)


def client_ip(request: HttpRequest) -> str | None:
    """The address failed logins are counted under."""
    if settings.SECURE_PROXY_SSL_HEADER:
        # BEHIND_TLS_PROXY: the proxy appends the address it saw; entries before it are the
        # client's own claims.
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR")


# --- Second factor ------------------------------------------------------------------------


def second_factor_required(user: Any) -> bool:
    """Whether this user must have a verified TOTP device to use the console and the admin."""
    if not (user is not None and user.is_authenticated):
        return False
    if settings.OTP_REQUIRED_FOR_EVERYONE:
        return True
    if not settings.OTP_REQUIRED_FOR_STAFF_ROLES:
        return False
    # Admins and supervisors see every conversation of their inboxes (and the admin): a
    # stolen password alone must not be enough.
    return bool(user.is_superuser) or Membership.objects.filter(user=user, role=Membership.Role.SUPERVISOR).exists()


def pending_step(user: Any, verified: bool) -> str | None:
    """What stands between a logged-in user and the application: "verify" (they have a
    device and this session has not used it), "enroll" (the settings require a device they
    do not have yet), or None."""
    if not (user is not None and user.is_authenticated) or verified:
        return None
    if has_device(user):
        return "verify"
    if second_factor_required(user):
        return "enroll"
    return None


def has_device(user: Any) -> bool:
    # A TOTP device is what enrollment creates (backup codes come with it).
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def request_pending_step(request: HttpRequest) -> str | None:
    """``pending_step`` for this request, computed once (the admin asks for its permission
    several times per page). Whether the user has a device is remembered in the session from
    the login on (``remember_device``), so a page costs no extra query; a device enrolled
    from another session counts from the next login (changing the password ends the others)."""
    cache = request.__dict__
    if _PENDING not in cache:
        user = getattr(request, "user", None)
        step = None
        if user is not None and user.is_authenticated and not _is_verified(request):
            enrolled = request.session.get(ENROLLED_KEY)
            if enrolled is None:
                enrolled = remember_device(request.session, user)
            if enrolled:
                step = "verify"
            elif second_factor_required(user):
                # Rare (the enrollment page): look again, the device may be new.
                step = "verify" if remember_device(request.session, user) else "enroll"
        cache[_PENDING] = step
    return cache[_PENDING]


def remember_device(session: Any, user: Any) -> bool:
    enrolled = has_device(user)
    session[ENROLLED_KEY] = enrolled
    return enrolled


@receiver(user_logged_in)
def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # Connected from config.apps.TOTPConfig.ready(). Starts the idle clock and notes whether
    # the second factor will be asked for.
    if request is None or not hasattr(request, "session"):
        return
    request.session[LAST_SEEN_KEY] = int(time.time())
    remember_device(request.session, user)


def _session_verified(user: Any, session: Any) -> bool:
    from django_otp.models import Device

    persistent_id = session.get(DEVICE_ID_SESSION_KEY)
    if not persistent_id:
        return False
    device = Device.from_persistent_id(persistent_id, for_verify=False)
    return device is not None and device.user_id == user.pk and device.confirmed


def _idle_expired(session: Any, now: float) -> bool:
    last_seen = session.get(LAST_SEEN_KEY)
    return last_seen is not None and now - last_seen > settings.SESSION_IDLE_MINUTES * 60


def session_is_usable(user: Any, session: Any) -> bool:
    """For consumers (no middleware there): a logged-in user, not idle past the timeout, with
    no second factor pending."""
    if not (user is not None and user.is_authenticated and user.is_active):
        return False
    if _idle_expired(session, time.time()):
        return False
    return pending_step(user, _session_verified(user, session)) is None


def session_is_current(user: Any, session: Any) -> bool:
    """For a websocket that stays open for hours: the session it was opened with, read again
    from the store, still logs this user in (not logged out, not expired, not idle, same
    password, no second factor pending). ``session_is_usable`` alone trusts the copy the
    socket loaded at connect."""
    key = getattr(session, "session_key", None)
    if not key or user is None or not user.is_authenticated:
        return False
    data = import_module(settings.SESSION_ENGINE).SessionStore(key).load()
    fresh = get_user_model()._default_manager.filter(pk=user.pk, is_active=True).first()
    if fresh is None or data.get(SESSION_KEY) != str(fresh.pk):
        return False
    stored_hash = data.get(HASH_SESSION_KEY) or ""
    if not constant_time_compare(stored_hash, fresh.get_session_auth_hash()):
        return False  # the password changed: every other session is over
    return session_is_usable(fresh, data)


def admin_permission(original: Callable[[HttpRequest], bool]) -> Callable[[HttpRequest], bool]:
    """Compose with whatever check the admin site already has (conversations/admin.py lets
    only admins and supervisors in): that check, and no second factor pending."""

    def has_permission(request: HttpRequest) -> bool:
        if not original(request):
            return False
        return request_pending_step(request) is None

    has_permission.wrapped = original  # type: ignore[attr-defined]
    return has_permission


def _is_verified(request: HttpRequest) -> bool:
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified and is_verified())


# --- Middleware ---------------------------------------------------------------------------

# Storing the time of every request would write the session row on every page and fragment;
# once a minute is precise enough for a timeout counted in minutes.
TOUCH_EVERY_SECONDS = 60
# Reachable while a second factor is pending: logging in and out, switching the language,
# static files and the health check.
ALWAYS_OPEN = ("/static/", "/i18n/", "/health/")


class SessionSecurityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            if _idle_expired(request.session, now):
                # logout() flushes the session and makes request.user anonymous: the view then
                # answers as to anyone logged out (redirect to the login page, 403 in the API).
                logout(request)
            else:
                last_seen = request.session.get(LAST_SEEN_KEY)
                if last_seen is None or now - last_seen >= TOUCH_EVERY_SECONDS:
                    request.session[LAST_SEEN_KEY] = int(now)
                refused = self._second_factor(request)
                if refused is not None:
                    return refused
        return self.get_response(request)

    def _second_factor(self, request: HttpRequest) -> HttpResponse | None:
        step = request_pending_step(request)
        if step is None:
            return None
        path = request.path
        target = reverse("two_factor_verify" if step == "verify" else "two_factor_setup")
        open_paths = (target, reverse("login"), reverse("logout"))
        if path in open_paths or path.startswith(ALWAYS_OPEN):
            return None
        if path.startswith("/api/"):
            return JsonResponse({"detail": gettext("Two-factor authentication is required.")}, status=403)
        next_path = request.get_full_path() if request.method == "GET" else ""
        url = f"{target}?{urlencode({'next': next_path})}" if next_path else target
        # (django-htmx's middleware runs after this one: read the header itself.)
        if request.headers.get("HX-Request") == "true":
            # htmx would swap the verification page into a fragment's place.
            response = HttpResponse(status=204)
            response["HX-Redirect"] = url
            return response
        return HttpResponseRedirect(url)


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(request)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


def content_security_policy(request: HttpRequest) -> str:
    policy = dict(settings.CSP_POLICY)
    for prefix, overrides in settings.CSP_PATH_OVERRIDES.items():
        if request.path.startswith(prefix):
            policy.update(overrides)
    # The console's websocket: 'self' covers ws:// and wss:// of this host in current
    # browsers, older ones need the origin spelled out.
    try:
        host = request.get_host()
    except DisallowedHost:
        host = ""
    if host:
        scheme = "wss" if request.is_secure() else "ws"
        policy["connect-src"] = " ".join(filter(None, [policy.get("connect-src", ""), f"{scheme}://{host}"]))
    return "; ".join(f"{name} {value}" for name, value in policy.items())
