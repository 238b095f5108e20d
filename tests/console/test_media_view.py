"""Media are served only by /console/media/<id>/, after the access check, with a content type
we choose (never a stored one blindly): inline for WhatsApp's image, audio and video types,
a download with the original name for documents and anything else."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse

from conversations.models import Conversation, Message
from tests.console.actions_support import login, make_conversation, team  # noqa: F401

pytestmark = pytest.mark.django_db

JPEG = b"\xff\xd8\xff\xe0" + b"jpeg" * 100
PDF = b"%PDF-1.4\n" + b"pdf" * 100


def _with_file(conversation: Conversation, type: str, mime: str, content: bytes, **fields) -> Message:
    message = Message(
        conversation=conversation,
        direction=fields.pop("direction", Message.Direction.IN),
        sender_kind=fields.pop("sender_kind", Message.SenderKind.CUSTOMER),
        type=type,
        media_mime=mime,
        media_size=len(content),
        media_status=fields.pop("media_status", Message.MediaStatus.DONE),
        **fields,
    )
    message.media.save(f"in-{message.uuid}.bin", ContentFile(content), save=False)
    message.save()
    return message


def _url(message: Message) -> str:
    return reverse("console:media", args=[message.pk])


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_it_serves_an_image_inline_with_a_safe_type(team, login, make_conversation) -> None:  # noqa: F811
    # given
    image = _with_file(make_conversation(), "image", "image/jpeg", JPEG)
    # when
    response = login(team.ana).get(_url(image))
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"].startswith("inline")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert response["Cache-Control"] == "private, max-age=3600"
    assert _body(response) == JPEG


@pytest.mark.parametrize(
    ("type", "mime"),
    [("audio", "audio/ogg; codecs=opus"), ("video", "video/mp4"), ("sticker", "image/webp")],
)
def test_it_plays_audio_video_and_stickers_inline(type: str, mime: str, team, login, make_conversation) -> None:  # noqa: F811
    # given
    message = _with_file(make_conversation(), type, mime, b"media bytes")
    # when
    response = login(team.ana).get(_url(message))
    # then
    assert response["Content-Type"] == mime.split(";")[0]
    assert response["Content-Disposition"].startswith("inline")


def test_it_downloads_a_document_under_its_original_name(team, login, make_conversation) -> None:  # noqa: F811
    # given
    document = _with_file(make_conversation(), "document", "application/pdf", PDF, media_filename="relatório final.pdf")
    # when
    response = login(team.ana).get(_url(document))
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''relat%C3%B3rio%20final.pdf"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert _body(response) == PDF


@pytest.mark.parametrize(
    ("type", "mime"),
    [
        ("document", "text/html"),
        ("document", "image/svg+xml"),
        ("image", "image/svg+xml"),
        ("image", "text/html; charset=utf-8"),
        ("audio", "application/javascript"),
        ("sticker", ""),
    ],
)
def test_it_never_serves_a_type_a_browser_would_run(type: str, mime: str, team, login, make_conversation) -> None:  # noqa: F811
    # given: a stored type we never accept (a bug or a hostile upload elsewhere)
    message = _with_file(make_conversation(), type, mime, b"<script>alert(1)</script>", media_filename="x.html")
    # when
    response = login(team.ana).get(_url(message))
    # then
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_it_serves_an_attendants_upload_the_same_way(team, login, make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    upload = _with_file(
        conversation,
        "document",
        "application/pdf",
        PDF,
        direction=Message.Direction.OUT,
        sender_kind=Message.SenderKind.ATTENDANT,
        sender=team.ana,
        status=Message.Status.SENT,
        media_status=Message.MediaStatus.UPLOADED,
        media_filename="orcamento.pdf",
    )
    # when
    response = login(team.supervisor).get(_url(upload))
    # then
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="orcamento.pdf"'


def test_it_serves_the_closed_history_an_attendant_may_read(team, login, make_conversation) -> None:  # noqa: F811
    # given: Ana's closed conversation; the customer waits in the queue again
    closed = make_conversation(status=Conversation.Status.CLOSED, assignee=team.ana)
    make_conversation(customer=closed.customer)
    image = _with_file(closed, "image", "image/jpeg", JPEG)
    # when
    response = login(team.bruno).get(_url(image))
    # then
    assert response.status_code == 200


@pytest.mark.parametrize("who", ["outsider", "bruno"])
def test_it_answers_404_to_whoever_may_not_see_the_conversation(who: str, team, login, make_conversation) -> None:  # noqa: F811
    # given: Ana's conversation; Olga works in another inbox
    conversation = make_conversation(status=Conversation.Status.ASSIGNED, assignee=team.ana)
    image = _with_file(conversation, "image", "image/jpeg", JPEG)
    # when
    response = login(getattr(team, who)).get(_url(image))
    # then
    assert response.status_code == 404
    assert JPEG not in response.content


def test_it_sends_anonymous_visitors_to_log_in(make_conversation) -> None:  # noqa: F811
    # given
    image = _with_file(make_conversation(), "image", "image/jpeg", JPEG)
    # when
    response = Client().get(_url(image))
    # then
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_answers_405_to_a_post(team, login, make_conversation) -> None:  # noqa: F811
    image = _with_file(make_conversation(), "image", "image/jpeg", JPEG)
    assert login(team.ana).post(_url(image)).status_code == 405


def test_it_answers_404_without_a_file(team, login, make_conversation) -> None:  # noqa: F811
    # given: a text, an image still downloading, an image whose file is gone, an unknown id
    conversation = make_conversation()
    common = {"direction": Message.Direction.IN, "sender_kind": Message.SenderKind.CUSTOMER}
    text = Message.objects.create(conversation=conversation, type="text", text="oi", **common)
    pending = Message.objects.create(
        conversation=conversation, type="image", media_status=Message.MediaStatus.PENDING, **common
    )
    gone = _with_file(conversation, "image", "image/jpeg", JPEG)
    gone.media.storage.delete(gone.media.name)
    client = login(team.ana)
    # when / then
    for message_id in (text.pk, pending.pk, gone.pk, gone.pk + 1000):
        assert client.get(reverse("console:media", args=[message_id])).status_code == 404


def test_it_never_exposes_a_public_media_url_on_the_page(team, login, make_conversation) -> None:  # noqa: F811
    # given
    conversation = make_conversation()
    image = _with_file(conversation, "image", "image/jpeg", JPEG)
    # when
    html = login(team.ana).get(reverse("console:conversation", args=[conversation.pk])).content.decode()
    # then
    assert f'src="/console/media/{image.pk}/"' in html
    assert image.media.name not in html
    assert "/media/" not in html.replace("/console/media/", "")


def test_it_answers_a_players_byte_range(team, login, make_conversation) -> None:  # noqa: F811
    # given
    video = _with_file(make_conversation(), "video", "video/mp4", b"0123456789")
    client = login(team.ana)
    # when
    whole = client.get(_url(video))
    middle = client.get(_url(video), HTTP_RANGE="bytes=2-5")
    tail = client.get(_url(video), HTTP_RANGE="bytes=-3")
    open_ended = client.get(_url(video), HTTP_RANGE="bytes=7-")
    beyond = client.get(_url(video), HTTP_RANGE="bytes=20-30")
    # then
    assert whole["Accept-Ranges"] == "bytes"
    assert (middle.status_code, middle.content, middle["Content-Range"]) == (206, b"2345", "bytes 2-5/10")
    assert middle["Content-Type"] == "video/mp4" and middle["X-Content-Type-Options"] == "nosniff"
    assert (tail.status_code, tail.content) == (206, b"789")
    assert (open_ended.status_code, open_ended.content) == (206, b"789")
    assert (beyond.status_code, beyond["Content-Range"]) == (416, "bytes */10")


def test_it_sends_a_document_whole_whatever_range_is_asked(team, login, make_conversation) -> None:  # noqa: F811
    # given
    document = _with_file(make_conversation(), "document", "application/pdf", PDF)
    # when
    response = login(team.ana).get(_url(document), HTTP_RANGE="bytes=0-3")
    # then
    assert response.status_code == 200
    assert _body(response) == PDF


def test_it_checks_access_before_answering_a_range(team, login, make_conversation) -> None:  # noqa: F811
    # given
    video = _with_file(make_conversation(inbox=team.other_inbox), "video", "video/mp4", b"0123456789")
    # when
    response = login(team.ana).get(_url(video), HTTP_RANGE="bytes=0-3")
    # then
    assert response.status_code == 404
