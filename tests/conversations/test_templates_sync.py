"""Message templates kept per inbox from Meta's Graph API (real HTTP to the fake Graph server):
paging, create/update/delete, failures that change nothing, the task, the command, the admin."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.urls import reverse

from conversations import tasks, templates_sync
from conversations.models import Inbox, Membership, MessageTemplate
from conversations.whatsapp.graph import GraphError
from tests.fake_graph import FakeGraph, graph_error

pytest_plugins = ["tests.conftest_graph"]

pytestmark = pytest.mark.django_db


def meta_template(name: str, language: str = "pt_BR", status: str = "APPROVED", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"ID_{name}_{language}",
        "name": name,
        "language": language,
        "status": status,
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": f"{name}: {{{{1}}}}"}],
        **extra,
    }


def rows(inbox: Inbox) -> list[tuple[str, str, str]]:
    return list(
        MessageTemplate.objects.filter(inbox=inbox)
        .order_by("name", "language")
        .values_list("name", "language", "status")
    )


def test_it_reads_every_page_and_creates_the_templates(inbox: Inbox, fake_graph: FakeGraph) -> None:
    # given: 5 templates, listed 2 per page
    fake_graph.templates["TEST_WABA"] = [meta_template(f"modelo_{n}") for n in range(5)]

    # when
    result = _sync_paged(inbox, page_size=2)

    # then
    assert (result.created, result.updated, result.deleted) == (5, 0, 0)
    assert rows(inbox) == [(f"modelo_{n}", "pt_BR", "APPROVED") for n in range(5)]
    calls = fake_graph.calls("templates")
    assert len(calls) == 3
    assert [c.query.get("after") for c in calls] == [None, ["2"], ["4"]]
    assert all(c.path == "/v23.0/TEST_WABA/message_templates" for c in calls)
    assert all(c.headers["authorization"] == "Bearer test-token" for c in calls)
    template = MessageTemplate.objects.get(inbox=inbox, name="modelo_0")
    assert (template.meta_id, template.category, template.components) == (
        "ID_modelo_0_pt_BR",
        "UTILITY",
        [{"type": "BODY", "text": "modelo_0: {{1}}"}],
    )


def _sync_paged(inbox: Inbox, page_size: int) -> templates_sync.SyncResult:
    from conversations.whatsapp.graph import GraphClient

    class Paged(GraphClient):
        def list_templates(self, waba_id: str, **kwargs: Any) -> list[dict[str, Any]]:
            return super().list_templates(waba_id, page_size=page_size)

    return templates_sync.sync_inbox(inbox, client=Paged(inbox))


def test_it_updates_changed_templates_and_deletes_the_ones_meta_no_longer_lists(
    inbox: Inbox, fake_graph: FakeGraph
) -> None:
    # given: three templates synced before
    fake_graph.templates["TEST_WABA"] = [meta_template("a"), meta_template("b"), meta_template("c")]
    templates_sync.sync_inbox(inbox)
    # Meta paused "a", deleted "b", added "d" and an English "c"
    fake_graph.templates["TEST_WABA"] = [
        meta_template("a", status="PAUSED"),
        meta_template("c"),
        meta_template("c", language="en_US"),
        meta_template("d", status="PENDING"),
    ]

    # when
    result = templates_sync.sync_inbox(inbox)

    # then
    assert (result.created, result.updated, result.deleted) == (2, 1, 1)
    assert rows(inbox) == [
        ("a", "pt_BR", "PAUSED"),
        ("c", "en_US", "APPROVED"),
        ("c", "pt_BR", "APPROVED"),
        ("d", "pt_BR", "PENDING"),
    ]


def test_it_changes_nothing_on_a_second_run(inbox: Inbox, fake_graph: FakeGraph) -> None:
    fake_graph.templates["TEST_WABA"] = [meta_template("a"), meta_template("b")]
    templates_sync.sync_inbox(inbox)

    result = templates_sync.sync_inbox(inbox)

    assert (result.created, result.updated, result.deleted) == (0, 0, 0)
    assert MessageTemplate.objects.count() == 2


def test_it_keeps_other_inboxes_templates(inbox: Inbox, fake_graph: FakeGraph) -> None:
    other = Inbox.objects.create(name="B", phone_number_id="PN_B", waba_id="WABA_B", access_token="test-token")
    MessageTemplate.objects.create(inbox=other, name="outra", language="pt_BR", status="APPROVED")
    fake_graph.templates["TEST_WABA"] = [meta_template("a")]

    templates_sync.sync_inbox(inbox)

    assert rows(other) == [("outra", "pt_BR", "APPROVED")]


def test_it_maps_unknown_statuses_to_other_and_skips_nameless_items(inbox: Inbox, fake_graph: FakeGraph) -> None:
    fake_graph.templates["TEST_WABA"] = [
        meta_template("a", status="IN_APPEAL"),
        {"id": "x", "status": "APPROVED"},
        meta_template("b", components="nope"),
    ]

    templates_sync.sync_inbox(inbox)

    assert rows(inbox) == [("a", "pt_BR", "OTHER"), ("b", "pt_BR", "APPROVED")]
    assert MessageTemplate.objects.get(name="b").components == []


def test_it_deletes_nothing_when_a_page_fails(inbox: Inbox, fake_graph: FakeGraph) -> None:
    # given: two synced templates; now the second page of the listing fails
    fake_graph.templates["TEST_WABA"] = [meta_template("a"), meta_template("b"), meta_template("c")]
    templates_sync.sync_inbox(inbox)
    before = rows(inbox)
    fake_graph.templates["TEST_WABA"] = [meta_template("a"), meta_template("z"), meta_template("y")]
    original = fake_graph._templates_page
    calls = {"n": 0}

    def failing_second_page(waba_id: str, query: dict[str, list[str]]) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            return graph_error(131000, status=500)
        return original(waba_id, query)

    fake_graph._templates_page = failing_second_page  # type: ignore[method-assign]

    # when
    with pytest.raises(GraphError) as caught:
        _sync_paged(inbox, page_size=1)

    # then
    assert caught.value.http_status == 500
    assert rows(inbox) == before


def test_it_never_follows_metas_next_link(inbox: Inbox, fake_graph: FakeGraph) -> None:
    # The fake's paging.next points at another host: only our base URL is ever called.
    fake_graph.templates["TEST_WABA"] = [meta_template("a"), meta_template("b")]

    _sync_paged(inbox, page_size=1)

    assert len(fake_graph.calls("templates")) == 2


def test_it_skips_an_inbox_without_a_waba_id(inbox: Inbox, fake_graph: FakeGraph) -> None:
    Inbox.objects.filter(pk=inbox.pk).update(waba_id="")
    inbox.refresh_from_db()

    assert templates_sync.sync_inbox(inbox).total == 0
    assert fake_graph.requests == []


def test_the_task_syncs_every_inbox_and_survives_one_failing(inbox: Inbox, fake_graph: FakeGraph) -> None:
    # given: a second inbox whose account Meta does not know (an error answer)
    Inbox.objects.create(name="B", phone_number_id="PN_B", waba_id="WABA_B", access_token="test-token")
    fake_graph.templates["TEST_WABA"] = [meta_template("a"), meta_template("b")]

    # when
    changed = tasks.sync_message_templates()

    # then
    assert changed == 2
    assert rows(inbox) == [("a", "pt_BR", "APPROVED"), ("b", "pt_BR", "APPROVED")]


def test_the_command_syncs_and_reports(inbox: Inbox, fake_graph: FakeGraph) -> None:
    fake_graph.templates["TEST_WABA"] = [meta_template("a")]
    out = StringIO()

    call_command("sync_templates", stdout=out)

    assert "1 created, 0 updated, 0 deleted." in out.getvalue()
    assert rows(inbox) == [("a", "pt_BR", "APPROVED")]


def test_the_command_fails_loudly_when_meta_refuses(inbox: Inbox, fake_graph: FakeGraph) -> None:
    # no templates registered for TEST_WABA: the fake answers an error
    with pytest.raises(CommandError):
        call_command("sync_templates", "--inbox", str(inbox.pk), stdout=StringIO(), stderr=StringIO())


def test_the_beat_schedule_runs_the_sync_on_the_sending_queue(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["sync-message-templates"]
    assert entry["task"] == "conversations.tasks.sync_message_templates"
    assert entry["options"]["expires"] == entry["options"]["expire_seconds"] > 0
    assert settings.CELERY_TASK_ROUTES["conversations.tasks.sync_message_templates"] == {"queue": "sending"}


# --- The admin ----------------------------------------------------------------------------------


def _admin_client(client: Any, user: User) -> Any:
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client.force_login(user)
    device = TOTPDevice.objects.create(user=user, name="t", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def test_the_admin_syncs_from_meta(inbox: Inbox, fake_graph: FakeGraph, client: Any) -> None:
    # given
    fake_graph.templates["TEST_WABA"] = [meta_template("a"), meta_template("b")]
    admin = User.objects.create_superuser("root")
    _admin_client(client, admin)

    # when
    response = client.post(reverse("admin:conversations_messagetemplate_sync"), follow=True)

    # then
    assert response.status_code == 200
    assert rows(inbox) == [("a", "pt_BR", "APPROVED"), ("b", "pt_BR", "APPROVED")]


def test_the_admin_shows_templates_read_only_and_scoped(inbox: Inbox, client: Any) -> None:
    other = Inbox.objects.create(name="B", phone_number_id="PN_B", waba_id="WABA_B")
    mine = MessageTemplate.objects.create(inbox=inbox, name="meu_modelo", language="pt_BR", status="APPROVED")
    MessageTemplate.objects.create(inbox=other, name="modelo_alheio", language="pt_BR", status="APPROVED")
    supervisor = User.objects.create_user("renata", is_staff=True)
    Membership.objects.create(user=supervisor, inbox=inbox, role=Membership.Role.SUPERVISOR)
    supervisor.user_permissions.set(Permission.objects.filter(content_type__model="messagetemplate"))
    _admin_client(client, supervisor)

    listing = client.get(reverse("admin:conversations_messagetemplate_changelist")).content.decode()
    change = client.post(reverse("admin:conversations_messagetemplate_change", args=[mine.pk]), {"name": "hacked"})

    assert "meu_modelo" in listing
    assert "modelo_alheio" not in listing
    assert change.status_code == 403
    assert MessageTemplate.objects.get(pk=mine.pk).name == "meu_modelo"
