"""A message's file exists exactly when its row is committed: a transaction that rolls back,
even at the worst moment (the file written, the database write after it failing), leaves no
stray file in MEDIA_ROOT."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from conversations import media, outbound
from conversations.models import Conversation, Customer, Inbox, Message
from tests.fake_graph import FakeGraph

pytest_plugins = ["tests.conftest_graph"]

pytestmark = pytest.mark.django_db(transaction=True)

PDF = b"%PDF-1.4 relatorio"
JPEG = b"\xff\xd8\xff\xe0" + b"fake jpeg bytes " * 100


@pytest.fixture
def conversation(inbox: Inbox) -> Conversation:
    customer = Customer.objects.create(wa_id="5511987654321", phone="+5511987654321", name="Maria")
    return Conversation.objects.create(inbox=inbox, customer=customer, last_inbound=timezone.now() - timedelta(hours=1))


@pytest.fixture
def media_files(settings: Any) -> Callable[[], list[str]]:
    """Every file under MEDIA_ROOT, relative to it."""

    def files() -> list[str]:
        root = Path(settings.MEDIA_ROOT)
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    return files


@contextmanager
def failing(statement: str) -> Iterator[None]:
    """The database refuses the first statement starting with ``statement`` (a lost connection,
    a full disk, a serialization failure...)."""

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith(statement):
            raise DatabaseError("injected failure")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


def pdf_upload() -> SimpleUploadedFile:
    return SimpleUploadedFile("Relatório.pdf", PDF, content_type="application/pdf")


def test_it_leaves_no_file_when_storing_an_outbound_file_rolls_back(
    conversation: Conversation, fake_graph: FakeGraph, media_files: Callable[[], list[str]]
) -> None:
    # given: the last write of the send's transaction fails, after the file and the row
    with failing('UPDATE "conversations_conversation"'), pytest.raises(DatabaseError):
        # when
        outbound.send_media(conversation, media_type="document", file=pdf_upload())

    # then
    assert Message.objects.count() == 0
    assert media_files() == []
    assert fake_graph.requests == []


def test_it_refuses_to_store_a_file_inside_a_callers_transaction(
    conversation: Conversation, fake_graph: FakeGraph, media_files: Callable[[], list[str]]
) -> None:
    # given: a caller whose own transaction could still roll back after the send
    class CallerGaveUp(Exception):
        pass

    # when
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        outbound.send_media(conversation, media_type="document", file=pdf_upload())
        raise CallerGaveUp

    # then
    assert Message.objects.count() == 0
    assert media_files() == []
    assert fake_graph.requests == []


def test_it_keeps_the_file_of_a_committed_outbound_message(
    conversation: Conversation, fake_graph: FakeGraph, media_files: Callable[[], list[str]]
) -> None:
    # when
    message = outbound.send_media(conversation, media_type="document", file=pdf_upload())

    # then
    message.refresh_from_db()
    assert media_files() == [message.media.name]
    assert message.media.name.endswith(f"out-{message.uuid}.pdf")
    assert message.media_size == len(PDF)
    with message.media.open("rb") as fh:
        assert fh.read() == PDF
    assert message.status == Message.Status.SENT


def test_it_writes_no_file_for_a_refused_send(
    conversation: Conversation, fake_graph: FakeGraph, media_files: Callable[[], list[str]]
) -> None:
    # given
    Conversation.objects.filter(pk=conversation.pk).update(last_inbound=timezone.now() - timedelta(hours=25))
    conversation.refresh_from_db()

    # when
    with pytest.raises(outbound.SendRefused):
        outbound.send_media(conversation, media_type="document", file=pdf_upload())

    # then
    assert Message.objects.count() == 0
    assert media_files() == []


@pytest.fixture
def inbound_image(conversation: Conversation, fake_graph: FakeGraph) -> Message:
    fake_graph.add_media("MEDIA.1", JPEG, "image/jpeg")
    return Message.objects.create(
        conversation=conversation,
        direction=Message.Direction.IN,
        sender_kind=Message.SenderKind.CUSTOMER,
        type="image",
        wamid="wamid.MEDIA.1",
        media_id="MEDIA.1",
        media_mime="image/jpeg",
        media_status=Message.MediaStatus.PENDING,
    )


def test_it_leaves_no_file_when_recording_a_download_fails(
    inbound_image: Message, media_files: Callable[[], list[str]]
) -> None:
    # given: the file is downloaded and written, then the row's update fails
    with failing('UPDATE "conversations_message" SET "media"'), pytest.raises(DatabaseError):
        # when
        media.download_message_media(inbound_image.pk)

    # then
    inbound_image.refresh_from_db()
    assert (inbound_image.media.name, inbound_image.media_status) == ("", Message.MediaStatus.PENDING)
    assert media_files() == []

    # and the next attempt stores exactly one file, the row's
    assert media.download_message_media(inbound_image.pk).result == "done"
    inbound_image.refresh_from_db()
    assert inbound_image.media_status == Message.MediaStatus.DONE
    assert media_files() == [inbound_image.media.name]
    with inbound_image.media.open("rb") as fh:
        assert fh.read() == JPEG


def test_it_keeps_the_file_when_the_row_turns_out_committed(inbox: Inbox, media_files: Callable[[], list[str]]) -> None:
    # given: a transaction reported as failed whose row is nevertheless there (a commit whose
    # answer was lost), and one where the database cannot say
    message = Message(type="document")

    def unknown() -> bool:
        raise DatabaseError("connection lost")

    # when
    for recorded in (lambda: True, unknown):
        with (
            pytest.raises(DatabaseError),
            media.file_kept_if_committed(message.media, "a.pdf", ContentFile(PDF), recorded=recorded),
        ):
            raise DatabaseError("commit answer lost")

    # then
    assert len(media_files()) == 2
