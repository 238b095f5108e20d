"""Translated names for values WhatsApp defines and we store as they come (message types).

``Message.type`` keeps WhatsApp's own word ("text", "interactive", or a type Meta adds next
year), so it has no choices; people see a translated name for the types we know and the raw
word for the rest. No model imports here: models.py and the admin both use it.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

MESSAGE_TYPE_LABELS = {
    "text": _("Text"),
    "image": _("Image"),
    "video": _("Video"),
    "audio": _("Audio"),
    "document": _("Document"),
    "sticker": _("Sticker"),
    "location": _("Location"),
    "contacts": _("Contacts"),
    "interactive": _("Interactive"),
    "button": _("Button reply"),
    "reaction": _("Reaction"),
    "order": _("Order"),
    "template": _("Template"),
    "system": _("System notice"),
    "edit": _("Edit"),
    "revoke": _("Deletion"),
    "request_welcome": _("Conversation start"),
    "unsupported": _("Unsupported"),
    "unknown": _("Unknown"),
}


def message_type_label(type_: str) -> str:
    """The translated name of a WhatsApp message type, or the type itself when we don't know it."""
    label = MESSAGE_TYPE_LABELS.get(type_)
    return str(label) if label is not None else type_
