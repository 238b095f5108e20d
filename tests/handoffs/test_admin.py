"""Ownership in the admin (read-only fields, actions that call the services), and who may use
the admin at all: superusers everything, supervisors their inboxes' rows, attendants nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from conversations import services as conversation_services
from conversations.models import Alert, Conversation, Inbox, Membership, Message, WebhookEvent
from handoffs.admin import OwnershipConversationAdmin
from handoffs.models import OwnershipChange

Status = Conversation.Status


def record(inbox: Inbox, wamid: str, *, wa_id: str = "5511987654321", text: str = "Olá") -> Message:
    new = conversation_services.NewMessage(wamid=wamid, type="text", timestamp=timezone.now(), text=text)
    with transaction.atomic():
        message, _ = conversation_services.record_message(
            inbox, conversation_services.Identity(wa_id=wa_id, name="Maria Silva"), new
        )
    return message


def change_form_data(client: Any, conversation: Conversation) -> tuple[str, dict[str, Any]]:
    """The change page's own POST data (the messages inline's management form included)."""
    url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    data: dict[str, Any] = {"_save": "1"}
    for inline in client.get(url).context["inline_admin_formsets"]:
        formset = inline.formset
        data.update({f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()})
        for n, form in enumerate(formset.forms):
            data[f"{formset.prefix}-{n}-id"] = form.instance.pk
            data[f"{formset.prefix}-{n}-conversation"] = conversation.pk
    return url, data


def act(client: Any, action: str, *conversations: Conversation, **extra: Any) -> Any:
    return client.post(
        reverse("admin:conversations_conversation_changelist"),
        {"action": action, "_selected_action": [c.pk for c in conversations], **extra},
        follow=True,
    )


def shown_messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def state(conversation: Conversation) -> tuple[str, Any, Any]:
    conversation = Conversation.objects.get(pk=conversation.pk)
    return conversation.status, conversation.assignee_id, conversation.closed


# --- Defect 9: status and owner were plain form fields -----------------------------------------


@pytest.mark.django_db
def test_it_ignores_a_status_and_assignee_posted_in_the_change_form(admin_client, team) -> None:
    # given
    conversation = record(team.inbox, "wamid.D9A").conversation
    url, data = change_form_data(admin_client, conversation)

    # when: the old form closed it here, leaving `closed` empty and telling nobody
    response = admin_client.post(url, {**data, "status": "closed", "assignee": team.ana.pk})

    # then
    assert response.status_code == 302
    assert state(conversation) == (Status.BOT, None, None)
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_never_answers_500_for_a_reopen_posted_in_the_change_form(admin_client, team) -> None:
    # given: a closed conversation, and the customer's newer open one
    old = record(team.inbox, "wamid.D9B").conversation
    Conversation.objects.filter(pk=old.pk).update(status=Status.CLOSED, closed=timezone.now())
    newer = record(team.inbox, "wamid.D9C").conversation
    url, data = change_form_data(admin_client, old)

    # when: the old form tried to write a second open conversation (IntegrityError, 500)
    response = admin_client.post(url, {**data, "status": "bot"})

    # then
    assert response.status_code == 302
    assert state(old)[0] == Status.CLOSED
    assert state(newer)[0] == Status.BOT


@pytest.mark.django_db
def test_it_shows_status_and_assignee_read_only(admin_client, team) -> None:
    conversation = record(team.inbox, "wamid.RO").conversation

    response = admin_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))

    form = response.context["adminform"].form
    assert "status" not in form.fields
    assert "assignee" not in form.fields


def test_it_replaces_the_conversation_admin_with_the_ownership_one() -> None:
    assert type(admin.site._registry[Conversation]) is OwnershipConversationAdmin


# --- The actions -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_takes_conversations_over_from_the_admin(admin_client, team) -> None:
    # given
    conversation = record(team.inbox, "wamid.A1").conversation
    admin_user = User.objects.get(username="admin")

    # when
    response = act(admin_client, "take_over", conversation)

    # then
    assert response.status_code == 200
    assert state(conversation) == (Status.ASSIGNED, admin_user.pk, None)
    change = OwnershipChange.objects.get()
    assert (change.action, change.actor, change.from_status) == ("take_over", admin_user, Status.BOT)


@pytest.mark.django_db
def test_it_asks_whom_to_assign_to_then_assigns(admin_client, team) -> None:
    # given
    conversation = record(team.inbox, "wamid.A2").conversation

    # when: the first post shows the form with the inbox's members
    page = act(admin_client, "assign_to", conversation)
    choices = {int(value.value) for value, _label in page.context["form"].fields["assignee"].choices if value}
    done = act(admin_client, "assign_to", conversation, apply="1", assignee=team.bruno.pk, reason="VIP")

    # then
    assert choices == {team.supervisor.pk, team.ana.pk, team.bruno.pk}
    assert state(conversation) == (Status.ASSIGNED, team.bruno.pk, None)
    change = OwnershipChange.objects.get()
    assert (change.action, change.to_assignee, change.reason) == ("assign", team.bruno, "VIP")
    assert done.status_code == 200


@pytest.mark.django_db
def test_it_returns_conversations_to_the_queue_and_to_the_bot(admin_client, team) -> None:
    first = record(team.inbox, "wamid.A3", wa_id="5511900000001").conversation
    second = record(team.inbox, "wamid.A4", wa_id="5511900000002").conversation
    Conversation.objects.filter(pk__in=[first.pk, second.pk]).update(status=Status.ASSIGNED, assignee=team.ana)

    act(admin_client, "return_to_queue", first)
    act(admin_client, "return_to_bot", second)

    assert state(first) == (Status.QUEUED, None, None)
    assert state(second) == (Status.BOT, None, None)
    assert sorted(OwnershipChange.objects.values_list("action", flat=True)) == ["to_bot", "to_queue"]


@pytest.mark.django_db
def test_it_closes_with_a_resolution_note_and_reopens(admin_client, team) -> None:
    # given
    conversation = record(team.inbox, "wamid.A5").conversation

    # when
    form_page = act(admin_client, "close_conversations", conversation)
    act(admin_client, "close_conversations", conversation, apply="1", resolution="Agendado")
    closed_state = state(conversation)
    act(admin_client, "reopen", conversation)

    # then: close set `closed`, reopen cleared it (and gave it to whoever reopened it)
    assert "resolution" in form_page.context["form"].fields
    assert closed_state[0] == Status.CLOSED
    assert closed_state[2] is not None
    assert state(conversation) == (Status.ASSIGNED, User.objects.get(username="admin").pk, None)
    close, reopen = OwnershipChange.objects.order_by("id")
    assert (close.action, close.reason, reopen.action) == ("close", "Agendado", "reopen")


@pytest.mark.django_db
def test_it_does_not_close_without_a_resolution_note(admin_client, team) -> None:
    conversation = record(team.inbox, "wamid.A6").conversation

    response = act(admin_client, "close_conversations", conversation, apply="1", resolution="")

    assert response.context["form"].errors
    assert state(conversation) == (Status.BOT, None, None)


@pytest.mark.django_db
def test_it_shows_the_refusal_of_a_reopen_instead_of_a_500(admin_client, team, english) -> None:
    # given
    old = record(team.inbox, "wamid.A7").conversation
    Conversation.objects.filter(pk=old.pk).update(status=Status.CLOSED, closed=timezone.now())
    newer = record(team.inbox, "wamid.A8").conversation

    # when
    response = act(admin_client, "reopen", old)

    # then
    assert response.status_code == 200
    assert shown_messages(response) == [
        f"Conversation #{old.pk}: This customer already has another open conversation in this inbox "
        f"(#{newer.pk}): continue there."
    ]
    assert state(old)[0] == Status.CLOSED
    assert not OwnershipChange.objects.exists()


@pytest.mark.django_db
def test_it_shows_the_ownership_history_on_the_change_page(admin_client, team) -> None:
    conversation = record(team.inbox, "wamid.A9").conversation
    act(admin_client, "take_over", conversation)

    response = admin_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))

    assert response.status_code == 200
    assert "<td>admin</td>" in response.content.decode()


# --- Who may use the admin ---------------------------------------------------------------------


@pytest.fixture
def attendant_client(client: Any, team: Any) -> Any:
    """An attendant made staff with every permission: still no admin."""
    team.ana.is_staff = True
    team.ana.save()
    team.ana.user_permissions.set(Permission.objects.all())
    client.force_login(team.ana)
    return client


PAGES = ["inbox", "alert", "customer", "conversation", "message", "webhookevent", "orphanstatus"]


@pytest.mark.django_db
def test_it_keeps_attendants_out_of_the_admin(attendant_client, team) -> None:
    # given
    conversation = record(team.inbox, "wamid.ATT").conversation

    # when
    urls = [reverse("admin:index")]
    urls += [reverse(f"admin:conversations_{model}_changelist") for model in PAGES]
    urls += [reverse("admin:conversations_conversation_change", args=[conversation.pk])]
    responses = [attendant_client.get(url) for url in urls]

    # then
    for url, response in zip(urls, responses, strict=True):
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("admin:login")), url
    assert b"Maria" not in b"".join(r.content for r in responses)


@pytest.mark.django_db
def test_it_refuses_admin_actions_to_an_attendant(attendant_client, team) -> None:
    conversation = record(team.inbox, "wamid.ATT2").conversation

    response = attendant_client.post(
        reverse("admin:conversations_conversation_changelist"),
        {"action": "take_over", "_selected_action": [conversation.pk]},
    )

    assert response.status_code == 302
    assert state(conversation) == (Status.BOT, None, None)


@pytest.fixture
def two_inboxes(team: Any) -> dict[str, Any]:
    """One of every row in the supervisor's inbox and in another inbox; one customer in both."""
    rows: dict[str, Any] = {}
    for key, inbox in (("mine", team.inbox), ("theirs", team.other_inbox)):
        message = record(inbox, f"wamid.{key}", wa_id=f"55119{len(key)}0000000", text=f"texto {key}")
        event = WebhookEvent.objects.create(
            body=b"{}", body_sha256=key, signature_valid=True, inbox=inbox, state=WebhookEvent.State.DONE
        )
        alert = conversation_services.raise_alert(inbox, Alert.Kind.TOKEN, f"Token {key}")
        rows[key] = {
            "inbox": inbox,
            "customer": message.conversation.customer,
            "conversation": message.conversation,
            "message": message,
            "webhookevent": event,
            "alert": alert,
        }
    shared = record(team.other_inbox, "wamid.shared", wa_id="5511955550000").conversation.customer
    record(team.inbox, "wamid.shared2", wa_id="5511955550000")
    rows["shared_customer"] = shared
    return rows


