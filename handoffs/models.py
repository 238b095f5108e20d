"""Who owned a conversation when, and why it changed hands."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from conversations.models import Conversation


class OwnershipChange(models.Model):
    """One row per ownership transition (the audit trail): written in the same transaction as
    the change itself by ``handoffs.services``, never edited afterwards."""

    class Action(models.TextChoices):
        TAKE_OVER = "take_over", _("Taken over")
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
    created = models.DateTimeField(_("created"), auto_now_add=True)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("attendant")
        verbose_name_plural = _("attendants")
        ordering = ["user__username"]
        indexes = [models.Index(fields=["presence"], name="handoffs_att_presence_idx")]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_presence_display()})"
