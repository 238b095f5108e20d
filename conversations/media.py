"""Downloading the files customers send, the per-type limits both directions share, and
writing a message's file so that it exists exactly when its row is committed.

Meta keeps a webhook's media for 7 days and each download URL for 5 minutes, so the task
fetches a fresh URL on every attempt (and once more when the URL was already expired).
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.files import File
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.utils import timezone
from django.utils.translation import gettext

from conversations import events, jobs, services, signals
from conversations.models import Inbox, Message
from conversations.whatsapp.graph import GraphClient, GraphError, MediaInfo, MediaTooLarge

logger = logging.getLogger(__name__)

MB = 1024 * 1024
# WhatsApp's own limits per kind (business-phone-numbers/media).
MEDIA_LIMITS = {
    "audio": 16 * MB,
    "document": 100 * MB,
    "image": 5 * MB,
    "sticker": 500 * 1024,
    "video": 16 * MB,
}
ALLOWED_MIME_TYPES = {
    "audio": frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg", "audio/opus"}),
    "image": frozenset({"image/jpeg", "image/png"}),
    "sticker": frozenset({"image/webp"}),
    "video": frozenset({"video/mp4", "video/3gpp"}),
    # Customers send all sorts of documents; anything a browser would run when opened from our
    # domain (HTML, SVG, scripts) is left out on purpose.
    "document": frozenset(
        {
            "application/pdf",
            "text/plain",
            "text/csv",
            "application/rtf",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/vnd.oasis.opendocument.text",
            "application/vnd.oasis.opendocument.spreadsheet",
            "application/vnd.oasis.opendocument.presentation",
            "application/zip",
            "application/x-zip-compressed",
            "application/vnd.rar",
            "application/x-rar-compressed",
            "application/x-7z-compressed",
            "application/octet-stream",
            "image/jpeg",
            "image/png",
            "image/webp",
            "image/heic",
            "audio/mpeg",
            "audio/ogg",
            "video/mp4",
        }
    ),
}
EXTENSIONS = {
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "text/plain": ".txt",
    "text/csv": ".csv",
    "application/pdf": ".pdf",
    "application/octet-stream": ".bin",
}


def base_mime(mime: str) -> str:
    """``audio/ogg; codecs=opus`` -> ``audio/ogg``."""
    return mime.split(";", 1)[0].strip().lower()


def extension_for(mime: str) -> str:
    mime = base_mime(mime)
    return EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ".bin"


def sha256_matches(expected: str, actual_hex: str) -> bool:
    """Meta's webhooks give the SHA-256 in base64, its media API in hex: accept either form."""
    expected = expected.strip()
    if expected.lower() == actual_hex:
        return True
    try:
        decoded = base64.b64decode(expected + "=" * (-len(expected) % 4), validate=False)
    except (binascii.Error, ValueError):
        return False
    return decoded == bytes.fromhex(actual_hex)


@contextmanager
def file_kept_if_committed(
    field_file: FieldFile, name: str, content: File, *, recorded: Callable[[], bool]
) -> Iterator[str]:
    """Write a row's file, then run the block that records it in one transaction; the file is
    removed again unless that transaction commits. Yields the stored name.

    Files are not transactional: written inside a transaction that then rolls back, they stay
    on disk with no row pointing at them. So the file is written first (a committed row always
    has its file) and the block runs in a *durable* atomic: the outermost transaction, so
    leaving it without an error means committed, and no caller's transaction can still roll
    it back later. Calling this inside a transaction is refused (RuntimeError) for that reason.
    ``recorded`` tells, after a failure, whether the row was committed all the same (a commit
    whose answer was lost): then the file stays."""
    field_file.save(name, content, save=False)
    stored = field_file.name
    try:
        with transaction.atomic(durable=True):
            yield stored
    except BaseException:
        _discard_unless_recorded(field_file, stored, recorded)
        raise


def _discard_unless_recorded(field_file: FieldFile, stored: str, recorded: Callable[[], bool]) -> None:
    try:
        committed = recorded()
    except Exception:
        # The database cannot say (connection lost): a stray file is better than a committed
        # row without its file.
        logger.error("file %s kept: could not tell whether its row was committed", stored)
        return
    if not committed:
        field_file.storage.delete(stored)


class _AlreadyDone(Exception):
    """Another download finished first; ours is discarded with its transaction."""


