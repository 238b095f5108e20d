"""Manual run of the retention sweep: ``manage.py purge_webhook_bodies [--days N]``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations import retention


class Command(BaseCommand):
    help = (
        "Empty the bodies of processed and rejected webhook events older than WEBHOOK_RETENTION_DAYS "
        "(what beat does every hour). Flagged and failed events keep theirs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="Keep this many days instead of WEBHOOK_RETENTION_DAYS."
        )
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per statement (default 500).")

    def handle(self, *args: Any, **options: Any) -> None:
        days = settings.WEBHOOK_RETENTION_DAYS if options["days"] is None else options["days"]
        if days < 1:
            raise CommandError("--days must be at least 1.")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        total = 0
        while True:
            purged = retention.purge_webhook_bodies(days=days, batch_size=options["batch_size"])
            total += purged
            if not purged:
                break
        self.stdout.write(f"Purged the bodies of {total} webhook events older than {days} days.")
