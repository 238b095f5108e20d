"""Manual run of the template sync: ``manage.py sync_templates [--inbox ID ...]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations import templates_sync
from conversations.models import Inbox
from conversations.whatsapp.graph import GraphError


class Command(BaseCommand):
    help = (
        "Read the message templates of each inbox's WhatsApp Business Account from Meta and keep "
        "them in step (what beat does every hour)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--inbox", type=int, action="append", default=None, help="Only this inbox (repeatable).")

    def handle(self, *args: Any, **options: Any) -> None:
        ids = options["inbox"] or templates_sync.syncable_inboxes()
        failed = 0
        for inbox_id in ids:
            inbox = Inbox.objects.filter(pk=inbox_id).first()
            if inbox is None:
                raise CommandError(f"No inbox {inbox_id}.")
            if not templates_sync.can_sync(inbox):
                self.stdout.write(f"{inbox}: skipped (inactive, or no WABA id or access token).")
                continue
            try:
                result = templates_sync.sync_inbox(inbox)
            except GraphError as exc:
                failed += 1
                self.stderr.write(f"{inbox}: {exc}")
                continue
            self.stdout.write(f"{inbox}: {result.created} created, {result.updated} updated, {result.deleted} deleted.")
        if failed:
            raise CommandError(f"{failed} inbox(es) could not be synced.")