@pytest.fixture
def supervisor_client(client: Any, team: Any) -> Any:
    team.supervisor.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["conversations", "handoffs"])
    )
    client.force_login(team.supervisor)
    return client


SCOPED = ["inbox", "alert", "customer", "conversation", "message", "webhookevent"]


@pytest.mark.django_db
@pytest.mark.parametrize("model", SCOPED)
def test_it_lists_only_the_supervisors_inboxes_rows(supervisor_client, two_inboxes, model) -> None:
    # when
    response = supervisor_client.get(reverse(f"admin:conversations_{model}_changelist"))

    # then
    assert response.status_code == 200
    listed = set(response.context["cl"].result_list)
    assert two_inboxes["mine"][model] in listed
    assert two_inboxes["theirs"][model] not in listed


@pytest.mark.django_db
@pytest.mark.parametrize("model", SCOPED)
def test_it_keeps_a_supervisor_out_of_another_inboxs_change_page(supervisor_client, two_inboxes, model) -> None:
    # when
    mine = supervisor_client.get(reverse(f"admin:conversations_{model}_change", args=[two_inboxes["mine"][model].pk]))
    theirs = supervisor_client.get(
        reverse(f"admin:conversations_{model}_change", args=[two_inboxes["theirs"][model].pk])
    )

    # then: like a row that does not exist
    assert mine.status_code == 200
    assert theirs.status_code == 302
    assert theirs.url == reverse("admin:index")