class MediaFailure(Exception):
    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass
class DownloadOutcome:
    result: str  # done | failed | skipped
    retry_in: float | None = None


def retry_delay(attempts: int) -> float:
    return float(min(30 * 2 ** (max(attempts, 1) - 1), 3600))


def _wants_download(message: Message) -> bool:
    return (
        message.direction == Message.Direction.IN
        and bool(message.media_id)
        and message.media_status in (Message.MediaStatus.PENDING, Message.MediaStatus.FAILED)
        and message.media_attempts < settings.WHATSAPP_MEDIA_MAX_ATTEMPTS
    )


def download_message_media(message_id: int) -> DownloadOutcome:
    message = Message.objects.select_related("conversation__inbox").filter(pk=message_id).first()
    if message is None or not _wants_download(message):
        return DownloadOutcome("skipped")
    # One download per message at a time (a duplicate task, the sweep and an admin retry can
    # overlap); the lock expires on its own if a worker dies.
    lock_key = f"media-download:{message.pk}"
    try:
        locked = cache.add(lock_key, 1, timeout=int(settings.WHATSAPP_HTTP_TIMEOUT * 8) + 60)
    except Exception:
        # Without the cache a rare double download is possible, but only one of them is saved
        # (the row is re-checked under a lock): better than no download at all.
        logger.warning("message %s: download lock unavailable, downloading anyway", message.pk)
        locked = True
    if not locked:
        return DownloadOutcome("skipped")
    try:
        try:
            _download(message)
        except MediaFailure as failure:
            return _record_failure(message.pk, failure)
        return DownloadOutcome("done")
    finally:
        try:
            cache.delete(lock_key)
        except Exception:
            logger.warning("message %s: could not release the download lock", message.pk)


def _download(message: Message) -> None:
    inbox = message.conversation.inbox
    client = GraphClient(inbox)
    kind = message.type if message.type in MEDIA_LIMITS else "document"
    limit = MEDIA_LIMITS[kind]
    info = _media_info(client, message)
    mime = base_mime(info.mime_type or message.media_mime)
    if mime not in ALLOWED_MIME_TYPES[kind]:
        raise MediaFailure(
            gettext("File type %(mime)s is not accepted for %(kind)s messages.") % {"mime": mime or "?", "kind": kind},
            retryable=False,
        )
    if info.file_size is not None and info.file_size > limit:
        raise MediaFailure(_too_big(info.file_size, limit, kind), retryable=False)
    try:
        try:
            download = client.download(info.url, max_bytes=limit)
        except GraphError as error:
            if error.http_status not in (401, 403, 404):
                raise
            # The 5-minute URL expired (or was never valid for us): ask for a fresh one, once.
            info = _media_info(client, message)
            download = client.download(info.url, max_bytes=limit)
    except MediaTooLarge:
        raise MediaFailure(_too_big(None, limit, kind), retryable=False) from None
    except GraphError as error:
        raise _failure_from(error, inbox) from error
    with download.file:
        expected = info.sha256 or message.media_sha256
        if expected and not sha256_matches(expected, download.sha256_hex):
            raise MediaFailure(
                gettext("The file's checksum does not match WhatsApp's (expected %(expected)s, got %(actual)s).")
                % {"expected": expected, "actual": download.sha256_hex},
                retryable=True,
            )
        # Our own name: the customer's file name goes in media_filename, never into a path.
        name = f"{message.uuid}{extension_for(mime)}"
        try:
            with file_kept_if_committed(
                message.media,
                name,
                File(download.file, name=name),
                recorded=lambda: Message.objects.filter(pk=message.pk, media=message.media.name).exists(),
            ) as stored:
                locked = (
                    Message.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=message.pk)
                )
                if locked.media_status == Message.MediaStatus.DONE:
                    raise _AlreadyDone
                locked.media.name = stored
                locked.media_mime = mime
                locked.media_size = download.size
                locked.media_sha256 = download.sha256_hex
                locked.media_status = Message.MediaStatus.DONE
                locked.media_error = ""
                fields = ["media", "media_mime", "media_size", "media_sha256", "media_status", "media_error"]
                locked.save(update_fields=[*fields, "updated"])
                events.message_updated(locked, "media")
                _announce_ready(locked, ok=True)
        except _AlreadyDone:
            return


