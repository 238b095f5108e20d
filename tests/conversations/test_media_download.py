from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations import media, tasks
from conversations.models import Alert, Conversation, Customer, Inbox, Message
from tests.conftest import TEST_PNID, envelope
from tests.fake_graph import FakeGraph, Reply, graph_error, sha256_b64, sha256_hex

pytest_plugins = ["tests.conftest_graph"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("english")]

JPEG = b"\xff\xd8\xff\xe0" + b"fake jpeg bytes " * 1000


@pytest.fixture
def conversation(inbox: Inbox) -> Conversation:
    customer = Customer.objects.create(wa_id="5511987654321", phone="+5511987654321", name="Maria")
    return Conversation.objects.create(inbox=inbox, customer=customer, last_inbound=timezone.now())


@pytest.fixture
def make_media_message(conversation: Conversation) -> Callable[..., Message]:
    """An inbound media row as intake stores it (download not run yet)."""

    def make(media_id: str = "MEDIA.1", type: str = "image", sha256: str = "", mime: str = "image/jpeg") -> Message:
        return Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.IN,
            sender_kind=Message.SenderKind.CUSTOMER,
            type=type,
            wamid=f"wamid.{media_id}",
            media_id=media_id,
            media_mime=mime,
            media_sha256=sha256,
            media_status=Message.MediaStatus.PENDING,
        )

    return make


def image_webhook(media_id: str, sha256: str) -> dict:
    image = {"id": media_id, "mime_type": "image/jpeg", "sha256": sha256, "caption": "Olha"}
    message = {"from": "5511987654321", "id": "wamid.IMG1", "timestamp": "1750000000", "type": "image", "image": image}
    return envelope({"contacts": [{"profile": {"name": "Maria"}, "wa_id": "5511987654321"}], "messages": [message]})


def test_it_downloads_a_webhook_image_and_verifies_its_checksum(
    inbox: Inbox, fake_graph: FakeGraph, post_webhook: Callable[..., Any]
) -> None:
    # given: webhooks give the SHA-256 in base64
    fake_graph.add_media("MEDIA.1", JPEG, "image/jpeg", sha256=sha256_b64(JPEG))

    # when
    response = post_webhook(image_webhook("MEDIA.1", sha256_b64(JPEG)))

    # then
    assert response.status_code == 200
    message = Message.objects.get(wamid="wamid.IMG1")
    assert message.media_status == Message.MediaStatus.DONE
    assert message.media_mime == "image/jpeg"
    assert message.media_size == len(JPEG)
    assert message.media_sha256 == sha256_hex(JPEG)
    assert message.media_error == ""
    assert message.media.name.endswith(f"{message.uuid}.jpg")
    with message.media.open("rb") as fh:
        assert fh.read() == JPEG
    info, download = fake_graph.requests
    assert info.path == "/v23.0/MEDIA.1"
    assert info.query == {"phone_number_id": [TEST_PNID]}
    assert download.path.startswith("/files/")
    assert download.headers["authorization"] == "Bearer test-token"


def test_it_accepts_a_hex_checksum(make_media_message: Callable[..., Message], fake_graph: FakeGraph) -> None:
    # given: the media API gives the SHA-256 in hex
    fake_graph.add_media("MEDIA.1", JPEG, "image/jpeg", sha256=sha256_hex(JPEG))
    message = make_media_message()

    # when
    tasks.download_media.apply(args=[message.pk])

    # then
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.DONE


def test_it_records_a_checksum_mismatch_and_keeps_no_file(
    settings: Any, make_media_message: Callable[..., Message], fake_graph: FakeGraph
) -> None:
    # given
    settings.WHATSAPP_MEDIA_MAX_ATTEMPTS = 2
    fake_graph.add_media("MEDIA.1", JPEG, "image/jpeg", sha256="0" * 64)
    message = make_media_message()

    # when
    tasks.download_media.apply(args=[message.pk])

    # then: tried again once, then gave up
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.FAILED
    assert message.media_attempts == 2
    assert "checksum" in message.media_error
    assert not message.media
    assert len(fake_graph.calls("download")) == 2


def test_it_refuses_a_file_over_the_limit_without_downloading_it(
    make_media_message: Callable[..., Message], fake_graph: FakeGraph, settings: Any
) -> None:
    # given: images may have 5 MB
    fake_graph.add_media("MEDIA.1", b"x" * (5 * 1024 * 1024 + 1), "image/jpeg")
    message = make_media_message()

    # when
    tasks.download_media.apply(args=[message.pk])

    # then: not worth retrying
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.FAILED
    assert message.media_attempts == settings.WHATSAPP_MEDIA_MAX_ATTEMPTS
    assert "5242881 bytes" in message.media_error
    assert fake_graph.calls("download") == []
    assert len(fake_graph.calls("info")) == 1


def test_it_stops_a_download_that_grows_past_the_limit(
    make_media_message: Callable[..., Message], fake_graph: FakeGraph
) -> None:
    # given: a sticker (500 KB) whose info understates its size
    sticker = fake_graph.add_media("MEDIA.1", b"R" * 600_000, "image/webp")
    sticker.file_size = 1000
    message = make_media_message(type="sticker", mime="image/webp")

    # when
    tasks.download_media.apply(args=[message.pk])

    # then
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.FAILED
    assert "larger than" in message.media_error
    assert not message.media


