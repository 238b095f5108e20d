from __future__ import annotations

import logging
import socket
from typing import Any

import pytest

from conversations.models import Alert, Inbox
from conversations.whatsapp import graph
from conversations.whatsapp.graph import GraphClient, GraphError, MediaTooLarge
from tests.fake_graph import FakeGraph, Reply, graph_error

pytest_plugins = ["tests.conftest_graph"]


@pytest.fixture
def client(fake_graph: FakeGraph) -> GraphClient:
    # Unsaved: the client only reads the phone number id and the token.
    return GraphClient(Inbox(name="Test", phone_number_id="TEST_PNID", access_token="test-token"))


def test_it_sends_a_message_and_returns_the_wamid(client: GraphClient, fake_graph: FakeGraph) -> None:
    # given
    body = {"messaging_product": "whatsapp", "to": "+5511987654321", "type": "text", "text": {"body": "Oi"}}

    # when
    wamid = client.send_message(body)

    # then
    assert wamid == "wamid.FAKE1"
    [request] = fake_graph.requests
    assert request.method == "POST"
    assert request.path == "/v23.0/TEST_PNID/messages"
    assert request.headers["authorization"] == "Bearer test-token"
    assert request.json == body


def test_sends_reuse_one_kept_alive_connection_with_each_inboxs_own_token(fake_graph: FakeGraph) -> None:
    # given: two inboxes of one process, the second with a token Meta refuses
    first = GraphClient(Inbox(name="A", phone_number_id="PNID_A", access_token="test-token"))
    second = GraphClient(Inbox(name="B", phone_number_id="PNID_B", access_token="expired-token"))
    body = {"messaging_product": "whatsapp", "to": "+5511987654321", "type": "text", "text": {"body": "Oi"}}

    # when: sends one after the other
    first.send_message(body)
    with pytest.raises(GraphError) as refused:
        second.send_message(body)
    first.send_message(body)

    # then: one TCP connection (no new handshake per send), and every request with its own token
    assert refused.value.code == 190
    assert len({request.peer for request in fake_graph.requests}) == 1
    assert [request.headers["authorization"] for request in fake_graph.requests] == [
        "Bearer test-token",
        "Bearer expired-token",
        "Bearer test-token",
    ]


def test_a_forked_process_never_uses_its_parents_pooled_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: the parent's client
    parent = graph.shared_client()

    # when: the same code runs in another process id
    monkeypatch.setattr(graph.os, "getpid", lambda: -1)

    # then
    assert graph.shared_client() is not parent
    assert graph.shared_client() is graph.shared_client()


def test_it_marks_a_message_read_with_a_typing_indicator(client: GraphClient, fake_graph: FakeGraph) -> None:
    # when
    ok = client.mark_read("wamid.IN1", typing=True)

    # then
    assert ok is True
    assert fake_graph.requests[0].json == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN1",
        "typing_indicator": {"type": "text"},
    }


def test_it_marks_a_message_read_without_typing(client: GraphClient, fake_graph: FakeGraph) -> None:
    # when
    client.mark_read("wamid.IN1")

    # then
    assert "typing_indicator" not in fake_graph.requests[0].json


def test_it_uploads_media_as_multipart(client: GraphClient, fake_graph: FakeGraph) -> None:
    # given
    import io

    # when
    media_id = client.upload_media(io.BytesIO(b"\xff\xd8JPEG"), mime_type="image/jpeg", filename="photo.jpg")

    # then
    assert media_id.startswith("UPLOADED.")
    [request] = fake_graph.requests
    assert request.path == "/v23.0/TEST_PNID/media"
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert b'name="messaging_product"\r\n\r\nwhatsapp' in request.body
    assert b'name="type"\r\n\r\nimage/jpeg' in request.body
    assert b'filename="photo.jpg"' in request.body
    assert b"\xff\xd8JPEG" in request.body


def test_it_gets_media_info_for_the_phone_number(client: GraphClient, fake_graph: FakeGraph) -> None:
    # given
    fake_graph.add_media("MEDIA.1", b"abc", "image/jpeg")

    # when
    info = client.media_info("MEDIA.1")

    # then
    assert info.mime_type == "image/jpeg"
    assert info.file_size == 3
    assert info.url.startswith(fake_graph.root + "/files/")
    assert fake_graph.requests[0].path == "/v23.0/MEDIA.1"
    assert fake_graph.requests[0].query == {"phone_number_id": ["TEST_PNID"]}


def test_it_downloads_with_the_bearer_header(client: GraphClient, fake_graph: FakeGraph) -> None:
    # given
    fake_graph.add_media("MEDIA.1", b"x" * 100_000, "image/jpeg")
    info = client.media_info("MEDIA.1")

    # when
    download = client.download(info.url, max_bytes=200_000)

    # then
    with download.file:
        assert download.file.read() == b"x" * 100_000
    assert download.size == 100_000
    assert download.content_type == "image/jpeg"
    assert fake_graph.requests[1].headers["authorization"] == "Bearer test-token"


def test_it_stops_a_download_past_the_size_cap(client: GraphClient, fake_graph: FakeGraph) -> None:
    # given
    fake_graph.add_media("MEDIA.1", b"x" * 10_000, "image/jpeg")
    info = client.media_info("MEDIA.1")

    # when
    with pytest.raises(MediaTooLarge) as caught:
        client.download(info.url, max_bytes=9_999)

    # then
    assert caught.value.kind == graph.PERMANENT


