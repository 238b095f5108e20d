"""Who owned a conversation when, and why it changed hands."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from conversations.models import Conversation


class OwnershipChange(models.Model):
    """One row per ownership transition (the audit trail): written in the same transaction as
    the change itself by ``handoffs.services``, never edited afterwards."""

    class Action(models.TextChoices):
        TAKE_OVER = "take_over", _("Taken over")
        # The bot (or an echo from the phone app) handed the conversation to people.
        HANDOFF = "handoff", _("Handed over by the bot")
        ASSIGN = "assign", _("Assigned")
        TRANSFER = "transfer", _("Transferred to an attendant")
        TO_QUEUE = "to_queue", _("Returned to the queue")
        TO_BOT = "to_bot", _("Returned to the bot")
        CLOSE = "close", _("Closed")
        REOPEN = "reopen", _("Reopened")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="ownership_changes", verbose_name=_("conversation")
    )
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    # Empty for the system (the bot, automatic assignment, sweeps).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("done by"),
    )
    from_status = models.CharField(_("from status"), max_length=16, choices=Conversation.Status.choices)
    from_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("from attendant"),
    )
    to_status = models.CharField(_("to status"), max_length=16, choices=Conversation.Status.choices)
    to_assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("to attendant"),
    )
    # Why (a transfer note), or the resolution note of a close.
    reason = models.TextField(_("reason"), blank=True, default="")
    created = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        verbose_name = _("ownership change")
        verbose_name_plural = _("ownership changes")
        ordering = ["-created", "-id"]
        indexes = [
            # A conversation's timeline ("taken over by Ana") and its latest resolution note.
            models.Index(fields=["conversation", "created"], name="handoffs_change_conv_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.conversation_id} {self.get_action_display()}: {self.from_status} → {self.to_status}"


class Attendant(models.Model):
    """A staff user's working state: presence (who can take conversations now) and capacity."""

    class Presence(models.TextChoices):
        ONLINE = "online", _("Online")
        AWAY = "away", _("Away")
        OFFLINE = "offline", _("Offline")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attendant", verbose_name=_("user")
    )
    presence = models.CharField(_("presence"), max_length=8, choices=Presence.choices, default=Presence.OFFLINE)
    presence_changed = models.DateTimeField(_("presence changed"), null=True, blank=True)
    # The most open conversations automatic assignment gives this person at once.
    capacity = models.PositiveSmallIntegerField(_("capacity"), default=5)
    # Console preferences: a sound and a desktop notification when a conversation is assigned.
    sound = models.BooleanField(_("play a sound"), default=True)
    # Fairness among equals: of two online attendants with as few open conversations, the one
    # who received a conversation longest ago gets the next.
    last_assigned = models.DateTimeField(_("last assigned"), null=True, blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("attendant")
        verbose_name_plural = _("attendants")
        ordering = ["user__username"]
        indexes = [models.Index(fields=["presence"], name="handoffs_att_presence_idx")]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_presence_display()})"


class Handoff(models.Model):
    """The packet a person receives with a conversation the bot handed over: why, how urgent,
    a summary and the lead data, and when it was requested, assigned, first answered and
    closed. At most one open handoff per conversation."""

    class Reason(models.TextChoices):
        CUSTOMER_REQUEST = "customer_request", _("Customer asked for a person")
        COMPLAINT = "complaint", _("Complaint")
        BILLING = "billing", _("Payment or refund dispute")
        CANCELLATION = "cancellation", _("Cancellation")
        EMERGENCY = "emergency", _("Health emergency")
        FRUSTRATION = "frustration", _("Customer frustrated")
        TOPIC = "topic", _("Topic handled by people")
        MODEL = "model", _("The bot decided")
        BOT_FAILURE = "bot_failure", _("The bot failed")
        TOO_MANY_TURNS = "too_many_turns", _("Too many bot replies")
        AUDIO = "audio", _("Voice note the bot cannot hear")
        PHONE_APP = "phone_app", _("Answered from the WhatsApp Business app")
        BOT_DISABLED = "bot_disabled", _("The bot is off")
        OTHER = "other", _("Other")

    class Priority(models.IntegerChoices):
        LOW = 0, _("Low")
        NORMAL = 1, _("Normal")
        HIGH = 2, _("High")
        URGENT = 3, _("Urgent")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="handoffs", verbose_name=_("conversation")
    )
    reason = models.CharField(_("reason"), max_length=20, choices=Reason.choices)
    reason_text = models.TextField(_("details"), blank=True, default="")
    priority = models.PositiveSmallIntegerField(_("priority"), choices=Priority.choices, default=Priority.NORMAL)
    summary = models.TextField(_("summary"), blank=True, default="")
    lead = models.JSONField(_("lead data"), default=dict, blank=True)
    # Asked for while the business was closed: the customer was told when people are back.
    out_of_hours = models.BooleanField(_("out of hours"), default=False)
    requested = models.DateTimeField(_("requested"), default=timezone.now)
    assigned = models.DateTimeField(_("assigned"), null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("attendant"),
    )
    first_answered = models.DateTimeField(_("first answered"), null=True, blank=True)
    closed = models.DateTimeField(_("closed"), null=True, blank=True)
    # What the customer was last told about the wait, and when (reminders when it runs long).
    notified = models.DateTimeField(_("customer last told about the wait"), null=True, blank=True)
    csat_asked = models.DateTimeField(_("rating asked"), null=True, blank=True)
    csat_score = models.PositiveSmallIntegerField(_("rating (1 to 5)"), null=True, blank=True)
    csat_answered = models.DateTimeField(_("rating answered"), null=True, blank=True)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("handoff")
        verbose_name_plural = _("handoffs")
        ordering = ["-requested", "-id"]
        constraints = [
            # One open handoff per conversation: a second request updates it instead.
            models.UniqueConstraint(
                fields=["conversation"], condition=Q(closed__isnull=True), name="handoffs_handoff_one_open_uniq"
            ),
            models.CheckConstraint(
                condition=Q(csat_score__isnull=True) | Q(csat_score__gte=1, csat_score__lte=5),
                name="handoffs_handoff_csat_range",
            ),
        ]
        indexes = [
            # Wait estimates: recent handoffs of an inbox's conversations, by when they were assigned.
            models.Index(fields=["assigned"], name="handoffs_handoff_assigned_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.conversation_id} {self.get_reason_display()} ({self.get_priority_display()})"
