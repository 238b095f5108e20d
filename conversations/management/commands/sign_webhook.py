"""Sign a webhook body like Meta does, and optionally post it: a way to try the webhook by hand.

    python manage.py sign_webhook sample.json
    curl -H "X-Hub-Signature-256: $(python manage.py sign_webhook sample.json)" \\
         -H "Content-Type: application/json" --data-binary @sample.json http://127.0.0.1:8000/webhooks/whatsapp/
    python manage.py sign_webhook sample.json --post http://127.0.0.1:8000/webhooks/whatsapp/
    python manage.py sign_webhook --now sample.json --post http://127.0.0.1:8000/webhooks/whatsapp/
    python manage.py sign_webhook --now sample.json --output /tmp/now.json   # then curl /tmp/now.json

--now stamps every message and status in the body with the current time before signing: a
sample written last year otherwise sorts last in the admin and lands outside WhatsApp's
24-hour window, so nothing could be sent back to it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from conversations.models import Inbox
from conversations.whatsapp.signature import sign


def stamp_now(body: bytes, now: int | None = None) -> bytes:
    """The body with every message's and status's timestamp set to now (Unix seconds, as Meta sends)."""
    data = json.loads(body)
    stamp = str(int(time.time()) if now is None else now)
    for entry in data.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            for item in (value.get("messages") or []) + (value.get("statuses") or []):
                if isinstance(item, dict) and "timestamp" in item:
                    item["timestamp"] = stamp
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()


def default_secret() -> str:
    """The default inbox's app secret as stored (an admin may have changed it), else the setting."""
    phone_number_id = settings.WHATSAPP_PHONE_NUMBER_ID
    if phone_number_id:
        try:
            stored = Inbox.objects.filter(phone_number_id=phone_number_id).values_list("app_secret", flat=True).first()
        except DatabaseError:
            stored = None  # no database yet (not migrated): the setting is all we have
        if stored:
            return stored
    return settings.WHATSAPP_APP_SECRET


class Command(BaseCommand):
    help = "Print the X-Hub-Signature-256 header for a webhook body file; with --post, send it signed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The body to sign, sent byte for byte (usually a JSON file).")
        parser.add_argument("--secret", help="App secret to sign with (default: the default inbox's).")
        parser.add_argument("--post", metavar="URL", help="POST the signed body to this URL and print the status.")
        parser.add_argument("--timeout", type=float, default=10.0, help="Seconds to wait for --post (default 10).")
        parser.add_argument(
            "--now", action="store_true", help="Set the messages' and statuses' timestamps to now before signing."
        )
        parser.add_argument(
            "--output", metavar="PATH", help="Write the body that was signed here (with --now, to send it with curl)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        try:
            # The signature covers the exact bytes: never re-serialise the JSON.
            body = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        try:
            json.loads(body)
        except ValueError:
            if options["now"]:
                raise CommandError(f"{path} is not valid JSON: --now cannot stamp it.") from None
            self.stderr.write(f"Warning: {path} is not valid JSON; signing it anyway.")
        else:
            if options["now"]:
                body = stamp_now(body)
        if options["output"]:
            Path(options["output"]).write_bytes(body)

        secret = options["secret"] or default_secret()
        if not secret:
            raise CommandError("No app secret: set WHATSAPP_APP_SECRET, configure the default inbox, or pass --secret.")
        header = sign(body, secret)
        self.stdout.write(header)

        url = options["post"]
        if not url:
            return
        try:
            response = httpx.post(
                url,
                content=body,
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": header},
                timeout=options["timeout"],
            )
        except httpx.HTTPError as exc:
            raise CommandError(f"POST {url} failed: {exc}") from exc
        self.stdout.write(f"POST {url} -> {response.status_code} {response.reason_phrase}: {response.text[:200]}")
        if response.status_code >= 400:
            raise CommandError(f"The webhook answered {response.status_code}.")
