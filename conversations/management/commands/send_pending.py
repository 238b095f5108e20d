"""Manual run of the outbound sweep: ``manage.py send_pending [--all] [--queue]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conversations import delivery, jobs


class Command(BaseCommand):
    help = (
        "Send outbound messages still waiting (lost tasks), and mark the ones whose send WhatsApp never "
        "confirmed as not confirmed (they are never sent again automatically)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="Include pending messages younger than a minute.")
        parser.add_argument("--queue", action="store_true", help="Queue Celery tasks instead of sending inline.")
        parser.add_argument("--limit", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        # Lost answers past the confirmation window: a person decides whether to send them again.
        unconfirmed = delivery.reconcile_unconfirmed(limit=options["limit"])
        due = delivery.due_pending(min_age=0 if options["all"] else 60, limit=options["limit"])
        results = jobs.run_or_queue(
            due, jobs.SEND_MESSAGE, lambda pk: delivery.deliver(pk).result, queue=options["queue"]
        )
        summary = ", ".join(f"{name}: {count}" for name, count in sorted(results.items())) or "nothing pending"
        self.stdout.write(f"marked not confirmed: {len(unconfirmed)}; {summary}")
