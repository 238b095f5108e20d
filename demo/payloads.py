"""Webhook bodies exactly as Meta shapes them (pure: no database, no HTTP).

Shapes from Meta's webhook reference (see /work/shared/whatsapp/PROTOCOL.md, sections 4-5):
one ``entry`` per WhatsApp Business Account, one ``changes[]`` item with ``field: messages``,
``metadata`` naming the business number, ``contacts`` beside ``messages``.
"""

from __future__ import annotations

from typing import Any

from conversations.models import Inbox
from demo.network import Sent, now_timestamp


def envelope(inbox: Inbox, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": inbox.waba_id or inbox.phone_number_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": inbox.display_number or inbox.phone_number_id,
                                "phone_number_id": inbox.phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def customer_message(
    inbox: Inbox, *, wa_id: str, name: str, wamid: str, kind: str, body: Any, context: str = ""
) -> dict:
    """A customer's message: ``kind`` is Meta's type and ``body`` its object."""
    item: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": now_timestamp(), "type": kind, kind: body}
    if context:
        # Replies (and button replies) name the business message they answer.
        item["context"] = {"from": inbox.display_number or inbox.phone_number_id, "id": context}
    return envelope(
        inbox,
        {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [item]},
    )


def status(inbox: Inbox, sent: Sent, state: str) -> dict:
    """A status webhook for one of the business's sends, echoing its callback data like Meta."""
    item: dict[str, Any] = {
        "id": sent.wamid,
        "status": state,
        "timestamp": now_timestamp(),
        "recipient_id": sent.to,
    }
    if sent.callback_data:
        item["biz_opaque_callback_data"] = sent.callback_data
    if state == "sent" and sent.type != "reaction":
        # Per-message pricing (v24.0): on ``sent`` and on one of delivered/read.
        template = sent.type == "template"
        item["pricing"] = {
            "billable": template,
            "pricing_model": "PMP",
            "category": "utility" if template else "service",
            "type": "regular" if template else "free_customer_service",
        }
    return envelope(inbox, {"statuses": [item]})