@pytest.mark.django_db
def test_it_shows_a_supervisor_only_their_inboxs_side_of_a_shared_customer(supervisor_client, two_inboxes) -> None:
    customer = two_inboxes["shared_customer"]

    response = supervisor_client.get(reverse("admin:conversations_customer_change", args=[customer.pk]))

    inline = response.context["inline_admin_formsets"][0].formset
    assert {form.instance.inbox_id for form in inline.forms} == {two_inboxes["mine"]["inbox"].pk}


@pytest.mark.django_db
def test_it_hides_unscoped_records_from_a_supervisor(supervisor_client, two_inboxes) -> None:
    response = supervisor_client.get(reverse("admin:conversations_orphanstatus_changelist"))

    assert response.status_code == 403


@pytest.mark.django_db
def test_it_lets_a_supervisor_act_only_on_their_inboxes(supervisor_client, two_inboxes, team) -> None:
    mine = two_inboxes["mine"]["conversation"]
    theirs = two_inboxes["theirs"]["conversation"]

    act(supervisor_client, "take_over", mine, theirs)

    assert state(mine) == (Status.ASSIGNED, team.supervisor.pk, None)
    assert state(theirs) == (Status.BOT, None, None)


@pytest.mark.django_db
def test_it_never_shows_inbox_secrets_to_a_supervisor(supervisor_client, team) -> None:
    Inbox.objects.filter(pk=team.inbox.pk).update(access_token="EAAG-secret-token-123456", verify_token="verify-123456")

    pages = [
        supervisor_client.get(reverse("admin:conversations_inbox_changelist")),
        supervisor_client.get(reverse("admin:conversations_inbox_change", args=[team.inbox.pk])),
    ]

    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        for shown in ("EAAG", "test-secret", "test…et", "verify-123456", "app_secret", "access_token"):
            assert shown not in html
    form = pages[1].context["adminform"].form
    assert set(form.fields) == {"name", "display_number", "is_active"}
    assert pages[1].context["inline_admin_formsets"] == []


