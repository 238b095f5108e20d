"""Ownership in the admin: status and owner are read-only on the conversation page, and change
only through actions that call the ownership services (lock, allowed transition for this user,
audit row, live event), showing their refusals.

``conversations`` never imports this app, so its ConversationAdmin is replaced here by a
subclass with the actions. ``handoffs`` comes after ``conversations`` in INSTALLED_APPS, and
admin autodiscovery imports admin modules in that order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from conversations import access
from conversations.admin import (
    ConversationAdmin,
    InboxListFilter,
    InboxScopedAdmin,
    admin_link,
    json_display,
    superuser_only_delete,
)
from conversations.models import Conversation, Membership
from handoffs import services
from handoffs.models import Attendant, Handoff, OwnershipChange
from handoffs.services import TransitionRefused

# The change page shows this many of the latest ownership changes.
HISTORY_ROWS = 20


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(label=_("Attendant"), queryset=get_user_model().objects.none())
    reason = forms.CharField(label=_("Reason"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, candidates: QuerySet[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = candidates
        self.fields["assignee"].label_from_instance = lambda user: user.get_full_name() or user.get_username()


class CloseForm(forms.Form):
    resolution = forms.CharField(label=_("Resolution note"), widget=forms.Textarea(attrs={"rows": 3}))


admin.site.unregister(Conversation)


@admin.register(Conversation)
class OwnershipConversationAdmin(ConversationAdmin):
    actions = ("take_over", "assign_to", "return_to_queue", "return_to_bot", "close_conversations", "reopen")
    change_form_template = "admin/handoffs/conversation_change_form.html"
    # The change page offers, as buttons, the actions this user may attempt on it.
    ACTION_FOR = {
        OwnershipChange.Action.TAKE_OVER: "take_over",
        OwnershipChange.Action.ASSIGN: "assign_to",
        OwnershipChange.Action.TO_QUEUE: "return_to_queue",
        OwnershipChange.Action.TO_BOT: "return_to_bot",
        OwnershipChange.Action.CLOSE: "close_conversations",
        OwnershipChange.Action.REOPEN: "reopen",
    }

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None and self.has_ownership_permission(request):
            allowed = services.available_actions(request.user, obj)
            context["ownership_actions"] = [
                (name, self.get_action(name)[2]) for action, name in self.ACTION_FOR.items() if action in allowed
            ]
            context["action_checkbox_name"] = helpers.ACTION_CHECKBOX_NAME
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        return [*fieldsets[:1], (_("Ownership history"), {"fields": ("ownership_history",)}), *fieldsets[1:]]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*super().get_readonly_fields(request, obj), "ownership_history")

    def has_ownership_permission(self, request: HttpRequest) -> bool:
        # Whoever may enter the admin (a superuser or a supervisor) sees the actions; the
        # services decide per conversation and per user, and say why when they refuse.
        return access.may_use_admin(request.user)

    @admin.display(description=_("ownership history"))
    def ownership_history(self, obj: Conversation) -> str:
        if obj.pk is None:
            return "—"
        changes = (
            OwnershipChange.objects.filter(conversation=obj)
            .select_related("actor", "to_assignee")
            .order_by("-created", "-id")[:HISTORY_ROWS]
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    change.created,
                    change.get_action_display(),
                    _user_label(change.actor) if change.actor_id else gettext("the system"),
                    change.get_to_status_display(),
                    _user_label(change.to_assignee) if change.to_assignee_id else "—",
                    change.reason or "—",
                )
                for change in changes
            ),
        )
        if not rows:
            return "—"
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            gettext("When"),
            gettext("Action"),
            gettext("Done by"),
            gettext("New status"),
            gettext("Attendant"),
            gettext("Reason"),
            rows,
        )

    # --- Actions ---------------------------------------------------------------------------

    def _apply(
        self, request: HttpRequest, queryset: QuerySet[Conversation], transition: Callable[[Conversation], Any]
    ) -> None:
        done = 0
        for conversation in queryset.order_by("pk"):
            try:
                transition(conversation)
            except TransitionRefused as refusal:
                self.message_user(
                    request,
                    gettext("Conversation #%(id)s: %(reason)s") % {"id": conversation.pk, "reason": refusal.message},
                    messages.ERROR,
                )
            else:
                done += 1
        if done:
            self.message_user(
                request,
                ngettext("%(count)d conversation changed.", "%(count)d conversations changed.", done) % {"count": done},
                messages.SUCCESS,
            )

    def _form_page(
        self, request: HttpRequest, queryset: QuerySet[Conversation], action: str, title: str, form: forms.Form
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "form": form,
            "conversations": queryset.select_related("customer", "inbox").order_by("pk"),
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/handoffs/ownership_form.html", context)

    @admin.action(description=_("Take over (assign to me)"), permissions=("ownership",))
    def take_over(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._apply(request, queryset, lambda conversation: services.take_over(conversation, request.user))

    @admin.action(description=_("Assign to an attendant…"), permissions=("ownership",))
    def assign_to(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> TemplateResponse | None:
        inbox_ids = set(queryset.values_list("inbox_id", flat=True))
        candidates = (
            get_user_model()
            .objects.filter(is_active=True, memberships__inbox_id__in=inbox_ids)
            .order_by("first_name", "username")
            .distinct()
        )
        form = AssignForm(request.POST if "apply" in request.POST else None, candidates=candidates)
        if not form.is_valid():
            return self._form_page(request, queryset, "assign_to", gettext("Assign to an attendant"), form)
        assignee, reason = form.cleaned_data["assignee"], form.cleaned_data["reason"]
        self._apply(request, queryset, lambda c: services.assign(c, request.user, assignee, reason=reason))
        return None

    @admin.action(description=_("Return to the queue"), permissions=("ownership",))
    def return_to_queue(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._apply(request, queryset, lambda conversation: services.transfer_to_queue(conversation, request.user))

    @admin.action(description=_("Return to the bot"), permissions=("ownership",))
    def return_to_bot(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._apply(request, queryset, lambda conversation: services.transfer_to_bot(conversation, request.user))

    @admin.action(description=_("Close…"), permissions=("ownership",))
    def close_conversations(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> TemplateResponse | None:
        form = CloseForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._form_page(request, queryset, "close_conversations", gettext("Close conversations"), form)
        resolution = form.cleaned_data["resolution"]
        self._apply(request, queryset, lambda c: services.close(c, request.user, resolution=resolution))
        return None

    @admin.action(description=_("Reopen"), permissions=("ownership",))
    def reopen(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._apply(request, queryset, lambda conversation: services.reopen(conversation, request.user))


def _user_label(user: Any) -> str:
    return user.get_full_name() or user.get_username()


@admin.register(OwnershipChange)
class OwnershipChangeAdmin(InboxScopedAdmin):
    """The audit trail: read-only, for everyone who may see the conversation's inbox."""

    inbox_field = "conversation__inbox"
    list_display = ("created", "conversation", "action", "actor", "from_status", "to_status", "to_assignee")
    list_filter = ("action", "to_status", ("conversation__inbox", InboxListFilter))
    list_select_related = ("conversation__customer", "actor", "to_assignee")
    search_fields = ("=conversation__id", "reason")
    date_hierarchy = "created"
    fields = (
        "conversation",
        "action",
        "actor",
        "from_status",
        "from_assignee",
        "to_status",
        "to_assignee",
        "reason",
        "created",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Handoffs ----------------------------------------------------------------------------------


class HandoffStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, Any]]:
        return [("waiting", _("Waiting for a person")), ("assigned", _("With a person")), ("closed", _("Closed"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Handoff]) -> QuerySet[Handoff]:
        if self.value() == "waiting":
            return queryset.filter(closed__isnull=True, assigned__isnull=True)
        if self.value() == "assigned":
            return queryset.filter(closed__isnull=True, assigned__isnull=False)
        if self.value() == "closed":
            return queryset.filter(closed__isnull=False)
        return queryset


class CsatFilter(admin.SimpleListFilter):
    title = _("rating")
    parameter_name = "csat"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, Any]]:
        return [
            ("answered", _("Answered")),
            ("asked", _("Asked, no answer")),
            *((str(score), str(score)) for score in range(1, 6)),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Handoff]) -> QuerySet[Handoff]:
        value = self.value()
        if value == "answered":
            return queryset.filter(csat_score__isnull=False)
        if value == "asked":
            return queryset.filter(csat_asked__isnull=False, csat_score__isnull=True)
        if value and value.isdigit():
            return queryset.filter(csat_score=int(value))
        return queryset


