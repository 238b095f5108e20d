"""Admin for inboxes, alerts, customers, conversations, messages and raw webhook events.

Most of these rows are records of what WhatsApp sent us or what we sent: the admin shows them
read-only and changes state only through actions that call the same code as intake. Secrets
are never rendered back, and customer text is always escaped (format_html, never mark_safe).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from conversations import access, processing, services, templates_sync
from conversations.labels import message_type_label
from conversations.models import (
    Alert,
    CannedResponse,
    Conversation,
    Customer,
    Inbox,
    Label,
    Membership,
    Message,
    MessageTemplate,
    OrphanStatus,
    WebhookEvent,
    mask_secret,
)
from conversations.whatsapp.graph import GraphError

logger = logging.getLogger(__name__)

SECRET_FIELDS = ("access_token", "app_secret", "verify_token")
# A conversation can hold thousands of messages; the change page shows the latest ones and
# links to the filtered message list for the rest.
INLINE_MESSAGES = 50
PREVIEW_CHARS = 60

# Foreign keys (and the unmatched-status fields) declared without a verbose_name read in
# English in column headers, filters and read-only fields ("CUSTOMER", "Sender"). They get
# translated labels here because a verbose_name in the model is a migration: Django builds
# the migration state from the declared argument (Field._verbose_name), so this changes what
# people read and nothing else. Moving them into models.py with the next migration is better.
FIELD_LABELS = (
    (Alert, "inbox", _("inbox")),
    (Conversation, "inbox", _("inbox")),
    (Conversation, "customer", _("customer")),
    (Message, "conversation", _("conversation")),
    (Message, "sender", _("sent by")),
    (Message, "uuid", _("UUID")),
    (Message, "event", _("webhook event")),
    (OrphanStatus, "wamid", _("WhatsApp message ID")),
    (OrphanStatus, "status", _("status")),
    (OrphanStatus, "timestamp", _("WhatsApp time")),
    (OrphanStatus, "data", _("data")),
    (OrphanStatus, "event", _("webhook event")),
    (OrphanStatus, "created", _("created")),
    (WebhookEvent, "inbox", _("inbox")),
)
for _model, _name, _label in FIELD_LABELS:
    _model._meta.get_field(_name).verbose_name = _label


def local_datetime(value: datetime) -> str:
    """A moment as people read it: in the business time zone and the locale's format."""
    return formats.localize(timezone.localtime(value) if timezone.is_aware(value) else value)


def _localize_dates(value: Any) -> Any:
    # JSON columns keep moments as ISO strings in UTC ("replaced_at" of an edit); shown raw,
    # they sit in UTC beside the local times of the rest of the page.
    if isinstance(value, dict):
        return {key: _localize_dates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_localize_dates(item) for item in value]
    if isinstance(value, datetime):
        return local_datetime(value)
    if isinstance(value, str) and 19 <= len(value) <= 35 and value[4:5] == "-" and value[10:11] in ("T", " "):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        if timezone.is_aware(parsed):
            return local_datetime(parsed)
    return value


def pretty_json(value: Any) -> str:
    """Indented JSON in a <pre>, escaped: these fields hold customer text."""
    if value in (None, {}, []):
        return "—"
    text = json.dumps(_localize_dates(value), indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="atende-json">{}</pre>', text)


def cut(text: str) -> str:
    """Free text for a list column: one line cut with an ellipsis (static/css/admin.css), whole on hover."""
    return format_html('<span class="atende-cut" title="{}">{}</span>', text, text)


def masked_display(field: str, label: Any) -> Callable[[Any, Any], str]:
    """A column showing enough of a secret to recognise it, never enough to use it."""

    @admin.display(description=label)
    def display(model_admin: Any, obj: Any) -> str:
        return mask_secret(getattr(obj, field))

    return display


def json_display(field: str, label: Any) -> Callable[[Any, Any], str]:
    """A read-only admin column showing one JSON field, pretty-printed and escaped."""

    @admin.display(description=label)
    def display(model_admin: Any, obj: Any) -> str:
        return pretty_json(getattr(obj, field))

    return display


def admin_link(obj: Any, label: Any = None) -> str:
    if obj is None:
        return "—"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label if label is not None else obj)


def superuser_only_delete(request: HttpRequest) -> bool:
    # Raw records are evidence (what Meta sent, what the customer wrote); removing them is an
    # administrator's decision, and personal-data erasure goes through the LGPD app.
    return bool(request.user.is_active and request.user.is_superuser)