def test_it_refuses_a_content_type_not_allowed_for_the_kind(
    make_media_message: Callable[..., Message], fake_graph: FakeGraph
) -> None:
    # given: an "image" that is HTML
    fake_graph.add_media("MEDIA.1", b"<script>alert(1)</script>", "text/html")
    message = make_media_message()

    # when
    tasks.download_media.apply(args=[message.pk])

    # then
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.FAILED
    assert "text/html" in message.media_error
    assert fake_graph.calls("download") == []


def test_it_accepts_a_voice_note_with_codec_parameters(
    make_media_message: Callable[..., Message], fake_graph: FakeGraph
) -> None:
    # given
    fake_graph.add_media("MEDIA.1", b"OggS voice", "audio/ogg; codecs=opus")
    message = make_media_message(type="audio", mime="audio/ogg; codecs=opus")

    # when
    tasks.download_media.apply(args=[message.pk])

    # then
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.DONE
    assert message.media_mime == "audio/ogg"
    assert message.media.name.endswith(".ogg")


def test_it_fetches_a_fresh_url_when_the_first_has_expired(
    make_media_message: Callable[..., Message], fake_graph: FakeGraph
) -> None:
    # given: the first URL answers 404 (expired)
    fake_graph.add_media("MEDIA.1", JPEG, "image/jpeg", expired_urls=1)
    message = make_media_message()

    # when
    tasks.download_media.apply(args=[message.pk])

    # then
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.DONE
    assert message.media_attempts == 0
    assert len(fake_graph.calls("info")) == 2
    assert len(fake_graph.calls("download")) == 2


def test_it_retries_then_an_admin_retry_succeeds(
    settings: Any, make_media_message: Callable[..., Message], fake_graph: FakeGraph
) -> None:
    # given: the download fails on every attempt the task has
    settings.WHATSAPP_MEDIA_MAX_ATTEMPTS = 3
    fake_graph.add_media("MEDIA.1", JPEG, "image/jpeg")
    fake_graph.script("download", *[Reply(status=500, body=b"oops")] * 3)
    message = make_media_message()
    tasks.download_media.apply(args=[message.pk])
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.FAILED
    assert message.media_attempts == 3
    assert "500" in message.media_error
    assert tasks.sweep_media_downloads() == 0

    # when
    media.retry_media_download(message)

    # then
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.DONE
    assert message.media_attempts == 0
    assert message.media_error == ""
    assert len(fake_graph.calls("download")) == 4


def test_it_raises_an_alert_when_the_token_is_rejected(
    make_media_message: Callable[..., Message], fake_graph: FakeGraph, settings: Any
) -> None:
    # given
    settings.WHATSAPP_MEDIA_MAX_ATTEMPTS = 1
    fake_graph.script("info", graph_error(190, status=401))
    message = make_media_message()

    # when
    tasks.download_media.apply(args=[message.pk])

    # then
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.FAILED
    assert Alert.objects.get().code == 190


def test_it_does_nothing_for_a_finished_download(
    make_media_message: Callable[..., Message], fake_graph: FakeGraph
) -> None:
    # given
    fake_graph.add_media("MEDIA.1", JPEG, "image/jpeg")
    message = make_media_message()
    tasks.download_media.apply(args=[message.pk])
    requests = len(fake_graph.requests)

    # when
    tasks.download_media.apply(args=[message.pk])
    tasks.sweep_media_downloads()

    # then
    assert len(fake_graph.requests) == requests
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.DONE


def test_it_sweeps_failed_downloads_after_their_backoff(
    make_media_message: Callable[..., Message], fake_graph: FakeGraph
) -> None:
    # given: a download that failed once, long ago
    fake_graph.add_media("MEDIA.1", JPEG, "image/jpeg")
    message = make_media_message()
    recent = make_media_message(media_id="MEDIA.2")
    Message.objects.filter(pk=message.pk).update(
        media_status=Message.MediaStatus.FAILED, media_attempts=1, updated=timezone.now() - timedelta(hours=1)
    )
    Message.objects.filter(pk=recent.pk).update(media_status=Message.MediaStatus.FAILED, media_attempts=1)

    # when
    count = tasks.sweep_media_downloads()

    # then
    message.refresh_from_db()
    recent.refresh_from_db()
    assert count == 1
    assert message.media_status == Message.MediaStatus.DONE
    assert recent.media_status == Message.MediaStatus.FAILED


def test_it_downloads_again_from_the_command(
    make_media_message: Callable[..., Message], fake_graph: FakeGraph, settings: Any
) -> None:
    # given
    fake_graph.add_media("MEDIA.1", JPEG, "image/jpeg")
    message = make_media_message()
    Message.objects.filter(pk=message.pk).update(
        media_status=Message.MediaStatus.FAILED, media_attempts=settings.WHATSAPP_MEDIA_MAX_ATTEMPTS
    )

    # when
    call_command("retry_media", str(message.pk))

    # then
    message.refresh_from_db()
    assert message.media_status == Message.MediaStatus.DONE


@pytest.mark.parametrize(
    ("expected", "ok"),
    [
        (sha256_hex(JPEG), True),
        (sha256_hex(JPEG).upper(), True),
        (sha256_b64(JPEG), True),
        (sha256_b64(JPEG).rstrip("="), True),
        (sha256_b64(b"other"), False),
        ("not base64 at all!", False),
    ],
)
def test_it_compares_checksums_in_both_forms(expected: str, ok: bool) -> None:
    # when / then
    assert media.sha256_matches(expected, sha256_hex(JPEG)) is ok