@admin.register(Handoff)
class HandoffAdmin(InboxScopedAdmin):
    """The packets the bot handed over, read-only: they are a record of what happened, written
    by ``handoffs.services`` (request, assignment, first answer, close, rating)."""

    inbox_field = "conversation__inbox"
    list_display = (
        "requested",
        "conversation",
        "reason",
        "priority",
        "state",
        "assignee",
        "waited",
        "csat_score",
    )
    list_display_links = ("requested",)
    list_filter = (
        HandoffStateFilter,
        "reason",
        "priority",
        "out_of_hours",
        CsatFilter,
        ("conversation__inbox", InboxListFilter),
        ("requested", admin.DateFieldListFilter),
        ("closed", admin.DateFieldListFilter),
    )
    list_select_related = ("conversation__customer", "assignee")
    search_fields = ("=conversation__id", "summary", "reason_text")
    date_hierarchy = "requested"
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("conversation_link", "reason", "reason_text", "priority", "out_of_hours")}),
        (_("Packet"), {"fields": ("summary_text", "lead_pretty")}),
        (
            _("Times"),
            {"fields": ("requested", "assigned", "assignee", "first_answered", "closed", "notified", "waited")},
        ),
        (_("Rating"), {"fields": ("csat_asked", "csat_score", "csat_answered")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [name for _title, options in self.fieldsets for name in options["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return superuser_only_delete(request)

    @admin.display(description=_("state"))
    def state(self, obj: Handoff) -> str:
        if obj.closed is not None:
            return gettext("Closed")
        return gettext("With a person") if obj.assigned is not None else gettext("Waiting for a person")

    @admin.display(description=_("waited"))
    def waited(self, obj: Handoff) -> str:
        if obj.assigned is None or obj.requested is None:
            return "—"
        return timesince(obj.requested, obj.assigned)

    @admin.display(description=_("conversation"))
    def conversation_link(self, obj: Handoff) -> str:
        return admin_link(obj.conversation)

    @admin.display(description=_("summary"))
    def summary_text(self, obj: Handoff) -> str:
        # Customer-influenced text (the model wrote it from the customer's words): escaped.
        return format_html('<div class="atende-json">{}</div>', obj.summary) if obj.summary else "—"

    lead_pretty = json_display("lead", _("lead data"))


# --- Attendants --------------------------------------------------------------------------------


@admin.register(Attendant)
class AttendantAdmin(admin.ModelAdmin):
    """Capacity (how many open conversations automatic assignment gives someone at once) is
    set here; presence is the person's own choice in the console, shown read-only. A
    supervisor sees the people of the inboxes they supervise."""

    list_display = ("user", "full_name", "presence", "capacity", "open_conversations", "last_assigned")
    list_editable = ("capacity",)
    list_filter = ("presence",)
    list_select_related = ("user",)
    search_fields = ("user__username", "user__first_name", "user__last_name")
    fields = ("user", "presence", "presence_changed", "capacity", "sound", "last_assigned")
    readonly_fields = ("user", "presence", "presence_changed", "last_assigned")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attendant]:
        holding = Q(user__assigned_conversations__status=Conversation.Status.ASSIGNED)
        qs = super().get_queryset(request).annotate(_open=Count("user__assigned_conversations", filter=holding))
        if access.is_admin(request.user):
            return qs
        # EXISTS, not a join: a person in two supervised inboxes is one row.
        supervised = access.supervised_inbox_ids(request.user)
        memberships = Membership.objects.filter(user=OuterRef("user"), inbox_id__in=supervised)
        return qs.filter(Exists(memberships))

    def has_add_permission(self, request: HttpRequest) -> bool:
        # The row is created with the person's first presence change or assignment.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("name"))
    def full_name(self, obj: Attendant) -> str:
        return obj.user.get_full_name()

    @admin.display(description=_("open conversations"), ordering="_open")
    def open_conversations(self, obj: Attendant) -> int:
        return obj._open