def _announce_ready(message: Message, *, ok: bool) -> None:
    if message.direction == Message.Direction.IN:
        signals.send_on_commit(
            signals.media_ready,
            message_id=message.pk,
            conversation_id=message.conversation_id,
            inbox_id=message.conversation.inbox_id,
            ok=ok,
        )


def _media_info(client: GraphClient, message: Message) -> MediaInfo:
    try:
        return client.media_info(message.media_id)
    except GraphError as error:
        raise _failure_from(error, message.conversation.inbox) from error


def _failure_from(error: GraphError, inbox: Inbox) -> MediaFailure:
    if error.alert:
        title = error.title or error.message
        services.raise_alert(inbox, error.alert_kind, title, code=error.code, details=error.details)
    # A token problem may be fixed by the admin before the next attempt; only plain
    # "permanent" answers (unknown media id, bad request) are not worth repeating.
    retryable = error.retryable or error.uncertain or error.alert or (error.http_status in (401, 403, 404))
    return MediaFailure(gettext("WhatsApp answered: %(error)s") % {"error": str(error)}, retryable=retryable)


def _too_big(size: int | None, limit: int, kind: str) -> str:
    if size is None:
        return gettext("The file is larger than the %(max)s bytes WhatsApp allows for %(kind)s.") % {
            "max": limit,
            "kind": kind,
        }
    return gettext("The file has %(size)s bytes, more than the %(max)s WhatsApp allows for %(kind)s.") % {
        "size": size,
        "max": limit,
        "kind": kind,
    }


def _record_failure(message_id: int, failure: MediaFailure) -> DownloadOutcome:
    with transaction.atomic():
        message = Message.objects.select_for_update(of=("self",)).select_related("conversation").get(pk=message_id)
        attempts = message.media_attempts + 1
        if not failure.retryable:
            # No point trying again (too big, wrong type): use up the attempts so neither the
            # task nor the sweep repeats it. An admin can still retry by hand.
            attempts = max(attempts, settings.WHATSAPP_MEDIA_MAX_ATTEMPTS)
        message.media_attempts = attempts
        message.media_status = Message.MediaStatus.FAILED
        message.media_error = failure.reason
        message.save(update_fields=["media_attempts", "media_status", "media_error", "updated"])
        events.message_updated(message, "media")
        if attempts >= settings.WHATSAPP_MEDIA_MAX_ATTEMPTS:
            _announce_ready(message, ok=False)  # given up: no more automatic attempts
    logger.warning("message %s: media download failed (attempt %s): %s", message_id, attempts, failure.reason)
    if attempts < settings.WHATSAPP_MEDIA_MAX_ATTEMPTS:
        return DownloadOutcome("failed", retry_in=retry_delay(attempts))
    return DownloadOutcome("failed")


def retry_media_download(message: Message) -> None:
    """Admin action: try a failed (or stuck) download again from scratch."""
    if message.direction != Message.Direction.IN or not message.media_id:
        raise ValueError(gettext("This message has no file to download."))
    with transaction.atomic():
        updated = Message.objects.filter(pk=message.pk).update(
            media_status=Message.MediaStatus.PENDING, media_attempts=0, media_error="", updated=timezone.now()
        )
        if updated:
            jobs.enqueue_on_commit(jobs.DOWNLOAD_MEDIA, message.pk)
    message.media_status, message.media_attempts, message.media_error = Message.MediaStatus.PENDING, 0, ""


def due_downloads(*, limit: int = 500) -> list[int]:
    """Downloads the sweep should queue again: pending ones whose task seems lost, failed ones
    whose backoff has passed."""
    now = timezone.now()
    rows = (
        Message.objects.filter(
            direction=Message.Direction.IN,
            media_status__in=[Message.MediaStatus.PENDING, Message.MediaStatus.FAILED],
            media_attempts__lt=settings.WHATSAPP_MEDIA_MAX_ATTEMPTS,
            updated__lte=now - timedelta(seconds=60),
        )
        .exclude(media_id="")
        .order_by("updated")
        .values_list("pk", "updated", "media_attempts", "media_status")[: limit * 2]
    )
    due = []
    for pk, updated, attempts, status in rows:
        wait = retry_delay(attempts) if status == Message.MediaStatus.FAILED else 0.0
        if updated.timestamp() + wait + 60 <= now.timestamp():
            due.append(pk)
    return due[:limit]
