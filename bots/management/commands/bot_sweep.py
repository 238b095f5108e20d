"""Answer customers the reply pipeline left waiting (what beat's sweep does), by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bots import pipeline, sweep


class Command(BaseCommand):
    help = "Find bot-owned conversations whose customer waits without an answer, and answer them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", action="store_true", help="Queue the turns instead of running them here.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["queue"]:
            ids = sweep.queue_unanswered()
            self.stdout.write(f"queued {len(ids)}")
            return
        outcomes: dict[str, int] = {}
        for conversation_id in sweep.overdue():
            run = pipeline.run_turn(conversation_id)
            outcome = run.outcome if run is not None else "nothing"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        self.stdout.write(" ".join(f"{k}={v}" for k, v in sorted(outcomes.items())) or "nothing to answer")
