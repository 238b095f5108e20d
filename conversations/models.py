"""Inboxes, customers, conversations, messages and the raw webhook events they came from."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from conversations.labels import message_type_label

# WhatsApp lets a business send free-form messages only this long after the customer's last one.
SERVICE_WINDOW = timedelta(hours=24)


def mask_secret(value: str) -> str:
    """Show enough of a secret to recognise it, never enough to use it."""
    if not value:
        return ""
    if len(value) <= 8:
        return "•" * 6
    return f"{value[:4]}…{value[-2:]}"


class InboxQuerySet(models.QuerySet["Inbox"]):
    def active(self) -> InboxQuerySet:
        return self.filter(is_active=True)


class Inbox(models.Model):
    """One WhatsApp business phone number connected through the Cloud API."""

    name = models.CharField(_("name"), max_length=100)
    phone_number_id = models.CharField(_("phone number ID"), max_length=64)
    display_number = models.CharField(_("display number"), max_length=32, blank=True)
    waba_id = models.CharField(_("WhatsApp Business Account ID"), max_length=64, blank=True)
    access_token = models.TextField(_("access token"), blank=True)
    app_secret = models.CharField(_("app secret"), max_length=200, blank=True)
    verify_token = models.CharField(_("verify token"), max_length=200, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    # Set when Meta says the account or token cannot send (190, 368, 131031...); sends are
    # refused until an admin clears it, so we do not hammer a blocked account.
    sending_paused_reason = models.TextField(_("sending paused because"), blank=True)
    # Opening a conversation in the console tells the customer we read their messages.
    read_receipts = models.BooleanField(_("send read receipts"), default=True)
    # After a close, a customer's next message within this many hours reopens the closed
    # conversation (with the bot); later, or with 0, it opens a fresh one.
    reopen_hours = models.PositiveSmallIntegerField(
        _("reopen within (hours)"),
        default=0,
        help_text=_(
            "A customer who writes again this soon after a close continues the same conversation; "
            "0 always starts a new one."
        ),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    objects = InboxQuerySet.as_manager()

    class Meta:
        verbose_name = _("inbox")
        verbose_name_plural = _("inboxes")
        ordering = ["name", "id"]
        constraints = [
            # Webhooks route on metadata.phone_number_id.
            models.UniqueConstraint(fields=["phone_number_id"], name="conversations_inbox_phone_number_id_uniq"),
        ]
        indexes = [
            # Non-message fields (template status, account updates) carry only the WABA id.
            models.Index(fields=["waba_id"], name="conv_inbox_waba_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_number or self.phone_number_id})"


def alert_dedupe_key(inbox_id: int | None, kind: str, code: int | None, title: str) -> str:
    """What makes two alerts "the same one" while it is open."""
    raw = f"{inbox_id or ''}|{kind}|{'' if code is None else code}|{title[:300]}"
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()


class Membership(models.Model):
    """A staff user's place in an inbox. Admins (superusers) need none: they see everything."""

    class Role(models.TextChoices):
        ATTENDANT = "attendant", _("Attendant")
        SUPERVISOR = "supervisor", _("Supervisor")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    inbox = models.ForeignKey(Inbox, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("inbox"))
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.ATTENDANT)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("inbox membership")
        verbose_name_plural = _("inbox memberships")
        ordering = ["inbox", "user"]
        constraints = [
            # One role per user and inbox: the access module reads it as a single answer.
            models.UniqueConstraint(fields=["user", "inbox"], name="conversations_membership_user_inbox_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.inbox} ({self.get_role_display()})"


class Alert(models.Model):
    """Something an admin must act on: an expired token, a restricted account, a rejected template."""

    class Kind(models.TextChoices):
        TOKEN = "token", _("Access token")
        ACCOUNT = "account", _("Account restricted")
        PERMISSION = "permission", _("Permission")
        TEMPLATE = "template", _("Template")
        WEBHOOK = "webhook", _("Webhook")

    inbox = models.ForeignKey(Inbox, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts")
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    code = models.IntegerField(_("error code"), null=True, blank=True)
    title = models.CharField(_("title"), max_length=300)
    details = models.TextField(_("details"), blank=True)
    # Identifies "the same alert" (inbox, kind, code, title) so two workers raising it at once
    # leave one open row: the partial unique constraint below decides, not a check-then-insert.
    dedupe_key = models.CharField(_("deduplication key"), max_length=64, blank=True, default="", editable=False)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    resolved = models.DateTimeField(_("resolved"), null=True, blank=True)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(resolved__isnull=True) & ~Q(dedupe_key=""),
                name="conversations_alert_one_open_uniq",
            ),
        ]
        indexes = [
            # The admin lists open alerts first.
            models.Index(fields=["resolved", "-created"], name="conv_alert_open_idx"),
        ]

    def __str__(self) -> str:
        return f"[{self.get_kind_display()}] {self.title}"


class Customer(models.Model):
    """A WhatsApp user, keyed by wa_id, or by Meta's business-scoped user id when there is no wa_id."""

    wa_id = models.CharField(_("WhatsApp ID"), max_length=64, blank=True, default="")
    user_id = models.CharField(_("business-scoped user ID"), max_length=128, blank=True, default="")
    parent_user_id = models.CharField(_("parent business-scoped user ID"), max_length=128, blank=True, default="")
    username = models.CharField(_("username"), max_length=128, blank=True, default="")
    name = models.CharField(_("profile name"), max_length=256, blank=True, default="")
    phone = models.CharField(_("phone (E.164)"), max_length=32, blank=True, default="")
    # What the business's people know about this customer (never shown to the customer).
    notes = models.TextField(_("notes"), blank=True, default="")
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["name", "id"]
        constraints = [
            # Intake looks customers up by wa_id; two workers must never create two rows.
            models.UniqueConstraint(fields=["wa_id"], condition=~Q(wa_id=""), name="conversations_customer_wa_id_uniq"),
            # Username-only users (no wa_id) are found by their business-scoped user id.
            models.UniqueConstraint(
                fields=["user_id"], condition=~Q(user_id=""), name="conversations_customer_user_id_uniq"
            ),
        ]
        indexes = [models.Index(fields=["phone"], name="conv_customer_phone_idx")]

    def __str__(self) -> str:
        label = self.phone or self.wa_id or self.user_id or f"#{self.pk}"
        return f"{self.name} ({label})" if self.name else label

    @property
    def recipient(self) -> dict[str, str]:
        """Where the Graph API should send: the phone when known, else the business-scoped id."""
        if self.phone:
            return {"to": self.phone}
        if self.wa_id:
            return {"to": self.wa_id}
        return {"recipient": self.user_id}


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def open(self) -> ConversationQuerySet:
        return self.exclude(status=Conversation.Status.CLOSED)

    def waiting(self) -> ConversationQuerySet:
        """The queue: handed over by the bot (or returned), no attendant yet."""
        return self.filter(status=Conversation.Status.QUEUED)

    def with_bot(self) -> ConversationQuerySet:
        return self.filter(status=Conversation.Status.BOT)

    def assigned_to(self, user: Any) -> ConversationQuerySet:
        """Open conversations this attendant holds now (closed ones keep their last assignee)."""
        return self.filter(status=Conversation.Status.ASSIGNED, assignee=user)

    def in_inboxes(self, inbox_ids: Any) -> ConversationQuerySet:
        """``inbox_ids``: ids or a ``values("inbox_id")`` subquery (kept lazy: one SQL query)."""
        return self.filter(inbox_id__in=inbox_ids)

    def live(self) -> ConversationQuerySet:
        """Not closed, spelled as the statuses that are (the partial index of migration 0005,
        conv_conversation_live_idx, has this very predicate)."""
        Status = Conversation.Status
        return self.filter(status__in=[Status.BOT, Status.QUEUED, Status.ASSIGNED])

    def recent_first(self) -> ConversationQuerySet:
        """Newest activity first (conv_conversation_last_idx and the per-inbox indexes)."""
        return self.order_by("-last_message", "-id")

    def longest_waiting_first(self) -> ConversationQuerySet:
        """The queue's order: the highest priority first, then whoever has waited longest in the
        queue (then since their last message) on top; the same order as the console's "next
        waiting conversation" and automatic assignment."""
        return self.order_by(
            "-priority",
            models.F("queued_since").asc(nulls_last=True),
            models.F("last_inbound").asc(nulls_last=True),
            "opened",
            "id",
        )

    def with_label(self, label_id: int) -> ConversationQuerySet:
        return self.filter(labels__id=label_id)

    def active_between(self, start: Any = None, end: Any = None) -> ConversationQuerySet:
        """Last activity in [start, end) (either may be None)."""
        qs = self
        if start is not None:
            qs = qs.filter(last_message__gte=start)
        if end is not None:
            qs = qs.filter(last_message__lt=end)
        return qs


class Conversation(models.Model):
    class Status(models.TextChoices):
        BOT = "bot", _("With the bot")
        QUEUED = "queued", _("Waiting for an attendant")
        ASSIGNED = "assigned", _("With an attendant")
        CLOSED = "closed", _("Closed")

    inbox = models.ForeignKey(Inbox, on_delete=models.PROTECT, related_name="conversations")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="conversations")
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.BOT)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
        verbose_name=_("assigned attendant"),
    )
    opened = models.DateTimeField(_("opened"), default=timezone.now)
    closed = models.DateTimeField(_("closed"), null=True, blank=True)
    last_inbound = models.DateTimeField(_("last customer message"), null=True, blank=True)
    last_message = models.DateTimeField(_("last message"), null=True, blank=True)
    # Click-to-WhatsApp ad that started the conversation (the whole referral object is kept).
    referral = models.JSONField(_("ad referral"), default=dict, blank=True)
    ctwa_clid = models.CharField(_("click ID (ctwa_clid)"), max_length=512, blank=True, default="")
    referral_source = models.CharField(_("referral source"), max_length=1024, blank=True, default="")
    referral_headline = models.CharField(_("referral headline"), max_length=1024, blank=True, default="")
    labels = models.ManyToManyField("Label", blank=True, related_name="conversations", verbose_name=_("labels"))
    # The queue's order: priority first (set by a handoff), then who has waited longest since
    # entering the queue.
    DEFAULT_PRIORITY = 1
    priority = models.PositiveSmallIntegerField(_("priority"), default=DEFAULT_PRIORITY)
    queued_since = models.DateTimeField(_("waiting since"), null=True, blank=True)
    # The attendant's note when closing (also kept on the ownership audit row).
    resolution = models.TextField(_("resolution"), blank=True, default="")
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_message", "-id"]
        constraints = [
            # One open conversation per customer and inbox: intake attaches new messages to it,
            # and two workers racing on a customer's first message still open only one.
            models.UniqueConstraint(
                fields=["inbox", "customer"],
                condition=~Q(status="closed"),
                name="conversations_conversation_one_open_uniq",
            ),
        ]
        indexes = [
            # Queue and console lists: conversations of an inbox in a status, newest activity first.
            models.Index(fields=["inbox", "status", "-last_message"], name="conv_conversation_inbox_idx"),
            # A supervisor's "all" list: every status of their inboxes, newest activity first.
            models.Index(fields=["inbox", "-last_message"], name="conv_conversation_recent_idx"),
            # The console's catch-up sync: conversations of the user's inboxes changed since a cursor.
            models.Index(fields=["inbox", "updated"], name="conv_conversation_updated_idx"),
            models.Index(fields=["assignee", "status"], name="conv_conversation_assign_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.customer} [{self.get_status_display()}]"

    def window_closes_at(self) -> timezone.datetime | None:
        return self.last_inbound + SERVICE_WINDOW if self.last_inbound else None

    def is_window_open(self, now: timezone.datetime | None = None) -> bool:
        closes = self.window_closes_at()
        return closes is not None and (now or timezone.now()) < closes


class Message(models.Model):
    class Direction(models.TextChoices):
        IN = "in", _("Inbound")
        OUT = "out", _("Outbound")
        # Never sent: internal notes between attendants and system events ("taken over by Ana").
        INTERNAL = "internal", _("Internal")

    class SenderKind(models.TextChoices):
        CUSTOMER = "customer", _("Customer")
        BOT = "bot", _("Bot")
        ATTENDANT = "attendant", _("Attendant")
        SYSTEM = "system", _("System")
        # Sent by the business from the WhatsApp Business app on the phone (coexistence echoes).
        PHONE_APP = "phone_app", _("WhatsApp Business app")

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PENDING = "pending", _("Waiting to be sent")
        # The request reached Meta but its answer was lost: we wait for a status webhook before
        # trying again, so a retry never sends the message twice.
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")
        PLAYED = "played", _("Played")
        FAILED = "failed", _("Failed")
        # The answer to a send was lost and no status webhook has linked it since: it may or may
        # not have reached the customer. Never sent again automatically; a person decides.
        UNCONFIRMED = "unconfirmed", _("Not confirmed")

    class MediaStatus(models.TextChoices):
        NONE = "", _("No media")
        PENDING = "pending", _("Waiting to download")
        DONE = "done", _("Downloaded")
        FAILED = "failed", _("Download failed")
        UPLOADED = "uploaded", _("Uploaded by us")

    uuid = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(_("direction"), max_length=8, choices=Direction.choices)
    sender_kind = models.CharField(_("sender"), max_length=16, choices=SenderKind.choices)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    type = models.CharField(_("type"), max_length=40)
    text = models.TextField(_("text"), blank=True, default="")
    # The type-specific object as WhatsApp sent it (location, contacts, interactive, order...).
    content = models.JSONField(_("content"), default=dict, blank=True)
    # Meta's media id (inbound) and the stored file.
    media_id = models.CharField(_("media ID"), max_length=255, blank=True, default="")
    media = models.FileField(_("file"), upload_to="whatsapp/%Y/%m/", max_length=500, blank=True)
    media_mime = models.CharField(_("MIME type"), max_length=255, blank=True, default="")
    media_size = models.BigIntegerField(_("size (bytes)"), null=True, blank=True)
    media_sha256 = models.CharField(_("SHA-256"), max_length=128, blank=True, default="")
    media_filename = models.CharField(_("file name"), max_length=500, blank=True, default="")
    caption = models.TextField(_("caption"), blank=True, default="")
    # A voice note's words, from the provider's transcription endpoint (see bots).
    transcript = models.TextField(_("transcript"), blank=True, default="")
    media_status = models.CharField(
        _("media status"), max_length=10, choices=MediaStatus.choices, blank=True, default=MediaStatus.NONE
    )
    media_attempts = models.PositiveSmallIntegerField(_("download attempts"), default=0)
    media_error = models.TextField(_("media error"), blank=True, default="")
    # Reply context: the wamid the customer replied to (and our row for it when we have it).
    context_wamid = models.CharField(_("reply to (wamid)"), max_length=255, blank=True, default="")
    reply_to = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replies", verbose_name=_("reply to")
    )
    forwarded = models.BooleanField(_("forwarded"), default=False)
    frequently_forwarded = models.BooleanField(_("frequently forwarded"), default=False)
    referral = models.JSONField(_("referral"), default=dict, blank=True)
    # Current reaction of each side: {"customer": "👍", "business": "❤️"}.
    reactions = models.JSONField(_("reactions"), default=dict, blank=True)
    edit_history = models.JSONField(_("edit history"), default=list, blank=True)
    edited = models.DateTimeField(_("edited"), null=True, blank=True)
    revoked = models.DateTimeField(_("deleted by the customer"), null=True, blank=True)
    # Reactions, edits and revokes: the wamid of the message they change, and whether that
    # message was still unknown when they arrived (applied when it arrives).
    target_wamid = models.CharField(_("acts on (wamid)"), max_length=255, blank=True, default="")
    action_pending = models.BooleanField(_("waiting for its message"), default=False)
    # WhatsApp's id. NULL (not "") for outbound rows Meta has not accepted yet, so the unique
    # constraint admits many of them.
    wamid = models.CharField(_("WhatsApp message ID"), max_length=255, null=True, blank=True)  # noqa: DJ001
    wa_timestamp = models.DateTimeField(_("WhatsApp time"), default=timezone.now)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.RECEIVED)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    played_at = models.DateTimeField(_("played at"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed at"), null=True, blank=True)
    error_code = models.IntegerField(_("error code"), null=True, blank=True)
    error_title = models.CharField(_("error title"), max_length=500, blank=True, default="")
    error_details = models.TextField(_("error details"), blank=True, default="")
    pricing = models.JSONField(_("pricing"), default=dict, blank=True)
    # Outbound: the Graph API body to send, stored before the send task runs.
    payload = models.JSONField(_("send payload"), default=dict, blank=True)
    send_attempts = models.PositiveSmallIntegerField(_("send attempts"), default=0)
    send_started = models.DateTimeField(_("last send attempt"), null=True, blank=True)
    # Inbound: the message object exactly as it arrived, for fields we do not model yet.
    raw = models.JSONField(_("raw"), default=dict, blank=True)
    event = models.ForeignKey("WebhookEvent", on_delete=models.SET_NULL, null=True, blank=True, related_name="messages")
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["wa_timestamp", "id"]
        constraints = [
            # Meta retries for days and sends a copy per subscribed app: one row per wamid.
            models.UniqueConstraint(fields=["wamid"], name="conversations_message_wamid_uniq"),
        ]
        indexes = [
            # The console shows a conversation's messages in WhatsApp-timestamp order.
            models.Index(fields=["conversation", "wa_timestamp", "id"], name="conv_message_conv_ts_idx"),
            # Sweeps: outbound rows waiting to be sent or confirmed, media waiting to download.
            models.Index(
                fields=["status", "send_started"],
                condition=Q(status__in=["pending", "sending", "unconfirmed"]),
                name="conv_message_unsent_idx",
            ),
            models.Index(
                fields=["media_status"],
                condition=Q(media_status__in=["pending", "failed"]),
                name="conv_message_media_todo_idx",
            ),
            # A new message looks for reactions/edits/revokes that arrived before it.
            models.Index(
                fields=["target_wamid"], condition=Q(action_pending=True), name="conv_message_pending_act_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {message_type_label(self.type)} {self.wamid or self.uuid}"

    @property
    def is_media(self) -> bool:
        return self.type in MEDIA_TYPES

    @property
    def callback_data(self) -> str:
        """Sent as biz_opaque_callback_data so a status webhook can find this row without its wamid."""
        return f"atende:{self.uuid}"


MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})


class OrphanStatus(models.Model):
    """A status update for a wamid we do not know (yet): the send answer may still be on its way."""

    wamid = models.CharField(max_length=255)
    status = models.CharField(max_length=10)
    timestamp = models.DateTimeField()
    data = models.JSONField(default=dict)
    event = models.ForeignKey("WebhookEvent", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("unmatched status")
        verbose_name_plural = _("unmatched statuses")
        constraints = [
            # Replays of the same webhook keep one copy.
            models.UniqueConstraint(fields=["wamid", "status", "timestamp"], name="conversations_orphan_status_uniq"),
        ]
        indexes = [models.Index(fields=["wamid"], name="conv_orphan_wamid_idx")]

    def __str__(self) -> str:
        return f"{self.wamid} {self.status}"


class WebhookEventQuerySet(models.QuerySet["WebhookEvent"]):
    def due(self, now: timezone.datetime | None = None) -> WebhookEventQuerySet:
        """Events a worker may apply now: pending, or failed and due for a retry."""
        now = now or timezone.now()
        return self.filter(
            Q(state=WebhookEvent.State.PENDING) | Q(state=WebhookEvent.State.FAILED, next_attempt__lte=now),
            signature_valid=True,
            attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS,
        )


class WebhookEvent(models.Model):
    """Every POST to the webhook, byte for byte, kept before it is answered."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        DONE = "done", _("Processed")
        FAILED = "failed", _("Failed (will retry)")
        # Kept but not applied: unknown phone number, partial envelope, not WhatsApp.
        FLAGGED = "flagged", _("Flagged")
        REJECTED = "rejected", _("Rejected (bad signature)")

    received = models.DateTimeField(_("received"), default=timezone.now)
    # Emptied after WEBHOOK_RETENTION_DAYS once processed (``body_purged`` says when); a
    # rejected (badly signed) body keeps only its first KB.
    body = models.BinaryField(_("body"))
    body_size = models.PositiveIntegerField(_("body size (bytes)"), null=True, blank=True)
    body_purged = models.DateTimeField(_("body purged"), null=True, blank=True)
    body_sha256 = models.CharField(_("body SHA-256"), max_length=64)
    signature = models.CharField(_("signature header"), max_length=200, blank=True, default="")
    signature_valid = models.BooleanField(_("signature valid"), default=False)
    remote_addr = models.GenericIPAddressField(_("remote address"), null=True, blank=True)
    inbox = models.ForeignKey(Inbox, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    fields = models.CharField(_("fields"), max_length=300, blank=True, default="")
    # The customer the body is about ("<phone_number_id>:<wa_id>"), read when it is stored:
    # one customer's events are applied in order even with several workers.
    route = models.CharField(_("route"), max_length=200, blank=True, default="")
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt = models.DateTimeField(_("next attempt"), null=True, blank=True)
    processed = models.DateTimeField(_("processed"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True, default="")
    notes = models.TextField(_("notes"), blank=True, default="")

    objects = WebhookEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received", "-id"]
        indexes = [
            # The dispatcher scans only unfinished events.
            models.Index(
                fields=["state", "received"],
                condition=Q(state__in=["pending", "failed"]),
                name="conv_event_todo_idx",
            ),
            # Ordering guard: is an earlier event of the same customer still waiting?
            models.Index(
                fields=["route", "id"], condition=Q(state="pending") & ~Q(route=""), name="conv_event_route_idx"
            ),
            models.Index(fields=["body_sha256"], name="conv_event_sha_idx"),
            models.Index(fields=["-received"], name="conv_event_received_idx"),
            # Retention: bodies still to purge, oldest first (already purged rows drop out).
            models.Index(
                fields=["received"],
                condition=Q(body_purged__isnull=True, state__in=["done", "rejected"]),
                name="conv_event_purge_idx",
            ),
        ]

    def __str__(self) -> str:
        # In the business time zone and the locale's format, like every other date people see.
        received = formats.date_format(timezone.localtime(self.received), "SHORT_DATETIME_FORMAT")
        return f"#{self.pk} {received} {self.get_state_display()}"


class Label(models.Model):
    """A tag people put on conversations (and filter by); per inbox, or for every inbox."""

    inbox = models.ForeignKey(
        Inbox, on_delete=models.CASCADE, null=True, blank=True, related_name="labels", verbose_name=_("inbox")
    )
    name = models.CharField(_("name"), max_length=50)
    color = models.CharField(_("colour"), max_length=7, default="#6b7280", help_text=_("A CSS colour like #1f7a4d."))
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("label")
        verbose_name_plural = _("labels")
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["inbox", "name"], name="conversations_label_inbox_name_uniq"),
        ]

    def __str__(self) -> str:
        return self.name


class CannedResponse(models.Model):
    """A ready answer an attendant inserts by typing ``/shortcut`` in the composer."""

    inbox = models.ForeignKey(
        Inbox, on_delete=models.CASCADE, null=True, blank=True, related_name="canned_responses", verbose_name=_("inbox")
    )
    shortcut = models.SlugField(_("shortcut"), max_length=40)
    title = models.CharField(_("title"), max_length=100)
    text = models.TextField(_("text"))
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("canned response")
        verbose_name_plural = _("canned responses")
        ordering = ["shortcut", "id"]
        constraints = [
            models.UniqueConstraint(fields=["inbox", "shortcut"], name="conversations_canned_inbox_shortcut_uniq"),
        ]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


class MessageTemplate(models.Model):
    """An approved WhatsApp message template of an inbox's business account, synced from Meta."""

    class Status(models.TextChoices):
        APPROVED = "APPROVED", _("Approved")
        PENDING = "PENDING", _("Pending review")
        REJECTED = "REJECTED", _("Rejected")
        PAUSED = "PAUSED", _("Paused")
        DISABLED = "DISABLED", _("Disabled")
        OTHER = "OTHER", _("Other")

    inbox = models.ForeignKey(Inbox, on_delete=models.CASCADE, related_name="templates", verbose_name=_("inbox"))
    meta_id = models.CharField(_("Meta template ID"), max_length=64, blank=True, default="")
    name = models.CharField(_("name"), max_length=512)
    language = models.CharField(_("language"), max_length=20)
    category = models.CharField(_("category"), max_length=40, blank=True, default="")
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.OTHER)
    # The template's components as Meta describes them (header, body with {{1}} placeholders...).
    components = models.JSONField(_("components"), default=list, blank=True)
    synced = models.DateTimeField(_("synced"), default=timezone.now)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["name", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["inbox", "name", "language"], name="conversations_template_inbox_name_lang_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"
