"""The bots in the Django admin: each inbox's bot (provider, voice, handoff rules, hours,
rating) with its business hours, own holidays and knowledge base; model prices; the national
holidays; and the records of what the bots did (turns, leads), read-only.

Who sees what follows ``conversations.admin``: superusers everything, a supervisor the bots of
the inboxes they supervise. The provider's API key is a secret: the form never renders it
(a password input, empty), leaving it empty keeps the stored key, a checkbox clears it, and
the page shows only ``masked_api_key``. The provider's address and key are for superusers
only: whoever sets the base URL decides where the key is sent, so a supervisor who could
change it could read the key on their own server.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from bots.models import BotConfig, BotRun, BusinessHours, Holiday, KnowledgeEntry, Lead, ModelPrice
from conversations import access
from conversations.admin import (
    InboxListFilter,
    InboxScopedAdmin,
    RecordAdmin,
    admin_link,
    cut,
    json_display,
    local_datetime,
    superuser_only_delete,
)
from conversations.models import Inbox

# Only superusers set where the bot's requests go and with which key (see the module docstring).
PROVIDER_SECRET_FIELDS = ("base_url", "api_key", "clear_api_key")


# --- BotConfig ---------------------------------------------------------------------------------


class BotConfigForm(forms.ModelForm):
    """The API key is write-only: never rendered, kept when left empty, cleared on request."""

    clear_api_key = forms.BooleanField(
        label=_("Clear the API key"),
        required=False,
        help_text=_("Removes the stored key. Without a key, a provider that needs one refuses every request."),
    )

    class Meta:
        model = BotConfig
        fields = (
            "inbox",
            "enabled",
            "name",
            "business_kind",
            "base_url",
            "model",
            "api_key",
            "temperature",
            "max_tokens",
            "timeout",
            "transcription_model",
            "persona",
            "instructions",
            "greeting",
            "business_name",
            "business_address",
            "services",
            "payment_methods",
            "handoff_topics",
            "handoff_keywords",
            "max_turns",
            "burst_seconds",
            "timezone",
            "out_of_hours",
            "out_of_hours_message",
            "csat",
        )
        widgets = {
            "api_key": forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            "persona": forms.Textarea(attrs={"rows": 3}),
            "instructions": forms.Textarea(attrs={"rows": 4}),
            "business_address": forms.Textarea(attrs={"rows": 2}),
            "services": forms.Textarea(attrs={"rows": 4}),
            "payment_methods": forms.Textarea(attrs={"rows": 2}),
            "greeting": forms.Textarea(attrs={"rows": 2}),
            "handoff_topics": forms.Textarea(attrs={"rows": 3}),
            "handoff_keywords": forms.Textarea(attrs={"rows": 3}),
            "out_of_hours_message": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.get("api_key")
        if field is None:
            return
        # Empty initial: "left empty" is no change in the history, and the stored key never
        # sits in the form's state (a bound form re-rendered after an error included).
        self.initial["api_key"] = ""
        field.required = False
        if self.instance.pk and self.instance.api_key:
            field.help_text = gettext("Current key: %(masked)s. Leave empty to keep it.") % {
                "masked": self.instance.masked_api_key
            }
        else:
            field.help_text = gettext("Not set. Groq, OpenAI and Gemini need one; Ollama and vLLM usually not.")

    def clean_api_key(self) -> str:
        value = (self.cleaned_data.get("api_key") or "").strip()
        if not value and self.instance.pk:
            # The instance still holds the stored key here: the form copies cleaned_data onto
            # it only after clean().
            return self.instance.api_key
        return value

    def clean_timezone(self) -> str:
        name = (self.cleaned_data.get("timezone") or "").strip()
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(
                gettext("Unknown time zone: use a name like America/Sao_Paulo or America/Manaus.")
            ) from None
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("clear_api_key") and "api_key" in self.fields:
            if "api_key" in self.changed_data:
                self.add_error("api_key", gettext("Either type a new key or clear it, not both."))
            else:
                cleaned["api_key"] = ""
        return cleaned


class BusinessHoursInline(admin.TabularInline):
    model = BusinessHours
    fields = ("weekday", "opens", "closes")
    extra = 0
    verbose_name_plural = _("business hours (in the bot's time zone)")


class OwnHolidayInline(admin.TabularInline):
    """The business's own days off; the national holidays apply to every bot already."""

    model = Holiday
    fk_name = "bot"
    fields = ("date", "name")
    extra = 0
    verbose_name = _("day off")
    verbose_name_plural = _("the business's own days off (national holidays apply already)")


