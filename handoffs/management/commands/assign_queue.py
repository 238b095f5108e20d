"""Automatic assignment of the queue (what beat runs every HANDOFF_ASSIGN_SECONDS), by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from handoffs import services


class Command(BaseCommand):
    help = (
        "Give queued conversations to online attendants with room; with --offline, first return the "
        "unanswered conversations of attendants gone offline past the grace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--inbox", type=int, default=None, help="Only this inbox's queue.")
        parser.add_argument("--offline", action="store_true", help="Also return_from_offline first.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["offline"]:
            returned = services.return_from_offline()
            self.stdout.write(f"returned to the queue: {len(returned)}")
        given = services.assign_queue(options["inbox"])
        for conversation_id, user_id in given:
            self.stdout.write(f"#{conversation_id} -> user {user_id}")
        self.stdout.write(f"assigned: {len(given)}")