# --- Who may use the admin, and which rows they see ---------------------------------------------


def may_enter_admin(request: HttpRequest) -> bool:
    # The admin is for admins and supervisors; attendants work in the console. Django's own
    # check (active and is_staff) let any is_staff attendant read every message here.
    return access.may_use_admin(request.user)


# Set on the default site instance rather than through a custom AdminSite class, so the
# project keeps "django.contrib.admin" in INSTALLED_APPS and every app registers as usual.
admin.site.has_permission = may_enter_admin


def scope_to_inboxes(queryset: QuerySet[Any], request: HttpRequest, inbox_field: str | None) -> QuerySet[Any]:
    """Superusers see every row; a supervisor only rows of the inboxes they supervise (rows
    with no inbox, such as unrouted webhook events, stay with superusers)."""
    if access.is_admin(request.user):
        return queryset
    if inbox_field is None:
        return queryset.none()
    return queryset.filter(**{f"{inbox_field}__in": access.supervised_inbox_ids(request.user)})


class InboxScopedAdmin(admin.ModelAdmin):
    """Every admin list, change, history and delete page reads through ``get_queryset``, so
    scoping it is what keeps a supervisor out of another inbox's rows (another inbox's change
    page redirects to the index, as for a row that does not exist). ``inbox_field`` is the
    path to the row's inbox; None means superusers only."""

    inbox_field: str | None = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return scope_to_inboxes(super().get_queryset(request), request, self.inbox_field)

    def has_module_permission(self, request: HttpRequest) -> bool:
        if self.inbox_field is None and not access.is_admin(request.user):
            return False
        return super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.inbox_field is None and not access.is_admin(request.user):
            return False
        return super().has_view_permission(request, obj)