class KnowledgeEntryInline(admin.StackedInline):
    model = KnowledgeEntry
    fields = (("title", "kind"), "body", "keywords", ("in_menu", "active", "position"))
    extra = 0
    show_change_link = True
    classes = ["collapse"]

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "body":
            kwargs["widget"] = forms.Textarea(attrs={"rows": 3})
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(BotConfig)
class BotConfigAdmin(InboxScopedAdmin):
    inbox_field = "inbox"
    form = BotConfigForm
    inlines = (BusinessHoursInline, OwnHolidayInline, KnowledgeEntryInline)
    list_display = ("name", "inbox", "enabled", "engine", "model", "business_kind", "timezone", "updated")
    list_filter = ("enabled", "business_kind", "out_of_hours", ("inbox", InboxListFilter))
    list_select_related = ("inbox",)
    # Never search the key: a search box that matches on it is an oracle for it.
    search_fields = ("name", "business_name", "inbox__name")
    readonly_fields = ("masked_api_key", "try_link", "created", "updated")
    fieldsets = (
        (None, {"fields": ("inbox", "enabled", "name", "business_kind", "try_link")}),
        (
            _("Provider"),
            {
                "description": _(
                    "Any OpenAI-compatible endpoint. Leave the base URL empty for the built-in offline bot."
                ),
                "fields": (
                    "base_url",
                    "model",
                    "api_key",
                    "masked_api_key",
                    "clear_api_key",
                    "temperature",
                    "max_tokens",
                    "timeout",
                    "transcription_model",
                ),
            },
        ),
        (
            _("Voice and business"),
            {
                "fields": (
                    "persona",
                    "instructions",
                    "greeting",
                    "business_name",
                    "business_address",
                    "services",
                    "payment_methods",
                )
            },
        ),
        (_("Handoff rules"), {"fields": ("handoff_topics", "handoff_keywords", "max_turns", "burst_seconds")}),
        (_("Hours"), {"fields": ("timezone", "out_of_hours", "out_of_hours_message")}),
        (_("Rating"), {"fields": ("csat",)}),
        (_("Dates"), {"fields": ("created", "updated"), "classes": ["collapse"]}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        hidden = set(PROVIDER_SECRET_FIELDS) | {"masked_api_key"}
        if access.is_admin(request.user):
            return fieldsets
        return [
            (title, {**options, "fields": [name for name in options["fields"] if name not in hidden]})
            for title, options in fieldsets
        ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if not access.is_admin(request.user):
            # Not even a field on the form: a supervisor's POST cannot set them.
            # (An ``exclude`` given here replaces the admin's own, which holds the read-only fields.)
            kwargs["exclude"] = [*self.get_readonly_fields(request, obj), "base_url", "api_key"]
        return super().get_form(request, obj, change, **kwargs)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "base_url":
            # "api.groq.com/openai/v1" typed without a scheme means https, never plain http.
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "inbox" and not access.is_admin(request.user):
            kwargs["queryset"] = Inbox.objects.filter(pk__in=access.supervised_inbox_ids(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        if obj is not None:
            # One bot per inbox: moving it would give another inbox this bot's knowledge.
            fields = (*fields, "inbox")
        return fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return superuser_only_delete(request)

    @admin.display(description=_("engine"))
    def engine(self, obj: BotConfig) -> str:
        return str(BotRun.Engine.LLM.label if obj.uses_llm else BotRun.Engine.OFFLINE.label)

    @admin.display(description=_("API key (stored)"))
    def masked_api_key(self, obj: BotConfig) -> str:
        return obj.masked_api_key or "—"

    @admin.display(description=_("try it"))
    def try_link(self, obj: BotConfig) -> str:
        if obj.pk is None:
            return "—"
        url = reverse("console:try_bot") + f"?inbox={obj.inbox_id}"
        return format_html('<a href="{}">{}</a>', url, gettext("Chat with this bot as a customer"))


# --- Knowledge base ----------------------------------------------------------------------------


@admin.register(KnowledgeEntry)
class KnowledgeEntryAdmin(InboxScopedAdmin):
    inbox_field = "bot__inbox"
    list_display = ("title", "kind", "bot", "keywords_cut", "in_menu", "active", "position", "updated")
    list_editable = ("active", "position")
    list_filter = ("active", "kind", "in_menu", ("bot__inbox", InboxListFilter))
    list_select_related = ("bot__inbox",)
    search_fields = ("title", "body", "keywords")
    ordering = ("bot", "position", "id")
    fields = ("bot", "kind", "title", "body", "keywords", "in_menu", "active", "position", "created", "updated")
    readonly_fields = ("created", "updated")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "bot" and not access.is_admin(request.user):
            kwargs["queryset"] = BotConfig.objects.filter(inbox_id__in=access.supervised_inbox_ids(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("keywords"))
    def keywords_cut(self, obj: KnowledgeEntry) -> str:
        return cut(obj.keywords) if obj.keywords else "—"


# --- Holidays ---------------------------------------------------------------------------------


class HolidayYearFilter(admin.SimpleListFilter):
    title = _("year")
    parameter_name = "year"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        years = model_admin.get_queryset(request).dates("date", "year")
        return [(str(day.year), str(day.year)) for day in years]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Holiday]) -> QuerySet[Holiday]:
        value = self.value()
        return queryset.filter(date__year=int(value)) if value and value.isdigit() else queryset


class HolidayKindFilter(admin.SimpleListFilter):
    title = _("kind")
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, Any]]:
        return [("national", _("National holiday")), ("own", _("A business's own day off"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Holiday]) -> QuerySet[Holiday]:
        if self.value() == "national":
            return queryset.filter(bot__isnull=True)
        if self.value() == "own":
            return queryset.filter(bot__isnull=False)
        return queryset


@admin.register(Holiday)
class HolidayAdmin(InboxScopedAdmin):
    """National holidays (no bot) apply to every inbox: everyone who may enter the admin sees
    them, only superusers change them. A supervisor manages their own bots' days off."""

    inbox_field = "bot__inbox"
    list_display = ("date", "weekday", "name", "kind", "bot")
    list_filter = (HolidayYearFilter, HolidayKindFilter)
    list_select_related = ("bot__inbox",)
    search_fields = ("name",)
    fields = ("date", "name", "bot")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Holiday]:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if access.is_admin(request.user):
            return qs
        return qs.filter(Q(bot__isnull=True) | Q(bot__inbox_id__in=access.supervised_inbox_ids(request.user)))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "bot" and not access.is_admin(request.user):
            kwargs["queryset"] = BotConfig.objects.filter(inbox_id__in=access.supervised_inbox_ids(request.user))
            kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _national_by_other(self, request: HttpRequest, obj: Holiday | None) -> bool:
        return obj is not None and obj.bot_id is None and not access.is_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self._national_by_other(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self._national_by_other(request, obj):
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description=_("weekday"))
    def weekday(self, obj: Holiday) -> str:
        return str(BusinessHours.Weekday(obj.date.weekday()).label)

    @admin.display(description=_("kind"), ordering="bot")
    def kind(self, obj: Holiday) -> str:
        return gettext("National holiday") if obj.bot_id is None else gettext("Own day off")


# --- Prices -----------------------------------------------------------------------------------


@admin.register(ModelPrice)
class ModelPriceAdmin(InboxScopedAdmin):
    # Prices belong to no inbox: superusers only.
    inbox_field = None
    list_display = ("model", "input_per_million", "output_per_million", "updated")
    search_fields = ("model",)
    fields = ("model", "input_per_million", "output_per_million", "updated")
    readonly_fields = ("updated",)

    # InboxScopedAdmin hides rows without an inbox from supervisors for viewing; a change
    # permission would still open the list, so every permission says the same here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return access.is_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.is_admin(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.is_admin(request.user)


# --- What the bots did -------------------------------------------------------------------------


@admin.register(BotRun)
class BotRunAdmin(RecordAdmin):
    inbox_field = "conversation__inbox"
    list_display = (
        "created",
        "conversation",
        "outcome",
        "engine",
        "model",
        "tokens_in",
        "tokens_out",
        "cost",
        "latency_ms",
        "error_cut",
    )
    list_display_links = ("created",)
    list_filter = ("outcome", "engine", ("conversation__inbox", InboxListFilter), "model")
    list_select_related = ("conversation__customer",)
    search_fields = ("=conversation__id", "model", "error")
    date_hierarchy = "created"
    show_full_result_count = False
    fields = (
        "created",
        "conversation_link",
        "outcome",
        "engine",
        "trigger_link",
        "reply_link",
        "model",
        "tokens_in",
        "tokens_out",
        "cost",
        "latency_ms",
        "llm_ms",
        "knowledge_pretty",
        "tool_calls_pretty",
        "error",
    )
    readonly_fields = fields

    @admin.display(description=_("error"))
    def error_cut(self, obj: BotRun) -> str:
        return cut(obj.error) if obj.error else ""

    @admin.display(description=_("conversation"))
    def conversation_link(self, obj: BotRun) -> str:
        return admin_link(obj.conversation)

    @admin.display(description=_("answering"))
    def trigger_link(self, obj: BotRun) -> str:
        return admin_link(obj.trigger, f"#{obj.trigger_id}") if obj.trigger_id else "—"

    @admin.display(description=_("reply"))
    def reply_link(self, obj: BotRun) -> str:
        return admin_link(obj.reply, f"#{obj.reply_id}") if obj.reply_id else "—"

    knowledge_pretty = json_display("knowledge", _("knowledge used"))
    tool_calls_pretty = json_display("tool_calls", _("tool calls"))


@admin.register(Lead)
class LeadAdmin(RecordAdmin):
    """What the bots collected: shown as recorded (the bot merges into it on each turn, so an
    edit here would be overwritten); a superuser may delete one."""

    inbox_field = "conversation__inbox"
    list_display = ("conversation", "name", "summary", "updated")
    list_filter = (("conversation__inbox", InboxListFilter),)
    list_select_related = ("conversation__customer",)
    search_fields = ("=conversation__id", "conversation__customer__name")
    date_hierarchy = "created"
    fields = ("conversation_link", "data_pretty", "created_local", "updated_local")
    readonly_fields = fields

    @admin.display(description=_("name"))
    def name(self, obj: Lead) -> str:
        return str(obj.data.get("name") or "") if isinstance(obj.data, dict) else ""

    @admin.display(description=_("data"))
    def summary(self, obj: Lead) -> str:
        data = obj.data if isinstance(obj.data, dict) else {}
        text = " · ".join(f"{key}: {value}" for key, value in data.items() if key != "name" and value)
        return cut(text) if text else "—"

    @admin.display(description=_("conversation"))
    def conversation_link(self, obj: Lead) -> str:
        return admin_link(obj.conversation)

    @admin.display(description=_("created"))
    def created_local(self, obj: Lead) -> str:
        return local_datetime(obj.created)

    @admin.display(description=_("updated"))
    def updated_local(self, obj: Lead) -> str:
        return local_datetime(obj.updated)

    data_pretty = json_display("data", _("data"))
