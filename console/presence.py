"""Console: presence. Attendants say whether they are online, away or offline (the control in
the frame's user menu, ``console/live.html#presence-control``); supervisors see who is where in
their inboxes (``/console/team/``, live through the socket's ``presence.changed`` events).

What a closed socket means: nothing by itself. Navigating between pages closes and reopens
the socket every time, so flipping to offline there would make everyone blink offline all day.
Presence is what the person chose; logging out sets it to offline (``user_logged_out``), and the
team list adds "console closed" to anyone online or away whose console stopped syncing for
``live.SEEN_SECONDS`` (a closed tab, a sleeping laptop), so a supervisor never counts on them.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import URLPattern, path
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from console import live
from conversations import access
from conversations.models import Conversation, Inbox, Membership
from handoffs import services as handoffs
from handoffs.models import Attendant

TEMPLATE = "console/live.html"


def may_watch(user: Any, inbox_id: int) -> bool:
    """Admins and the inbox's supervisors see its members' presence."""
    return access.is_admin(user) or access.role_in(user, inbox_id) == Membership.Role.SUPERVISOR


def _watched_inboxes(user: Any) -> Any:
    if access.is_admin(user):
        return Inbox.objects.all()
    return Inbox.objects.filter(pk__in=access.supervised_inbox_ids(user))


def control_context(user: Any) -> dict[str, Any]:
    attendant = Attendant.objects.filter(user=user).values("presence", "sound").first() or {}
    return {
        "presence": attendant.get("presence", Attendant.Presence.OFFLINE),
        "sound": attendant.get("sound", True),
        "presence_choices": Attendant.Presence.choices,
        "may_watch_team": access.is_admin(user) or access.supervises_any(user),
    }


def render_control(request: HttpRequest) -> str:
    return render_to_string(f"{TEMPLATE}#presence-control", control_context(request.user), request)


def _members(inbox_ids: list[int], only_user: int | None = None) -> dict[int, list[dict[str, Any]]]:
    """Each inbox's members with their presence and open conversations, in two queries."""
    memberships = Membership.objects.filter(inbox_id__in=inbox_ids, user__is_active=True).select_related("user")
    if only_user is not None:
        memberships = memberships.filter(user_id=only_user)
    memberships = list(memberships.order_by("inbox_id", "user__first_name", "user__username"))
    user_ids = {m.user_id for m in memberships}
    presence = dict(Attendant.objects.filter(user_id__in=user_ids).values_list("user_id", "presence"))
    load = {
        (row["inbox_id"], row["assignee_id"]): row["n"]
        for row in Conversation.objects.filter(
            inbox_id__in=inbox_ids, assignee_id__in=user_ids, status=Conversation.Status.ASSIGNED
        )
        .values("inbox_id", "assignee_id")
        .annotate(n=Count("pk"))
    }
    open_consoles = live.consoles_open(sorted(user_ids))
    by_inbox: dict[int, list[dict[str, Any]]] = {pk: [] for pk in inbox_ids}
    for membership in memberships:
        state = presence.get(membership.user_id, Attendant.Presence.OFFLINE)
        by_inbox[membership.inbox_id].append(
            {
                "user": membership.user,
                "inbox_id": membership.inbox_id,
                "name": membership.user.get_full_name() or membership.user.get_username(),
                "role_label": membership.get_role_display(),
                "presence": state,
                "presence_label": Attendant.Presence(state).label,
                "console_open": membership.user_id in open_consoles,
                "open_count": load.get((membership.inbox_id, membership.user_id), 0),
            }
        )
    return by_inbox


def render_member(request: HttpRequest, inbox_id: int, user_id: int) -> str:
    """One member's line of the team list (the socket pushes it when their presence changes)."""
    members = _members([inbox_id], only_user=user_id).get(inbox_id) or []
    if not members:
        return ""
    return render_to_string(f"{TEMPLATE}#member", {"member": members[0]}, request)


def render_event(request: HttpRequest, event: dict) -> str:
    """A ``presence.changed`` event for the socket: my own control (every tab of mine), or a
    member's line in the team list of a supervisor of that inbox (checked again now)."""
    with translation.override(request.LANGUAGE_CODE):
        user = request.user
        if event["user_id"] == user.pk and "inbox_id" not in event:
            return render_control(request)
        inbox_id = event.get("inbox_id")
        if inbox_id is None or not may_watch(user, inbox_id):
            return ""
        return render_member(request, inbox_id, event["user_id"])


# --- Views -----------------------------------------------------------------------------------------


@login_required
@require_POST
def set_presence(request: HttpRequest) -> HttpResponse:
    presence = request.POST.get("presence", "")
    if presence not in Attendant.Presence.values:
        return HttpResponseBadRequest()
    handoffs.set_presence(request.user, presence)
    if request.POST.get("with_sound") == "1":
        # The control posts its checkbox with it (an unchecked box sends nothing).
        handoffs.set_sound(request.user, request.POST.get("sound") == "1")
    if request.htmx:
        return HttpResponse(render_control(request))
    target = request.POST.get("next") or request.headers.get("referer") or ""
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return redirect("console:index")
    return redirect(target)


@login_required
@require_GET
def team(request: HttpRequest) -> HttpResponse:
    inboxes = list(_watched_inboxes(request.user).order_by("name", "pk"))
    if not inboxes:
        raise PermissionDenied
    members = _members([inbox.pk for inbox in inboxes])
    context = {"teams": [(inbox, members[inbox.pk]) for inbox in inboxes]}
    if request.htmx:
        return render(request, f"{TEMPLATE}#team", context)
    return render(request, TEMPLATE, context)


@receiver(user_logged_out, dispatch_uid="console.presence.offline_on_logout")
def _offline_on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None and user.is_authenticated and Attendant.objects.filter(user=user).exists():
        handoffs.set_presence(user, Attendant.Presence.OFFLINE)


urlpatterns: list[URLPattern] = [
    path("presence/", set_presence, name="presence"),
    path("team/", team, name="team"),
]