@pytest.mark.parametrize(
    ("code", "status", "kind", "pause"),
    [
        (130429, 429, graph.RETRYABLE, False),
        (131056, 400, graph.RETRYABLE, False),
        (4, 400, graph.RETRYABLE, False),
        (80007, 400, graph.RETRYABLE, False),
        (131000, 500, graph.RETRYABLE, False),
        (131016, 503, graph.RETRYABLE, False),
        (131057, 400, graph.RETRYABLE, False),
        (131047, 400, graph.NEEDS_TEMPLATE, False),
        (190, 401, graph.ALERT, True),
        (368, 400, graph.ALERT, True),
        (131031, 400, graph.ALERT, True),
        (10, 403, graph.ALERT, False),
        (200, 403, graph.ALERT, False),
        (132001, 404, graph.ALERT, False),
        (131026, 400, graph.PERMANENT, False),
        (100, 400, graph.PERMANENT, False),
        (131049, 400, graph.PERMANENT, False),
        (12345, 500, graph.RETRYABLE, False),
    ],
)
def test_it_classifies_graph_errors(
    client: GraphClient, fake_graph: FakeGraph, code: int, status: int, kind: str, pause: bool
) -> None:
    # given
    fake_graph.script("messages", graph_error(code, status=status))

    # when
    with pytest.raises(GraphError) as caught:
        client.send_message({"to": "+5511987654321", "type": "text", "text": {"body": "Oi"}})

    # then
    assert caught.value.code == code
    assert caught.value.http_status == status
    assert caught.value.kind == kind
    assert caught.value.pause is pause


def test_it_keeps_metas_title_details_and_trace(client: GraphClient, fake_graph: FakeGraph) -> None:
    # given
    fake_graph.script(
        "messages", graph_error(131026, message="Message undeliverable", details="Not on WhatsApp", subcode=2494010)
    )

    # when
    with pytest.raises(GraphError) as caught:
        client.send_message({"to": "+5511987654321"})

    # then
    error = caught.value
    assert error.title == "Message undeliverable"
    assert error.message == "(#131026) Message undeliverable"
    assert error.details == "Not on WhatsApp"
    assert error.subcode == 2494010
    assert error.fbtrace_id == "TRACE131026"


def test_it_names_the_alert_kind(client: GraphClient, fake_graph: FakeGraph) -> None:
    # given
    fake_graph.script("messages", graph_error(190, status=401), graph_error(368), graph_error(10, status=403))
    kinds = []

    # when
    for _ in range(3):
        with pytest.raises(GraphError) as caught:
            client.send_message({"to": "+5511987654321"})
        kinds.append(caught.value.alert_kind)

    # then
    assert kinds == [Alert.Kind.TOKEN, Alert.Kind.ACCOUNT, Alert.Kind.PERMISSION]


def test_it_treats_plain_429_and_5xx_without_a_graph_body_as_retryable(
    client: GraphClient, fake_graph: FakeGraph
) -> None:
    # given
    fake_graph.script("messages", Reply(status=429, body=b"slow down"), Reply(status=502, body=b"bad gateway"))

    # when
    kinds = []
    for _ in range(2):
        with pytest.raises(GraphError) as caught:
            client.send_message({"to": "+5511987654321"})
        kinds.append((caught.value.http_status, caught.value.kind))

    # then
    assert kinds == [(429, graph.RETRYABLE), (502, graph.RETRYABLE)]


def test_it_treats_a_gateway_timeout_without_a_graph_body_as_uncertain(
    client: GraphClient, fake_graph: FakeGraph
) -> None:
    # given
    fake_graph.script("messages", Reply(status=504, body=b"gateway timeout"))

    # when
    with pytest.raises(GraphError) as caught:
        client.send_message({"to": "+5511987654321"})

    # then
    assert caught.value.kind == graph.UNCERTAIN


def test_it_treats_a_refused_connection_as_safe_to_retry(settings: Any) -> None:
    # given: a port nobody listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.WHATSAPP_GRAPH_URL = f"http://127.0.0.1:{port}/v23.0"
    client = GraphClient(Inbox(phone_number_id="TEST_PNID", access_token="test-token"))

    # when
    with pytest.raises(GraphError) as caught:
        client.send_message({"to": "+5511987654321"})

    # then
    assert caught.value.kind == graph.RETRYABLE
    assert caught.value.http_status is None


def test_it_treats_a_read_timeout_as_uncertain(settings: Any, client: GraphClient, fake_graph: FakeGraph) -> None:
    # given
    client.timeout = 0.2
    fake_graph.script("messages", Reply(accept=True, delay=0.6))

    # when
    with pytest.raises(GraphError) as caught:
        client.send_message({"to": "+5511987654321"})

    # then: the request reached the fake Meta, which accepted it
    assert caught.value.kind == graph.UNCERTAIN
    assert len(fake_graph.sends()) == 1
    assert len(fake_graph.accepted) == 1


def test_it_treats_a_dropped_connection_as_uncertain(client: GraphClient, fake_graph: FakeGraph) -> None:
    # given
    fake_graph.script("messages", Reply(accept=True, drop=True))

    # when
    with pytest.raises(GraphError) as caught:
        client.send_message({"to": "+5511987654321"})

    # then
    assert caught.value.kind == graph.UNCERTAIN
    assert len(fake_graph.accepted) == 1


def test_it_never_logs_the_token(client: GraphClient, fake_graph: FakeGraph, caplog: pytest.LogCaptureFixture) -> None:
    # given
    client.inbox.access_token = "EAAG-super-secret-token"
    caplog.set_level(logging.DEBUG)

    # when: the fake rejects the unknown token with a 401
    with pytest.raises(GraphError) as caught:
        client.send_message({"to": "+5511987654321"})

    # then
    assert caught.value.code == 190
    assert "super-secret" not in caplog.text
    assert "super-secret" not in str(caught.value)
    assert "super-secret" not in repr(caught.value)
