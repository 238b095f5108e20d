"""``manage.py bot_try [--inbox ID]``: customer messages on standard input, one a line, each the
first message of a fresh conversation with the inbox's bot; one JSON object a line out (text,
reply, handoff, reason). The same pipeline as WhatsApp, rolled back: nothing stored or sent."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bots import trial
from conversations import services
from conversations.models import Inbox


class Command(BaseCommand):
    # call_command("bot_try", stdin=...) in tests.
    stealth_options = ("stdin",)
    help = "Try an inbox's bot: one customer message a line on stdin, one JSON answer a line out. Nothing is sent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--inbox", type=int, help="Inbox id (default: the default inbox).")

    def handle(self, *args: Any, **options: Any) -> None:
        inbox = self._inbox(options.get("inbox"))
        stdin = options.get("stdin") or sys.stdin
        for raw in stdin:
            text = raw.rstrip("\r\n")
            if not text.strip():
                continue
            # One at a time: each answer is printed as soon as it is known.
            (result,) = trial.try_messages(inbox, [text])
            self.stdout.write(json.dumps(result.as_json(), ensure_ascii=False))
            self.stdout.flush()

    def _inbox(self, inbox_id: int | None) -> Inbox:
        if inbox_id is None:
            inbox = services.ensure_default_inbox() or Inbox.objects.active().order_by("id").first()
            if inbox is None:
                raise CommandError("No inbox: create one or name it with --inbox.")
            return inbox
        inbox = Inbox.objects.filter(pk=inbox_id).first()
        if inbox is None:
            raise CommandError(f"No inbox {inbox_id}.")
        return inbox
