"""Manual run of the media sweep: ``manage.py retry_media [ids...] [--failed] [--queue]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations import jobs, media
from conversations.models import Message


class Command(BaseCommand):
    help = "Download customer files still waiting; with ids or --failed, reset failed downloads and try again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, help="Message ids to reset and download again.")
        parser.add_argument("--failed", action="store_true", help="Reset every failed download, attempts included.")
        parser.add_argument("--queue", action="store_true", help="Queue Celery tasks instead of downloading inline.")
        parser.add_argument("--limit", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        targets = Message.objects.filter(direction=Message.Direction.IN).exclude(media_id="")
        if options["ids"]:
            chosen = list(targets.filter(pk__in=options["ids"]))
            if len(chosen) != len(set(options["ids"])):
                raise CommandError("some ids are not inbound messages with media")
        elif options["failed"]:
            chosen = list(targets.filter(media_status=Message.MediaStatus.FAILED)[: options["limit"]])
        else:
            chosen = []
        ids = []
        for message in chosen:
            # Reset without queueing: this command decides how to run them below.
            Message.objects.filter(pk=message.pk).update(
                media_status=Message.MediaStatus.PENDING, media_attempts=0, media_error=""
            )
            ids.append(message.pk)
        if not ids:
            ids = list(
                targets.filter(media_status__in=[Message.MediaStatus.PENDING, Message.MediaStatus.FAILED])
                .order_by("pk")
                .values_list("pk", flat=True)[: options["limit"]]
            )
        results = jobs.run_or_queue(
            ids, jobs.DOWNLOAD_MEDIA, lambda pk: media.download_message_media(pk).result, queue=options["queue"]
        )
        summary = ", ".join(f"{name}: {count}" for name, count in sorted(results.items())) or "nothing to download"
        self.stdout.write(summary)