@pytest.mark.django_db
def test_it_lets_a_supervisor_rename_their_inbox_but_not_reroute_it(supervisor_client, team) -> None:
    # when
    response = supervisor_client.post(
        reverse("admin:conversations_inbox_change", args=[team.inbox.pk]),
        {"name": "Matriz", "display_number": "5511900000000", "is_active": "on", "phone_number_id": "HIJACK"},
    )

    # then
    assert response.status_code == 302
    team.inbox.refresh_from_db()
    assert (team.inbox.name, team.inbox.phone_number_id, team.inbox.app_secret) == (
        "Matriz",
        "TEST_PNID",
        "test-secret",
    )


@pytest.mark.django_db
def test_it_lets_only_superusers_add_or_delete_inboxes(supervisor_client, team) -> None:
    assert supervisor_client.get(reverse("admin:conversations_inbox_add")).status_code == 403
    delete = supervisor_client.post(reverse("admin:conversations_inbox_delete", args=[team.inbox.pk]), {"post": "yes"})
    assert delete.status_code == 403
    assert Inbox.objects.filter(pk=team.inbox.pk).exists()


@pytest.mark.django_db
def test_it_lets_a_superuser_add_a_member_to_an_inbox(admin_client, team) -> None:
    # given
    newcomer = User.objects.create_user("carla")
    url = reverse("admin:conversations_inbox_change", args=[team.inbox.pk])
    formset = admin_client.get(url).context["inline_admin_formsets"][0].formset
    data = {f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()}
    for n, form in enumerate(formset.forms):
        data |= {f"{formset.prefix}-{n}-id": form.instance.pk, f"{formset.prefix}-{n}-inbox": team.inbox.pk}
        data |= {f"{formset.prefix}-{n}-user": form.instance.user_id, f"{formset.prefix}-{n}-role": form.instance.role}
    count = len(formset.forms)
    data |= {f"{formset.prefix}-TOTAL_FORMS": count + 1}
    data |= {f"{formset.prefix}-{count}-user": newcomer.pk, f"{formset.prefix}-{count}-role": "supervisor"}

    # when
    response = admin_client.post(
        url,
        {
            "name": team.inbox.name,
            "phone_number_id": team.inbox.phone_number_id,
            "display_number": team.inbox.display_number,
            "waba_id": team.inbox.waba_id,
            "is_active": "on",
            "_save": "1",
            **data,
        },
    )

    # then
    assert response.status_code == 302
    assert Membership.objects.get(user=newcomer).role == Membership.Role.SUPERVISOR
    assert Membership.objects.filter(inbox=team.inbox).count() == 4