class InboxListFilter(admin.RelatedFieldListFilter):
    """The inbox filter offers only the inboxes this user may see: inbox names are not for
    every supervisor, and a DISTINCT over millions of events would be slow."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[Any, str]]:
        inboxes = Inbox.objects.all()
        if not access.is_admin(request.user):
            inboxes = inboxes.filter(pk__in=access.supervised_inbox_ids(request.user))
        return [(inbox.pk, str(inbox)) for inbox in inboxes]


class RecordAdmin(InboxScopedAdmin):
    """Records of what happened (messages, webhook bodies, statuses): shown, never typed in
    or edited; deleted only by a superuser. Actions on them need the model's change permission."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return superuser_only_delete(request)

    def _may_act(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


# --- Inbox -------------------------------------------------------------------------------------


class InboxForm(forms.ModelForm):
    """Secrets are write-only: the form never renders them and an empty field keeps the old one."""

    class Meta:
        model = Inbox
        fields = ("name", "phone_number_id", "display_number", "waba_id", "is_active", *SECRET_FIELDS)
        widgets = {name: forms.PasswordInput(render_value=False) for name in SECRET_FIELDS}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            if name not in self.fields:
                continue
            # An empty initial value means "left empty" is not reported as a change in the
            # admin history, and nothing secret sits in the form's state.
            self.initial[name] = ""
            current = getattr(self.instance, name, "") if self.instance.pk else ""
            field = self.fields[name]
            field.required = False
            if current:
                field.help_text = gettext("Current value: %(masked)s. Leave empty to keep the current value.") % {
                    "masked": mask_secret(current)
                }
            else:
                field.help_text = gettext("Not set. Leave empty to keep the current value.")

    def _keep_current(self, name: str) -> str:
        value = self.cleaned_data.get(name) or ""
        if not value and self.instance.pk:
            # The instance still holds the stored value here: the form copies cleaned_data
            # onto it only after clean().
            return getattr(self.instance, name)
        return value

    def clean_access_token(self) -> str:
        return self._keep_current("access_token")

    def clean_app_secret(self) -> str:
        return self._keep_current("app_secret")

    def clean_verify_token(self) -> str:
        return self._keep_current("verify_token")


class MembershipInline(admin.TabularInline):
    """Who works in this inbox, and as what. Only superusers manage it: a supervisor adding
    people (or themselves, elsewhere) would widen who reads customers' messages."""

    model = Membership
    fields = ("user", "role", "created")
    readonly_fields = ("created",)
    autocomplete_fields = ("user",)
    extra = 0
    verbose_name_plural = _("members")


@admin.register(Inbox)
class InboxAdmin(InboxScopedAdmin):
    inbox_field = "pk"
    form = InboxForm
    inlines = (MembershipInline,)
    list_display = (
        "name",
        "phone_number_id",
        "display_number",
        "waba_id",
        "is_active",
        "sending",
        "open_alerts",
        "masked_access_token",
        "masked_app_secret",
        "masked_verify_token",
        "updated",
    )
    list_filter = ("is_active",)
    # Never search secret columns: a search box that matches on a token is an oracle for it.
    search_fields = ("name", "phone_number_id", "display_number", "waba_id")
    readonly_fields = ("webhook_url", "sending_paused_reason", "created", "updated")
    fieldsets = (
        (None, {"fields": ("name", "phone_number_id", "display_number", "waba_id", "is_active")}),
        (_("Credentials"), {"fields": (*SECRET_FIELDS, "webhook_url")}),
        (_("Sending"), {"fields": ("sending_paused_reason",)}),
        (_("Dates"), {"fields": ("created", "updated")}),
    )
    actions = ("resume_sending",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Inbox]:
        return (
            super()
            .get_queryset(request)
            .annotate(_open_alerts=Count("alerts", filter=Q(alerts__resolved__isnull=True)))
        )

    # Supervisors may rename their inboxes and switch them off; credentials and the numbers
    # that route webhooks stay with superusers, and secrets are not even shown masked.
    def get_list_display(self, request: HttpRequest) -> Any:
        fields = super().get_list_display(request)
        if access.is_admin(request.user):
            return fields
        return [name for name in fields if not name.startswith("masked_")]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if access.is_admin(request.user):
            return fieldsets
        return [
            (title, {**options, "fields": [name for name in options["fields"] if name not in SECRET_FIELDS]})
            for title, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        if access.is_admin(request.user):
            return fields
        return (*fields, "phone_number_id", "waba_id")

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if access.is_admin(request.user) else ()

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A supervisor would not even see an inbox they added: they supervise none there yet.
        return access.is_admin(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.is_admin(request.user)

    @admin.display(description=_("webhook URL"))
    def webhook_url(self, obj: Inbox) -> str:
        return format_html("<code>{}</code>", settings.SITE_URL + reverse("whatsapp-webhook"))

    @admin.display(description=_("sending"), boolean=True)
    def sending(self, obj: Inbox) -> bool:
        return not obj.sending_paused_reason

    @admin.display(description=_("open alerts"), ordering="_open_alerts")
    def open_alerts(self, obj: Inbox) -> int:
        return obj._open_alerts

    masked_access_token = masked_display("access_token", _("access token"))
    masked_app_secret = masked_display("app_secret", _("app secret"))
    masked_verify_token = masked_display("verify_token", _("verify token"))

    @admin.action(description=_("Resume sending (clear the pause reason)"), permissions=("change",))
    def resume_sending(self, request: HttpRequest, queryset: QuerySet[Inbox]) -> None:
        count = sum(services.resume_sending(inbox) for inbox in queryset)
        self.message_user(
            request,
            ngettext("Sending resumed for %(count)d inbox.", "Sending resumed for %(count)d inboxes.", count)
            % {"count": count},
            messages.SUCCESS,
        )


# --- Alert -------------------------------------------------------------------------------------


class AlertOpenFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, Any]]:
        return [("yes", _("Open")), ("no", _("Resolved"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alert]) -> QuerySet[Alert]:
        if self.value() == "yes":
            return queryset.filter(resolved__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved__isnull=False)
        return queryset


@admin.register(Alert)
class AlertAdmin(InboxScopedAdmin):
    inbox_field = "inbox"
    list_display = ("title", "kind", "code", "inbox", "created", "is_open", "resolved")
    list_filter = (AlertOpenFilter, "kind", ("inbox", InboxListFilter))
    list_select_related = ("inbox",)
    search_fields = ("title", "details")
    date_hierarchy = "created"
    # Open alerts (resolved is NULL) first, newest first within each group.
    ordering = (F("resolved").desc(nulls_first=True), "-created")
    readonly_fields = ("inbox", "kind", "code", "title", "details", "created")
    fields = ("inbox", "kind", "code", "title", "details", "created", "resolved")
    actions = ("mark_resolved",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Alerts are raised by intake and the sending code, never typed in.
        return False

    @admin.display(description=_("open"), boolean=True)
    def is_open(self, obj: Alert) -> bool:
        return obj.resolved is None

    @admin.action(description=_("Mark resolved"), permissions=("change",))
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        count = sum(services.resolve_alert(alert) for alert in queryset)
        self.message_user(
            request,
            ngettext("%(count)d alert marked resolved.", "%(count)d alerts marked resolved.", count) % {"count": count},
            messages.SUCCESS,
        )


# --- Customer ----------------------------------------------------------------------------------


class CustomerConversationInline(admin.TabularInline):
    model = Conversation
    fk_name = "customer"
    fields = ("inbox", "status", "assignee", "opened", "last_message", "closed")
    readonly_fields = fields
    ordering = ("-last_message", "-id")
    show_change_link = True
    extra = 0
    verbose_name_plural = _("conversations")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        # A customer who wrote to two inboxes: a supervisor sees only their inboxes' side.
        qs = super().get_queryset(request).select_related("inbox", "assignee", "customer")
        return scope_to_inboxes(qs, request, "inbox")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(RecordAdmin):
    inbox_field = "conversations__inbox"
    list_display = ("__str__", "name", "phone", "wa_id", "user_id", "username", "conversation_count", "created")
    search_fields = ("name", "=wa_id", "phone", "=user_id", "username")
    date_hierarchy = "created"
    # Customers are WhatsApp identities kept up to date by intake; editing one here would be
    # overwritten by the next message or break routing (wa_id), so the page is read-only.
    readonly_fields = (
        "name",
        "phone",
        "wa_id",
        "user_id",
        "parent_user_id",
        "username",
        "created",
        "updated",
    )
    inlines = (CustomerConversationInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if access.is_admin(request.user):
            return qs.annotate(_conversations=Count("conversations"))
        # EXISTS, not a join: a join would repeat the customer once per conversation. The
        # count covers the supervisor's inboxes only.
        inbox_ids = access.supervised_inbox_ids(request.user)
        supervised = Conversation.objects.filter(customer=OuterRef("pk"), inbox_id__in=inbox_ids)
        return qs.filter(Exists(supervised)).annotate(
            _conversations=Count("conversations", filter=Q(conversations__inbox_id__in=inbox_ids))
        )

    @admin.display(description=_("conversations"), ordering="_conversations")
    def conversation_count(self, obj: Customer) -> int:
        return obj._conversations


# --- Conversation --------------------------------------------------------------------------------


class LatestMessagesFormSet(BaseInlineFormSet):
    def get_queryset(self) -> QuerySet[Message]:
        if not hasattr(self, "_latest"):
            qs = super().get_queryset()
            latest = qs.order_by("-wa_timestamp", "-id").values("pk")[:INLINE_MESSAGES]
            # One query: the latest N by id, shown oldest first like the chat itself.
            self._latest = (
                Message.objects.filter(pk__in=Subquery(latest))
                .defer("raw", "payload", "content", "pricing", "edit_history")
                .order_by("wa_timestamp", "id")
            )
        return self._latest


@admin.display(description=_("type"), ordering="type")
def message_type_display(model_admin: Any, obj: Message) -> str:
    return message_type_label(obj.type)


class MessageInline(admin.TabularInline):
    model = Message
    formset = LatestMessagesFormSet
    fields = ("wa_timestamp", "direction", "sender_kind", "type_label", "preview", "status", "media_status")
    readonly_fields = fields
    show_change_link = True
    extra = 0
    verbose_name_plural = _("latest messages")
    type_label = message_type_display

    @admin.display(description=_("text"))
    def preview(self, obj: Message) -> str:
        return cut(message_preview(obj))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MessageTypeFilter(admin.SimpleListFilter):
    """The types present, under their translated names (WhatsApp's own words otherwise)."""

    title = _("type")
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        types = model_admin.get_queryset(request).order_by().values_list("type", flat=True).distinct()
        return sorted(((value, message_type_label(value)) for value in types), key=lambda item: item[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        return queryset.filter(type=self.value()) if self.value() else queryset


def message_preview(obj: Message) -> str:
    text = obj.text or obj.caption or obj.media_filename
    if not text:
        return f"[{message_type_label(obj.type)}]"
    # Returned as plain text: the admin escapes it when rendering.
    return Truncator(" ".join(text.split())).chars(PREVIEW_CHARS)


@admin.register(Conversation)
class ConversationAdmin(InboxScopedAdmin):
    inbox_field = "inbox"
    list_display = (
        "id",
        "customer",
        "inbox",
        "status",
        "assignee",
        "opened",
        "last_message",
        "referral_headline",
    )
    list_display_links = ("id", "customer")
    list_filter = ("status", ("inbox", InboxListFilter))
    list_select_related = ("customer", "inbox", "assignee")
    search_fields = ("customer__name", "customer__phone", "=customer__wa_id")
    date_hierarchy = "opened"
    # Moving a conversation to another customer or inbox would mix two people's histories.
    # Status and owner change only through the ownership services (lock, allowed transition,
    # audit row, live event): the handoffs app's admin actions, never by editing the form.
    readonly_fields = (
        "inbox",
        "customer",
        "status",
        "assignee",
        "opened",
        "closed",
        "last_inbound",
        "last_message",
        "window_closes",
        "ctwa_clid",
        "referral_source",
        "referral_headline",
        "referral_pretty",
        "all_messages",
        "created",
        "updated",
    )
    fieldsets = (
        (None, {"fields": ("inbox", "customer", "status", "assignee")}),
        (
            _("Dates"),
            {"fields": ("opened", "closed", "last_inbound", "last_message", "window_closes", "created", "updated")},
        ),
        (
            _("Ad referral"),
            {
                "fields": ("referral_headline", "referral_source", "ctwa_clid", "referral_pretty"),
                "classes": ["collapse"],
            },
        ),
        (_("Messages"), {"fields": ("all_messages",)}),
    )
    inlines = (MessageInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Conversations open when a customer writes (intake) or when we send a template.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return superuser_only_delete(request)

    @admin.display(description=_("service window closes"))
    def window_closes(self, obj: Conversation) -> str:
        # A callable's datetime is rendered with str() on the change page: raw UTC.
        closes = obj.window_closes_at()
        return local_datetime(closes) if closes else "—"

    @admin.display(description=_("ad referral"))
    def referral_pretty(self, obj: Conversation) -> str:
        return pretty_json(obj.referral)

    @admin.display(description=_("all messages"))
    def all_messages(self, obj: Conversation) -> str:
        if obj.pk is None:
            return "—"
        url = reverse("admin:conversations_message_changelist") + f"?conversation={obj.pk}"
        count = obj.messages.count()
        label = ngettext("%(count)d message", "%(count)d messages", count) % {"count": count}
        return format_html('<a href="{}">{}</a>', url, label)


# --- Message -----------------------------------------------------------------------------------

MESSAGE_JSON_FIELDS = ("content", "raw", "payload", "pricing", "edit_history", "reactions", "referral")


@admin.register(Message)
class MessageAdmin(RecordAdmin):
    inbox_field = "conversation__inbox"
    list_display = (
        "wa_timestamp",
        "conversation",
        "direction",
        "sender_kind",
        "type_label",
        "preview",
        "status",
        "media_status",
        "error_code",
    )
    list_display_links = ("wa_timestamp",)
    list_filter = ("direction", MessageTypeFilter, "status", "media_status", "sender_kind")
    list_select_related = ("conversation__customer",)
    search_fields = ("text", "caption", "=wamid")
    date_hierarchy = "wa_timestamp"
    ordering = ("-wa_timestamp", "-id")
    # Counting every message on each page load gets slow; the paginator shows "more" instead.
    show_full_result_count = False
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "conversation_link",
                    "direction",
                    "sender_kind",
                    "sender",
                    "type_label",
                    "text",
                    "caption",
                    "wamid",
                    "wa_timestamp",
                    "reply_to_link",
                    "context_wamid",
                    "forwarded",
                    "frequently_forwarded",
                    "edited",
                    "revoked",
                )
            },
        ),
        (
            _("Delivery"),
            {
                "fields": (
                    "status",
                    "sent_at",
                    "delivered_at",
                    "read_at",
                    "played_at",
                    "failed_at",
                    "error_code",
                    "error_title",
                    "error_details",
                    "send_attempts",
                    "send_started",
                )
            },
        ),
        (
            _("Media"),
            {
                "fields": (
                    "media_id",
                    "media",
                    "media_mime",
                    "media_size",
                    "media_sha256",
                    "media_filename",
                    "media_status",
                    "media_attempts",
                    "media_error",
                )
            },
        ),
        (
            _("Raw data"),
            {
                "fields": (
                    "content_pretty",
                    "reactions_pretty",
                    "edit_history_pretty",
                    "referral_pretty",
                    "pricing_pretty",
                    "payload_pretty",
                    "raw_pretty",
                    "event_link",
                    "uuid",
                    "created",
                    "updated",
                ),
                "classes": ["collapse"],
            },
        ),
    )
    actions = ("retry_media_download", "send_again")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        # The raw JSON columns can be kilobytes per row and the list never shows them; the
        # change page loads them on demand.
        return super().get_queryset(request).defer("raw", "payload", "content", "pricing", "edit_history")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [name for _title, options in self.fieldsets for name in options["fields"]]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return self._may_act(request)

    type_label = message_type_display

    @admin.display(description=_("text"))
    def preview(self, obj: Message) -> str:
        return cut(message_preview(obj))

    @admin.display(description=_("conversation"))
    def conversation_link(self, obj: Message) -> str:
        return admin_link(obj.conversation)

    @admin.display(description=_("reply to"))
    def reply_to_link(self, obj: Message) -> str:
        return admin_link(obj.reply_to)

    @admin.display(description=_("webhook event"))
    def event_link(self, obj: Message) -> str:
        if obj.event_id is None:
            return "—"
        # Linked by id: loading the event would read its body, up to 3 MB.
        url = reverse("admin:conversations_webhookevent_change", args=[obj.event_id])
        return format_html('<a href="{}">#{}</a>', url, obj.event_id)

    content_pretty = json_display("content", _("content"))
    reactions_pretty = json_display("reactions", _("reactions"))
    edit_history_pretty = json_display("edit_history", _("edit history"))
    referral_pretty = json_display("referral", _("referral"))
    pricing_pretty = json_display("pricing", _("pricing"))
    payload_pretty = json_display("payload", _("send payload"))
    raw_pretty = json_display("raw", _("raw"))

    @admin.action(description=_("Retry media download"), permissions=("retry",))
    def retry_media_download(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        # Imported here: the media module pulls in the Graph API client, which the rest of the
        # admin does not need.
        from conversations.media import retry_media_download

        retried = failed = 0
        # Only inbound files can be fetched from Meta; our own uploads have nothing to download.
        candidates = queryset.filter(direction=Message.Direction.IN).exclude(media_id="")
        skipped = queryset.count() - candidates.count()
        for message in candidates.order_by("pk").iterator():
            try:
                retry_media_download(message)
            except ValueError:
                skipped += 1
            except Exception:
                logger.exception("admin: retrying the media download of message %s failed", message.pk)
                failed += 1
            else:
                retried += 1
        self.message_user(
            request,
            gettext(
                "Media download retried for %(retried)d messages; %(skipped)d without a file to download "
                "skipped; %(failed)d errors."
            )
            % {"retried": retried, "skipped": skipped, "failed": failed},
            messages.WARNING if failed else messages.SUCCESS,
        )

    @admin.action(
        description=_("Send again (not confirmed or failed before WhatsApp accepted it)"), permissions=("retry",)
    )
    def send_again(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        # Imported here, like the media module above: sending pulls in the Graph API client.
        from conversations.outbound import SendRefused, send_again

        queued = 0
        refusals: Counter[str] = Counter()
        for message in queryset.order_by("pk").iterator():
            try:
                send_again(message, request.user)
            except SendRefused as refused:
                refusals[str(refused)] += 1
            else:
                queued += 1
        self.message_user(
            request,
            ngettext(
                "%(queued)d message queued to be sent again.", "%(queued)d messages queued to be sent again.", queued
            )
            % {"queued": queued},
            messages.SUCCESS,
        )
        for reason, count in refusals.items():
            self.message_user(
                request,
                ngettext("%(count)d not sent again: %(reason)s", "%(count)d not sent again: %(reason)s", count)
                % {"count": count, "reason": reason},
                messages.WARNING,
            )


# --- WebhookEvent ------------------------------------------------------------------------------


def event_body_text(body: bytes | memoryview | None) -> str:
    """The stored body for display: indented when it is JSON, else the text as received."""
    if body is None:
        return ""
    text = bytes(body).decode("utf-8", errors="replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


@admin.register(WebhookEvent)
class WebhookEventAdmin(RecordAdmin):
    inbox_field = "inbox"
    list_display = ("id", "received", "state", "signature_valid", "inbox", "fields", "attempts", "short_notes")
    list_filter = ("state", "signature_valid", ("inbox", InboxListFilter), "fields")
    list_select_related = ("inbox",)
    search_fields = ("=body_sha256", "notes", "last_error")
    date_hierarchy = "received"
    show_full_result_count = False
    fields = (
        "received",
        "state",
        "signature_valid",
        "signature",
        "remote_addr",
        "inbox",
        "fields",
        "attempts",
        "next_attempt",
        "processed",
        "notes",
        "last_error",
        "body_sha256",
        "body_size",
        "body_purged",
        "body_pretty",
        "messages_link",
    )
    readonly_fields = fields
    actions = ("reprocess",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEvent]:
        # Bodies reach 3 MB; only the change page reads one.
        return super().get_queryset(request).defer("body")

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return self._may_act(request)

    @admin.display(description=_("notes"))
    def short_notes(self, obj: WebhookEvent) -> str:
        return cut(Truncator(" · ".join(obj.notes.splitlines())).chars(80))

    @admin.display(description=_("body"))
    def body_pretty(self, obj: WebhookEvent) -> str:
        if obj.body_purged is not None:
            return gettext("Emptied after the retention period (WEBHOOK_RETENTION_DAYS); its hash and size are kept.")
        return format_html('<pre class="atende-json">{}</pre>', event_body_text(obj.body))

    @admin.display(description=_("messages"))
    def messages_link(self, obj: WebhookEvent) -> str:
        count = obj.messages.count()
        if not count:
            return "—"
        url = reverse("admin:conversations_message_changelist") + f"?event={obj.pk}"
        label = ngettext("%(count)d message", "%(count)d messages", count) % {"count": count}
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.action(description=_("Reprocess selected events"), permissions=("reprocess",))
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        # Imported here so this module does not load the whole intake pipeline at startup.
        unsigned = queryset.filter(signature_valid=False).count()
        # Nothing left to apply in an event whose body retention emptied.
        purged = queryset.filter(signature_valid=True, body_purged__isnull=False).count()
        states: Counter[str] = Counter()
        busy = 0
        replayable = queryset.filter(signature_valid=True, body_purged__isnull=True)
        for pk in replayable.order_by("received", "pk").values_list("pk", flat=True):
            # Each event runs in its own transaction, as the workers do; dedupe by wamid makes
            # reprocessing an already applied event harmless.
            event = processing.process_event(pk, force=True)
            if event is None:
                busy += 1  # locked by a worker processing it right now
            else:
                states[event.state] += 1
        labels = dict(WebhookEvent.State.choices)
        summary = ", ".join(f"{labels.get(state, state)}: {count}" for state, count in sorted(states.items()))
        reprocessed = sum(states.values())
        text = ngettext(
            "Reprocessed %(count)d event (%(summary)s). Skipped %(unsigned)d with an invalid signature "
            "and %(busy)d being processed right now.",
            "Reprocessed %(count)d events (%(summary)s). Skipped %(unsigned)d with an invalid signature "
            "and %(busy)d being processed right now.",
            reprocessed,
        ) % {"count": reprocessed, "summary": summary or "—", "unsigned": unsigned, "busy": busy}
        trouble = states[WebhookEvent.State.FAILED] or states[WebhookEvent.State.FLAGGED] or unsigned or busy
        self.message_user(request, text, messages.WARNING if trouble else messages.SUCCESS)
        if purged:
            self.message_user(
                request,
                ngettext(
                    "%(count)d event not reprocessed: its body was emptied after the retention period.",
                    "%(count)d events not reprocessed: their bodies were emptied after the retention period.",
                    purged,
                )
                % {"count": purged},
                messages.WARNING,
            )


# --- OrphanStatus ------------------------------------------------------------------------------


@admin.register(OrphanStatus)
class OrphanStatusAdmin(RecordAdmin):
    # No inbox to scope by (the wamid is not ours yet): superusers only.
    inbox_field = None
    list_display = ("wamid", "status", "timestamp", "event", "created")
    list_filter = ("status",)
    list_select_related = ("event",)
    search_fields = ("=wamid",)
    date_hierarchy = "timestamp"
    fields = ("wamid", "status", "timestamp", "event", "data_pretty", "created")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrphanStatus]:
        return super().get_queryset(request).defer("event__body")

    @admin.display(description=_("data"))
    def data_pretty(self, obj: OrphanStatus) -> str:
        return pretty_json(obj.data)


# --- The console's labels, canned responses and message templates ---------------------------


class InboxOwnedAdmin(InboxScopedAdmin):
    """Labels and canned responses: a supervisor picks one of their inboxes; only a superuser
    may leave the inbox empty (a row for every inbox)."""

    inbox_field = "inbox"

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "inbox" and not access.is_admin(request.user):
            kwargs["queryset"] = Inbox.objects.filter(pk__in=access.supervised_inbox_ids(request.user))
            kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Label)
class LabelAdmin(InboxOwnedAdmin):
    list_display = ("name", "color", "inbox", "created")
    list_filter = (("inbox", InboxListFilter),)
    list_select_related = ("inbox",)
    search_fields = ("name",)
    fields = ("inbox", "name", "color")


@admin.register(CannedResponse)
class CannedResponseAdmin(InboxOwnedAdmin):
    list_display = ("shortcut_display", "title", "inbox", "updated")
    list_filter = (("inbox", InboxListFilter),)
    list_select_related = ("inbox",)
    search_fields = ("shortcut", "title", "text")
    fields = ("inbox", "shortcut", "title", "text")

    @admin.display(description=_("shortcut"), ordering="shortcut")
    def shortcut_display(self, obj: CannedResponse) -> str:
        return f"/{obj.shortcut}"


@admin.register(MessageTemplate)
class MessageTemplateAdmin(RecordAdmin):
    inbox_field = "inbox"
    list_display = ("name", "language", "status", "category", "inbox", "synced_display")
    list_filter = ("status", "category", ("inbox", InboxListFilter))
    list_select_related = ("inbox",)
    search_fields = ("name",)
    fields = ("inbox", "name", "language", "category", "status", "meta_id", "components", "synced")
    readonly_fields = fields
    actions = ["sync_selected"]
    change_list_template = "admin/conversations/messagetemplate/change_list.html"

    @admin.display(description=_("synced"), ordering="synced")
    def synced_display(self, obj: MessageTemplate) -> str:
        return local_datetime(obj.synced)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Meta is the source: a template deleted here would come back at the next sync.
        return False

    def get_urls(self) -> list[URLPattern]:
        sync = self.admin_site.admin_view(require_POST(self.sync_view))
        return [path("sync/", sync, name="conversations_messagetemplate_sync"), *super().get_urls()]

    def _inboxes(self, request: HttpRequest) -> QuerySet[Inbox]:
        inboxes = Inbox.objects.all()
        if not access.is_admin(request.user):
            inboxes = inboxes.filter(pk__in=access.supervised_inbox_ids(request.user))
        return inboxes

    def _sync(self, request: HttpRequest, inboxes: QuerySet[Inbox]) -> None:
        for inbox in inboxes:
            if not templates_sync.can_sync(inbox):
                messages.warning(
                    request,
                    gettext("%(inbox)s: not synced (inactive, or no WhatsApp Business Account ID or token).")
                    % {"inbox": inbox},
                )
                continue
            try:
                result = templates_sync.sync_inbox(inbox)
            except GraphError as exc:
                messages.error(request, gettext("%(inbox)s: Meta refused: %(error)s") % {"inbox": inbox, "error": exc})
                continue
            messages.success(
                request,
                gettext("%(inbox)s: %(created)s new, %(updated)s changed, %(deleted)s removed.")
                % {"inbox": inbox, "created": result.created, "updated": result.updated, "deleted": result.deleted},
            )

    def sync_view(self, request: HttpRequest) -> HttpResponse:
        """The change list's "Sync from Meta" button: every inbox this person supervises."""
        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        self._sync(request, self._inboxes(request))
        return HttpResponseRedirect(reverse("admin:conversations_messagetemplate_changelist"))

    @admin.action(description=_("Sync the selected templates' inboxes from Meta"))
    def sync_selected(self, request: HttpRequest, queryset: QuerySet[MessageTemplate]) -> None:
        inboxes = self._inboxes(request).filter(pk__in=queryset.values("inbox_id"))
        count = inboxes.count()
        self._sync(request, inboxes)
        self.message_user(
            request,
            ngettext("%(count)s inbox synced.", "%(count)s inboxes synced.", count) % {"count": count},
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
