"""What the API shows and accepts. Reading serializers never look anything up by an id from
the request: the views hand them objects already found through ``conversations.access``.

Customers' phone numbers follow the console's rule (``console.timeline.may_see_phone``):
whole for admins and the inbox's supervisors, masked for attendants. ``Phones`` answers it
for a whole page with one query.

Field help texts are API documentation, in English like the rest of the schema; the messages
a person may read (validation errors, refusals) are translated.
"""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console import timeline
from console.actions import NOTES_MAX, RESOLUTION_MAX
from conversations import access
from conversations.models import CannedResponse, Conversation, Customer, Label, Membership, Message, MessageTemplate
from handoffs import services as handoffs

Status = Conversation.Status


class Phones:
    """Who may see whole numbers, for one request (roles read once, on first use)."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self.admin = access.is_admin(user)
        self._roles: dict[int, str] | None = None

    def roles(self) -> dict[int, str]:
        if self._roles is None:
            self._roles = dict(Membership.objects.filter(user=self.user).values_list("inbox_id", "role"))
        return self._roles

    def full_in(self, inbox_id: int) -> bool:
        """Whole numbers for the customers of this inbox (``timeline.may_see_phone``)."""
        if self.admin:
            return True
        role = self.roles().get(inbox_id)
        return role is not None and timeline.may_see_phone(self.user, inbox_id, role)


def _phones(serializer: serializers.Serializer) -> Phones:
    phones = serializer.context.get("phones")
    if phones is None:
        phones = Phones(serializer.context["request"].user)
        serializer.context["phones"] = phones
    return phones


# --- Small pieces ------------------------------------------------------------------------------


class UserBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    name = serializers.SerializerMethodField()

    def get_name(self, user: Any) -> str:
        return user.get_full_name() or user.username


class InboxBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class LabelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Label
        fields = ["id", "name", "color", "inbox"]
        read_only_fields = fields


class CustomerBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    username = serializers.CharField(read_only=True)
    phone = serializers.CharField(read_only=True, help_text="Masked for attendants, whole for supervisors.")


def customer_brief(customer: Customer, *, full: bool) -> dict[str, Any]:
    return {
        "id": customer.pk,
        "name": customer.name,
        "username": customer.username,
        "phone": timeline.display_phone(customer, full=full),
    }


# --- Conversations -----------------------------------------------------------------------------


class ConversationSerializer(serializers.ModelSerializer):
    inbox = InboxBriefSerializer(read_only=True)
    customer = serializers.SerializerMethodField()
    assignee = UserBriefSerializer(read_only=True, allow_null=True)
    labels = LabelSerializer(many=True, read_only=True)
    window_open = serializers.SerializerMethodField()
    window_closes_at = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = [
            "id",
            "inbox",
            "customer",
            "status",
            "assignee",
            "labels",
            "opened",
            "closed",
            "last_inbound",
            "last_message",
            "window_open",
            "window_closes_at",
            "resolution",
            "referral_source",
            "referral_headline",
        ]
        read_only_fields = fields

    @extend_schema_field(CustomerBriefSerializer)
    def get_customer(self, conversation: Conversation) -> dict[str, Any]:
        return customer_brief(conversation.customer, full=_phones(self).full_in(conversation.inbox_id))

    def get_window_open(self, conversation: Conversation) -> bool:
        return conversation.is_window_open()

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_window_closes_at(self, conversation: Conversation) -> Any:
        return conversation.window_closes_at()


class ConversationDetailSerializer(ConversationSerializer):
    actions = serializers.SerializerMethodField(
        help_text="The ownership changes this user may attempt now (take_over, transfer, close...)."
    )

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "actions"]
        read_only_fields = fields

    def get_actions(self, conversation: Conversation) -> list[str]:
        return sorted(handoffs.available_actions(self.context["request"].user, conversation))


class ConversationFilterSerializer(serializers.Serializer):
    """The list's query string; a bad value is a 400, never silently ignored."""

    status = serializers.ChoiceField(choices=Status.choices, required=False)
    inbox = serializers.IntegerField(required=False, min_value=1)
    assignee = serializers.IntegerField(required=False, min_value=1)
    label = serializers.IntegerField(required=False, min_value=1)
    search = serializers.CharField(required=False, max_length=100, allow_blank=True)
    since = serializers.DateField(required=False, help_text="Last activity on or after this day.")
    until = serializers.DateField(required=False, help_text="Last activity on or before this day.")


class TransferSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=[("attendant", "attendant"), ("queue", "queue"), ("bot", "bot")])
    assignee = serializers.IntegerField(
        required=False, min_value=1, help_text="The member of the inbox to hand it to (with to=attendant)."
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=RESOLUTION_MAX, default="")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["to"] == "attendant" and not data.get("assignee"):
            raise serializers.ValidationError({"assignee": _("Choose an attendant of this inbox.")})
        return data


class CloseSerializer(serializers.Serializer):
    resolution = serializers.CharField(required=False, allow_blank=True, max_length=RESOLUTION_MAX, default="")


class ReopenSerializer(serializers.Serializer):
    to = serializers.ChoiceField(
        choices=[(Status.QUEUED, "queued"), (Status.BOT, "bot"), (Status.ASSIGNED, "assigned")],
        required=False,
        allow_null=True,
        default=None,
        help_text="Where it goes; by default to the user when they may hold it, else to the queue.",
    )


# --- Messages ----------------------------------------------------------------------------------


class MediaSerializer(serializers.Serializer):
    url = serializers.CharField(read_only=True, help_text="Served after an access check.")
    mime = serializers.CharField(read_only=True)
    size = serializers.IntegerField(read_only=True, allow_null=True)
    filename = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)


class MessageSerializer(serializers.ModelSerializer):
    sender = UserBriefSerializer(read_only=True, allow_null=True)
    media = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "uuid",
            "conversation",
            "direction",
            "sender_kind",
            "sender",
            "type",
            "text",
            "caption",
            "content",
            "media",
            "status",
            "wa_timestamp",
            "sent_at",
            "delivered_at",
            "read_at",
            "played_at",
            "failed_at",
            "error_code",
            "error_title",
            "reply_to",
            "reactions",
            "edited",
            "revoked",
            "forwarded",
        ]
        read_only_fields = fields

    @extend_schema_field(MediaSerializer(allow_null=True))
    def get_media(self, message: Message) -> dict[str, Any] | None:
        if not message.is_media:
            return None
        return {
            "url": reverse("console:media", args=[message.pk]),
            "mime": message.media_mime,
            "size": message.media_size,
            "filename": message.media_filename,
            "status": message.media_status,
        }


class SendTextSerializer(serializers.Serializer):
    # Lengths are checked by conversations.outbound (the one rule, with its message).
    text = serializers.CharField(trim_whitespace=False, allow_blank=True)
    reply_to = serializers.IntegerField(
        required=False, min_value=1, help_text="A message of this conversation to quote."
    )


class SendMediaSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    caption = serializers.CharField(required=False, allow_blank=True, default="")


class SendTemplateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=512)
    language = serializers.CharField(max_length=20)
    components = serializers.ListField(
        child=serializers.DictField(), required=False, default=list, help_text="As in the Graph API."
    )

    def validate_components(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Stored in a JSON column: PostgreSQL refuses NUL characters there.
        if "\\u0000" in json.dumps(value):
            raise serializers.ValidationError(_("Template components cannot contain NUL characters."))
        return value


# --- Customers and the inbox's catalogues ------------------------------------------------------


class CustomerSerializer(serializers.ModelSerializer):
    phone = serializers.SerializerMethodField(help_text="Masked for attendants, whole for supervisors.")

    class Meta:
        model = Customer
        fields = ["id", "name", "username", "phone", "created"]
        read_only_fields = fields

    def get_phone(self, customer: Customer) -> str:
        # ``phone_full`` is annotated by the view (see CustomerViewSet.get_queryset).
        return timeline.display_phone(customer, full=bool(getattr(customer, "phone_full", False)))


class CustomerDetailSerializer(CustomerSerializer):
    notes = serializers.CharField(read_only=True, max_length=NOTES_MAX)

    class Meta(CustomerSerializer.Meta):
        fields = [*CustomerSerializer.Meta.fields, "notes"]
        read_only_fields = fields


class CannedResponseSerializer(serializers.ModelSerializer):
    class Meta:
        model = CannedResponse
        fields = ["id", "inbox", "shortcut", "title", "text"]
        read_only_fields = fields


class MessageTemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = MessageTemplate
        fields = ["id", "inbox", "name", "language", "category", "status", "components"]
        read_only_fields = fields


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True, help_text="Send it as: Authorization: Token <token>")