@pytest.mark.django_db
def test_it_lets_the_demo_supervisor_in_and_keeps_the_demo_attendants_out(client, settings, monkeypatch) -> None:
    # given: the embedded demo (seed_demo), whose attendants are is_staff
    from django.core.management import call_command

    settings.PRODUCTION = False
    settings.WHATSAPP_PHONE_NUMBER_ID = "DEMO_PNID"
    settings.WHATSAPP_APP_SECRET = "demo-app-secret"
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    call_command("seed_demo", "--quiet")
    supervisor, attendant = User.objects.get(username="supervisora"), User.objects.get(username="atendente1")

    # when
    client.force_login(supervisor)
    supervisor_page = client.get(reverse("admin:conversations_conversation_changelist"))
    client.force_login(attendant)
    attendant_page = client.get(reverse("admin:conversations_conversation_changelist"))

    # then
    assert supervisor_page.status_code == 200
    assert supervisor_page.context["cl"].result_count == Conversation.objects.count() > 0
    assert attendant_page.status_code == 302


@pytest.mark.django_db
def test_it_lists_only_the_supervisors_inboxes_ownership_changes(supervisor_client, two_inboxes, team) -> None:
    # given
    from handoffs import services

    services.take_over(two_inboxes["mine"]["conversation"], team.ana)
    services.take_over(two_inboxes["theirs"]["conversation"], team.outsider)

    # when
    response = supervisor_client.get(reverse("admin:handoffs_ownershipchange_changelist"))

    # then
    assert response.status_code == 200
    assert [change.to_assignee for change in response.context["cl"].result_list] == [team.ana]


@pytest.mark.django_db
def test_it_offers_the_allowed_actions_as_buttons_on_the_change_page(supervisor_client, team) -> None:
    # given
    conversation = record(team.inbox, "wamid.BTN").conversation
    url = reverse("admin:conversations_conversation_change", args=[conversation.pk])

    # when
    offered = [name for name, _label in supervisor_client.get(url).context["ownership_actions"]]
    supervisor_client.post(
        reverse("admin:conversations_conversation_changelist"),
        {"action": "take_over", "_selected_action": [conversation.pk]},
    )
    offered_after = [name for name, _label in supervisor_client.get(url).context["ownership_actions"]]

    # then
    assert offered == ["take_over", "assign_to", "return_to_queue", "close_conversations"]
    assert offered_after == ["assign_to", "return_to_queue", "return_to_bot", "close_conversations"]
    assert state(conversation) == (Status.ASSIGNED, team.supervisor.pk, None)
