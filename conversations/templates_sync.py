"""Message templates: kept per inbox from Meta (Graph API), and filled in for a send.

Outside the 24-hour window WhatsApp accepts only approved templates, so the console offers
the inbox's ``APPROVED`` ones. ``sync_inbox`` reads every page of ``GET /{waba_id}/
message_templates`` and makes the inbox's rows match it: new ones created, changed ones
updated, the ones Meta no longer lists deleted. A listing that fails half-way deletes nothing
(a partial listing is not proof that a template is gone).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from conversations.models import Inbox, MessageTemplate
from conversations.whatsapp.graph import GraphClient

logger = logging.getLogger(__name__)

STATUSES = frozenset(MessageTemplate.Status.values)
PARAMETER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MEDIA_HEADERS = frozenset({"IMAGE", "VIDEO", "DOCUMENT"})
PARAMETER_MAX = 1024


@dataclass(frozen=True)
class SyncResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.deleted


def can_sync(inbox: Inbox) -> bool:
    return bool(inbox.waba_id and inbox.access_token and inbox.is_active)


def _row(item: dict[str, Any]) -> dict[str, Any] | None:
    name, language = str(item.get("name") or ""), str(item.get("language") or "")
    if not name or not language:
        return None
    status = str(item.get("status") or "").upper()
    components = item.get("components")
    return {
        "name": name[:512],
        "language": language[:20],
        "meta_id": str(item.get("id") or "")[:64],
        "category": str(item.get("category") or "")[:40],
        "status": status if status in STATUSES else MessageTemplate.Status.OTHER,
        "components": components if isinstance(components, list) else [],
    }


def sync_inbox(inbox: Inbox, *, client: GraphClient | None = None) -> SyncResult:
    """Make this inbox's templates match Meta's list. Raises ``GraphError`` if the listing
    fails (nothing is changed then)."""
    if not can_sync(inbox):
        return SyncResult()
    listed = (client or GraphClient(inbox)).list_templates(inbox.waba_id)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for item in listed:
        row = _row(item) if isinstance(item, dict) else None
        if row is not None:
            rows[(row["name"], row["language"])] = row
    created = updated = 0
    now = timezone.now()
    with transaction.atomic():
        existing = {(t.name, t.language): t for t in MessageTemplate.objects.select_for_update().filter(inbox=inbox)}
        for key, row in rows.items():
            template = existing.get(key)
            if template is None:
                MessageTemplate.objects.create(inbox=inbox, synced=now, **row)
                created += 1
                continue
            changed = [field for field, value in row.items() if getattr(template, field) != value]
            for field in changed:
                setattr(template, field, row[field])
            template.synced = now
            template.save(update_fields=[*changed, "synced"])
            updated += bool(changed)
        gone = [t.pk for key, t in existing.items() if key not in rows]
        deleted = MessageTemplate.objects.filter(pk__in=gone).delete()[0] if gone else 0
    result = SyncResult(created=created, updated=updated, deleted=deleted)
    logger.info("templates of inbox %s synced: %s", inbox.pk, result)
    return result


def sync_inbox_id(inbox_id: int) -> SyncResult:
    """For the task: the inbox by id (gone meanwhile: nothing to do)."""
    inbox = Inbox.objects.filter(pk=inbox_id).first()
    return sync_inbox(inbox) if inbox is not None else SyncResult()


def syncable_inboxes() -> list[int]:
    return list(
        Inbox.objects.active().exclude(waba_id="").exclude(access_token="").order_by("pk").values_list("pk", flat=True)
    )


# --- Filling a template in -----------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One input the attendant fills: ``component`` is "header" or "body"; ``key`` is the
    placeholder ("1", or a name for named parameters); ``field`` the form field's name."""

    component: str
    key: str
    kind: str = "text"  # "text", or "image"/"video"/"document" (a link) for a media header

    @property
    def field(self) -> str:
        return f"{self.component}_{self.key}"

    @property
    def named(self) -> bool:
        return not self.key.isdigit()


def _component(template: MessageTemplate, kind: str) -> dict[str, Any] | None:
    for component in template.components or []:
        if isinstance(component, dict) and str(component.get("type") or "").upper() == kind:
            return component
    return None


def _placeholders(text: str) -> list[str]:
    seen: list[str] = []
    for key in PARAMETER.findall(text or ""):
        if key not in seen:
            seen.append(key)
    # Positional ones go in order of their number, whatever the text's order.
    return sorted(seen, key=lambda k: (0, int(k)) if k.isdigit() else (1, seen.index(k)))


def parameters(template: MessageTemplate) -> list[Parameter]:
    params: list[Parameter] = []
    header = _component(template, "HEADER")
    if header is not None:
        header_format = str(header.get("format") or "").upper()
        if header_format == "TEXT":
            params += [Parameter("header", key) for key in _placeholders(str(header.get("text") or ""))]
        elif header_format in MEDIA_HEADERS:
            params.append(Parameter("header", "link", header_format.lower()))
    body = _component(template, "BODY")
    if body is not None:
        params += [Parameter("body", key) for key in _placeholders(str(body.get("text") or ""))]
    return params


def body_text(template: MessageTemplate) -> str:
    body = _component(template, "BODY")
    return str(body.get("text") or "") if body else ""


def header_text(template: MessageTemplate) -> str:
    header = _component(template, "HEADER")
    return str(header.get("text") or "") if header else ""


def components_for(template: MessageTemplate, values: dict[str, str]) -> list[dict[str, Any]]:
    """The ``components`` of a send, from the form's values (``header_1``, ``body_2``...).
    Raises ``ValueError`` with a message for people when a value is missing or too long."""
    by_component: dict[str, list[dict[str, Any]]] = {}
    for param in parameters(template):
        value = str(values.get(param.field) or "").strip()
        if not value:
            raise ValueError(gettext("Fill in every parameter of the template."))
        if len(value) > PARAMETER_MAX:
            raise ValueError(
                gettext("A template parameter can have at most %(max)s characters.") % {"max": PARAMETER_MAX}
            )
        if param.kind != "text":
            if not value.startswith("https://"):
                raise ValueError(gettext("The template's header needs an https:// link to the file."))
            item: dict[str, Any] = {"type": param.kind, param.kind: {"link": value}}
        else:
            item = {"type": "text", "text": value}
            if param.named:
                item["parameter_name"] = param.key
        by_component.setdefault(param.component, []).append(item)
    return [{"type": name, "parameters": items} for name, items in by_component.items()]
