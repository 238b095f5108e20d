"""Admin for what the console offers attendants: labels, canned responses and the message
templates synced from Meta (read-only here: they are edited in Meta's WhatsApp Manager).

Imported by ``conversations/admin.py``. Supervisors see and edit the rows of the inboxes they
supervise; rows for every inbox (no inbox) are for superusers.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from conversations import access, templates_sync
from conversations.admin import InboxListFilter, InboxScopedAdmin, RecordAdmin, local_datetime
from conversations.models import CannedResponse, Inbox, Label, MessageTemplate
from conversations.whatsapp.graph import GraphError


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
