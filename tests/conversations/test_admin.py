"""The admin: every page renders with real data, secrets stay hidden, actions call intake."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from conversations import processing, services
from conversations.models import Alert, Conversation, Customer, Inbox, Membership, Message, OrphanStatus, WebhookEvent
from conversations.whatsapp import store as webhook_store
from conversations.whatsapp.signature import sign
from tests.conftest import TEST_SECRET, status_payload, text_payload

LONG_TOKEN = "EAAG-very-long-access-token-1234567890"
LONG_SECRET = "app-secret-abcdef0123456789"
LONG_VERIFY = "verify-token-zyxwvu987654"


def record(inbox: Inbox, wamid: str, text: str = "Olá", *, wa_id: str = "5511987654321", **extra: Any) -> Message:
    new = services.NewMessage(
        wamid=wamid,
        type=extra.pop("type", "text"),
        timestamp=extra.pop("timestamp", timezone.now()),
        text=text,
        content={"body": text},
        raw={"id": wamid, "text": {"body": text}},
        **extra,
    )
    with transaction.atomic():
        message, _ = services.record_message(inbox, services.Identity(wa_id=wa_id, name="Maria Silva"), new)
    return message


def store(body: dict | bytes, *, valid: bool = True, process: bool = True) -> WebhookEvent:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    event_id = webhook_store.store_event(
        raw,
        signature=sign(raw, TEST_SECRET) if valid else "sha256=" + "0" * 64,
        signature_valid=valid,
        remote_addr=None,
    )
    event = WebhookEvent.objects.get(pk=event_id)
    if process:
        processing.process_event(event.pk)
        event.refresh_from_db()
    return event


@pytest.fixture
def data(inbox: Inbox) -> dict[str, Any]:
    """One of everything, created the way production creates it."""
    event = store(text_payload("wamid.ADMIN1", "Quero marcar um horário <b>amanhã</b>"))
    message = Message.objects.get(wamid="wamid.ADMIN1")
    reply = record(inbox, "wamid.ADMIN2", "Claro! Qual horário?", direction=Message.Direction.OUT)
    store(status_payload("wamid.NOT-OURS", "delivered", 1_750_000_100))
    alert = services.raise_alert(inbox, Alert.Kind.TOKEN, "Access token expired", code=190)
    return {
        "inbox": inbox,
        "alert": alert,
        "customer": message.conversation.customer,
        "conversation": message.conversation,
        "message": reply,
        "webhookevent": event,
        "orphanstatus": OrphanStatus.objects.get(),
    }


MODELS = ["inbox", "alert", "customer", "conversation", "message", "webhookevent", "orphanstatus"]


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
def test_it_renders_the_changelist(admin_client, data, model) -> None:
    # when
    response = admin_client.get(reverse(f"admin:conversations_{model}_changelist"))

    # then
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
def test_it_renders_the_change_page(admin_client, data, model) -> None:
    # when
    response = admin_client.get(reverse(f"admin:conversations_{model}_change", args=[data[model].pk]))

    # then
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
def test_it_renders_the_changelist_filtered_and_searched(admin_client, data, model) -> None:
    response = admin_client.get(reverse(f"admin:conversations_{model}_changelist"), {"q": "maria"})

    assert response.status_code == 200


@pytest.mark.django_db
def test_it_lets_only_inboxes_be_added(admin_client) -> None:
    assert admin_client.get(reverse("admin:conversations_inbox_add")).status_code == 200
    for model in MODELS[1:]:
        assert admin_client.get(reverse(f"admin:conversations_{model}_add")).status_code == 403


@pytest.mark.django_db
def test_it_escapes_customer_text_and_raw_bodies(admin_client, inbox) -> None:
    # given
    event = store(text_payload("wamid.XSS", "<script>alert('x')</script>"))
    message = Message.objects.get(wamid="wamid.XSS")

    # when
    event_page = admin_client.get(reverse("admin:conversations_webhookevent_change", args=[event.pk]))
    message_page = admin_client.get(reverse("admin:conversations_message_change", args=[message.pk]))
    list_page = admin_client.get(reverse("admin:conversations_message_changelist"))

    # then
    for response in (event_page, message_page, list_page):
        assert b"<script>alert(" not in response.content
        assert b"&lt;script&gt;alert(" in response.content


@pytest.mark.django_db
def test_it_pretty_prints_the_event_body(admin_client, inbox) -> None:
    event = store(text_payload("wamid.PRETTY", "Bom dia"))

    response = admin_client.get(reverse("admin:conversations_webhookevent_change", args=[event.pk]))

    assert "\n  &quot;object&quot;: &quot;whatsapp_business_account&quot;," in response.content.decode()


@pytest.mark.django_db
def test_it_shows_a_body_that_is_not_json_as_text(admin_client, inbox) -> None:
    # given: not JSON, and not even UTF-8
    event = store(b"hello <world> \xff", process=False)

    response = admin_client.get(reverse("admin:conversations_webhookevent_change", args=[event.pk]))

    assert response.status_code == 200
    assert "hello &lt;world&gt; \ufffd" in response.content.decode()


@pytest.mark.django_db
def test_it_lists_messages_in_a_bounded_number_of_queries(admin_client, inbox, django_assert_max_num_queries) -> None:
    # given: several conversations, inbound and outbound
    for n in range(12):
        record(inbox, f"wamid.Q{n}", f"mensagem {n}", wa_id=f"55119876500{n:02d}")
        record(inbox, f"wamid.Q{n}-out", "resposta", wa_id=f"55119876500{n:02d}", direction=Message.Direction.OUT)

    # when / then: session, user, the page, the filters' distinct types (same count for 2 or 200 rows)
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("admin:conversations_message_changelist"))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 24


@pytest.mark.django_db
def test_it_lists_webhook_events_in_a_bounded_number_of_queries(
    admin_client, inbox, django_assert_max_num_queries
) -> None:
    for n in range(10):
        store(text_payload(f"wamid.E{n}", f"oi {n}"))
    store(b"not json", valid=False)

    with django_assert_max_num_queries(9):
        response = admin_client.get(reverse("admin:conversations_webhookevent_changelist"))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 11


@pytest.mark.django_db
def test_it_lists_conversations_and_customers_in_a_bounded_number_of_queries(
    admin_client, inbox, django_assert_max_num_queries
) -> None:
    for n in range(10):
        record(inbox, f"wamid.C{n}", wa_id=f"55219876500{n:02d}")

    with django_assert_max_num_queries(9):
        conversations = admin_client.get(reverse("admin:conversations_conversation_changelist"))
    with django_assert_max_num_queries(8):
        customers = admin_client.get(reverse("admin:conversations_customer_changelist"))

    assert len(conversations.context["cl"].result_list) == 10
    assert len(customers.context["cl"].result_list) == 10


@pytest.mark.django_db
def test_it_shows_only_the_latest_messages_on_the_conversation_page(
    admin_client, inbox, django_assert_max_num_queries
) -> None:
    # given: 55 messages, one minute apart
    start = timezone.now() - timedelta(hours=2)
    for n in range(55):
        record(inbox, f"wamid.L{n:02d}", f"msg {n}", timestamp=start + timedelta(minutes=n))
    conversation = Conversation.objects.get()

    # when
    with django_assert_max_num_queries(11):
        response = admin_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))

    # then: the latest 50, oldest first, and a link to all 55
    page = response.content.decode()
    assert "wamid.L04" not in page
    assert page.index("wamid.L05") < page.index("wamid.L54")
    assert f"?conversation={conversation.pk}" in page
    assert "55 mensagens" in page or "55 messages" in page


@pytest.mark.django_db
def test_it_saves_a_conversation_with_the_read_only_messages_inline(admin_client, inbox) -> None:
    # given
    record(inbox, "wamid.S1")
    record(inbox, "wamid.S2")
    conversation = Conversation.objects.get()
    url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    formset = admin_client.get(url).context["inline_admin_formsets"][0].formset
    data = {f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()}
    for n, form in enumerate(formset.forms):
        data[f"{formset.prefix}-{n}-id"] = form.instance.pk
        data[f"{formset.prefix}-{n}-conversation"] = conversation.pk

    # when
    response = admin_client.post(url, {**data, "status": "queued", "assignee": "", "_save": "1"})

    # then: status and owner are read-only (they change through the handoffs actions)
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.BOT
    assert Message.objects.filter(conversation=conversation).count() == 2


# --- Inbox secrets ---------------------------------------------------------------------------


@pytest.fixture
def secret_inbox(db: None) -> Inbox:
    return Inbox.objects.create(
        name="Loja",
        phone_number_id="PNID_SECRET",
        access_token=LONG_TOKEN,
        app_secret=LONG_SECRET,
        verify_token=LONG_VERIFY,
    )


@pytest.mark.django_db
def test_it_never_shows_inbox_secrets_in_full(admin_client, secret_inbox) -> None:
    # when
    pages = [
        admin_client.get(reverse("admin:conversations_inbox_changelist")),
        admin_client.get(reverse("admin:conversations_inbox_change", args=[secret_inbox.pk])),
        admin_client.get(reverse("admin:conversations_inbox_history", args=[secret_inbox.pk])),
        admin_client.get(reverse("admin:conversations_inbox_delete", args=[secret_inbox.pk])),
    ]

    # then
    for response in pages:
        assert response.status_code == 200
        html = response.content.decode()
        for secret in (LONG_TOKEN, LONG_SECRET, LONG_VERIFY):
            assert secret not in html
    assert "EAAG…90" in pages[0].content.decode()
    assert "EAAG…90" in pages[1].content.decode()


@pytest.mark.django_db
def test_it_shows_the_webhook_url_on_the_inbox_page(admin_client, secret_inbox, settings) -> None:
    settings.SITE_URL = "https://atende.example.com.br"

    response = admin_client.get(reverse("admin:conversations_inbox_change", args=[secret_inbox.pk]))

    assert "<code>https://atende.example.com.br/webhooks/whatsapp/</code>" in response.content.decode()


def inbox_post(inbox: Inbox, **overrides: str) -> dict[str, str]:
    return {
        "name": inbox.name,
        "phone_number_id": inbox.phone_number_id,
        "display_number": inbox.display_number,
        "waba_id": inbox.waba_id,
        "is_active": "on",
        "access_token": "",
        "app_secret": "",
        "verify_token": "",
        "_save": "1",
        # The members inline (empty here).
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        **overrides,
    }


@pytest.mark.django_db
def test_it_keeps_a_secret_left_blank(admin_client, secret_inbox) -> None:
    # when
    response = admin_client.post(
        reverse("admin:conversations_inbox_change", args=[secret_inbox.pk]), inbox_post(secret_inbox, name="Loja 2")
    )

    # then
    assert response.status_code == 302
    secret_inbox.refresh_from_db()
    assert secret_inbox.name == "Loja 2"
    assert (secret_inbox.access_token, secret_inbox.app_secret, secret_inbox.verify_token) == (
        LONG_TOKEN,
        LONG_SECRET,
        LONG_VERIFY,
    )


@pytest.mark.django_db
def test_it_replaces_a_secret_that_is_typed_in(admin_client, secret_inbox) -> None:
    response = admin_client.post(
        reverse("admin:conversations_inbox_change", args=[secret_inbox.pk]),
        inbox_post(secret_inbox, app_secret="new-app-secret-000111"),
    )

    assert response.status_code == 302
    secret_inbox.refresh_from_db()
    assert secret_inbox.app_secret == "new-app-secret-000111"
    assert secret_inbox.access_token == LONG_TOKEN


@pytest.mark.django_db
def test_it_creates_an_inbox_with_its_secrets(admin_client) -> None:
    response = admin_client.post(
        reverse("admin:conversations_inbox_add"),
        {
            "name": "Clínica",
            "phone_number_id": "PNID_NEW",
            "display_number": "",
            "waba_id": "",
            "is_active": "on",
            "access_token": LONG_TOKEN,
            "app_secret": LONG_SECRET,
            "verify_token": "",
            "_save": "1",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    inbox = Inbox.objects.get(phone_number_id="PNID_NEW")
    assert (inbox.access_token, inbox.app_secret, inbox.verify_token) == (LONG_TOKEN, LONG_SECRET, "")


@pytest.mark.django_db
def test_it_resumes_sending(admin_client, secret_inbox) -> None:
    # given
    services.pause_sending(secret_inbox, "(#368) Temporarily blocked for policies violations")

    # when
    response = admin_client.post(
        reverse("admin:conversations_inbox_changelist"),
        {"action": "resume_sending", "_selected_action": [secret_inbox.pk]},
    )

    # then
    assert response.status_code == 302
    secret_inbox.refresh_from_db()
    assert secret_inbox.sending_paused_reason == ""


# --- Actions ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_marks_alerts_resolved(admin_client, inbox) -> None:
    # given
    open_alert = services.raise_alert(inbox, Alert.Kind.TOKEN, "Token expired", code=190)
    done = services.raise_alert(inbox, Alert.Kind.TEMPLATE, "Template rejected")
    resolved_at = timezone.now() - timedelta(days=1)
    Alert.objects.filter(pk=done.pk).update(resolved=resolved_at)

    # when
    response = admin_client.post(
        reverse("admin:conversations_alert_changelist"),
        {"action": "mark_resolved", "_selected_action": [open_alert.pk, done.pk]},
    )

    # then: the open one is resolved, the already resolved one keeps its date
    assert response.status_code == 302
    assert Alert.objects.get(pk=open_alert.pk).resolved is not None
    assert Alert.objects.get(pk=done.pk).resolved == resolved_at


@pytest.mark.django_db
def test_it_lists_open_alerts_first(admin_client, inbox) -> None:
    old_open = services.raise_alert(inbox, Alert.Kind.TOKEN, "Token expired")
    resolved = services.raise_alert(inbox, Alert.Kind.TEMPLATE, "Template rejected")
    Alert.objects.filter(pk=resolved.pk).update(resolved=timezone.now())
    Alert.objects.filter(pk=old_open.pk).update(created=timezone.now() - timedelta(days=3))

    response = admin_client.get(reverse("admin:conversations_alert_changelist"))

    assert [a.pk for a in response.context["cl"].result_list] == [old_open.pk, resolved.pk]


@pytest.mark.django_db
def test_it_reprocesses_flagged_events_once_the_inbox_exists(admin_client) -> None:
    # given: a message for a phone number nobody configured yet, and an unsigned event
    flagged = store(text_payload("wamid.LATE", "Alguém aí?"))
    unsigned = store(text_payload("wamid.FORGED"), valid=False)
    assert flagged.state == WebhookEvent.State.FLAGGED
    Inbox.objects.create(name="Test", phone_number_id="TEST_PNID", app_secret=TEST_SECRET)

    # when
    response = admin_client.post(
        reverse("admin:conversations_webhookevent_changelist"),
        {"action": "reprocess", "_selected_action": [flagged.pk, unsigned.pk]},
        follow=True,
    )

    # then
    flagged.refresh_from_db()
    unsigned.refresh_from_db()
    assert flagged.state == WebhookEvent.State.DONE
    assert Message.objects.filter(wamid="wamid.LATE").count() == 1
    assert unsigned.state == WebhookEvent.State.REJECTED
    assert not Message.objects.filter(wamid="wamid.FORGED").exists()
    text = str(next(iter(response.context["messages"])))
    assert "1" in text


@pytest.mark.django_db
def test_it_reprocesses_an_applied_event_without_duplicating(admin_client, inbox) -> None:
    event = store(text_payload("wamid.TWICE"))

    admin_client.post(
        reverse("admin:conversations_webhookevent_changelist"), {"action": "reprocess", "_selected_action": [event.pk]}
    )

    event.refresh_from_db()
    assert event.attempts == 2
    assert event.state == WebhookEvent.State.DONE
    assert Message.objects.filter(wamid="wamid.TWICE").count() == 1


@pytest.mark.django_db
def test_it_retries_a_failed_media_download(admin_client, inbox) -> None:
    # given: a failed image download and a text message
    image = record(inbox, "wamid.IMG", "", type="image", media_id="MEDIA1", media_mime="image/jpeg")
    Message.objects.filter(pk=image.pk).update(
        media_status=Message.MediaStatus.FAILED, media_attempts=6, media_error="HTTP 500"
    )
    text = record(inbox, "wamid.TXT")

    # when
    response = admin_client.post(
        reverse("admin:conversations_message_changelist"),
        {"action": "retry_media_download", "_selected_action": [image.pk, text.pk]},
        follow=True,
    )

    # then
    image.refresh_from_db()
    assert (image.media_status, image.media_attempts, image.media_error) == (Message.MediaStatus.PENDING, 0, "")
    assert Message.objects.get(pk=text.pk).media_status == Message.MediaStatus.NONE
    assert response.status_code == 200


@pytest.mark.django_db
def test_it_lets_only_superusers_delete_webhook_events(client, inbox) -> None:
    # given: a staff member with every permission on events, but not a superuser
    staff = User.objects.create_user("supervisora", is_staff=True)
    Membership.objects.create(user=staff, inbox=inbox, role=Membership.Role.SUPERVISOR)
    staff.user_permissions.set(Permission.objects.filter(content_type__model="webhookevent"))
    client.force_login(staff)
    event = store(text_payload("wamid.KEEP"))

    # when
    response = client.post(reverse("admin:conversations_webhookevent_delete", args=[event.pk]), {"post": "yes"})

    # then
    assert response.status_code == 403
    assert WebhookEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db
def test_it_lets_a_viewer_see_events_but_not_reprocess_them(client, inbox) -> None:
    # given
    staff = User.objects.create_user("supervisora", is_staff=True)
    Membership.objects.create(user=staff, inbox=inbox, role=Membership.Role.SUPERVISOR)
    staff.user_permissions.set(Permission.objects.filter(codename="view_webhookevent"))
    client.force_login(staff)
    event = store(text_payload("wamid.VIEW"), process=False)

    # when
    page = client.get(reverse("admin:conversations_webhookevent_changelist"))
    client.post(
        reverse("admin:conversations_webhookevent_changelist"), {"action": "reprocess", "_selected_action": [event.pk]}
    )

    # then
    assert page.status_code == 200
    assert page.context["action_form"] is None  # no action this user may run
    event.refresh_from_db()
    assert event.state == WebhookEvent.State.PENDING


@pytest.mark.django_db
def test_it_counts_customer_conversations(admin_client, inbox) -> None:
    record(inbox, "wamid.CC1", wa_id="5511911112222")

    response = admin_client.get(reverse("admin:conversations_customer_changelist"))

    customer = response.context["cl"].result_list[0]
    assert customer == Customer.objects.get()
    assert customer._conversations == 1


@pytest.mark.django_db
def test_it_links_a_conversation_and_an_event_to_their_messages(admin_client, inbox) -> None:
    # given: two conversations, the first from a webhook event
    event = store(text_payload("wamid.F1", "primeira"))
    record(inbox, "wamid.F2", "outra conversa", wa_id="5511922223333")
    conversation = Message.objects.get(wamid="wamid.F1").conversation

    # when
    by_conversation = admin_client.get(
        reverse("admin:conversations_message_changelist"), {"conversation": conversation.pk}
    )
    by_event = admin_client.get(reverse("admin:conversations_message_changelist"), {"event": event.pk})

    # then
    assert [m.wamid for m in by_conversation.context["cl"].result_list] == ["wamid.F1"]
    assert [m.wamid for m in by_event.context["cl"].result_list] == ["wamid.F1"]


@pytest.mark.django_db
def test_it_shows_open_alerts_in_the_admin_header(admin_client, inbox) -> None:
    # given
    from conversations import services

    services.raise_alert(inbox, "token", "Access token expired", code=190)
    resolved = services.raise_alert(inbox, "account", "Account restricted", code=368)
    services.resolve_alert(resolved)

    # when
    page = admin_client.get("/admin/").content.decode()

    # then
    assert 'id="atende-alerts"' in page
    assert "1 alerta aberto" in page
    assert "/admin/conversations/alert/?open=yes" in page


@pytest.mark.django_db
def test_it_shows_no_alert_banner_when_all_are_resolved(admin_client, inbox) -> None:
    page = admin_client.get("/admin/").content.decode()

    assert 'id="atende-alerts"' not in page


# --- What a Brazilian newcomer reads (issue 6, defect 18) --------------------------------------


@pytest.mark.django_db
def test_it_names_every_column_in_portuguese(admin_client, data) -> None:
    # when: a browser set up in English; the admin is Portuguese all the same
    conversations = admin_client.get(reverse("admin:conversations_conversation_changelist"), HTTP_ACCEPT_LANGUAGE="en")
    messages_page = admin_client.get(reverse("admin:conversations_message_changelist"), HTTP_ACCEPT_LANGUAGE="en")
    events = admin_client.get(reverse("admin:conversations_webhookevent_changelist"), HTTP_ACCEPT_LANGUAGE="en")

    # then
    headers = [
        str(header["text"]).lower()
        for response in (conversations, messages_page, events)
        for header in response.context["result_headers"]
    ]
    assert "cliente" in headers
    assert "caixa de entrada" in headers
    assert "conversa" in headers
    assert not {"customer", "inbox", "conversation", "sender", "type"} & set(headers)


@pytest.mark.django_db
def test_it_labels_the_staff_sender_apart_from_the_sender_kind(admin_client, data, english) -> None:
    response = admin_client.get(reverse("admin:conversations_message_change", args=[data["message"].pk]))

    html = response.content.decode()
    assert "<label>Sent by:</label>" in html
    assert "<label>Sender:</label>" in html  # the kind: customer, bot, attendant...
    assert html.count("<label>Sender:</label>") == 1


@pytest.mark.django_db
def test_it_shows_message_types_by_their_translated_name(admin_client, inbox) -> None:
    # given
    record(inbox, "wamid.TYPE1", "Olá")
    record(inbox, "wamid.TYPE2", "Confirmar", type="interactive")
    record(inbox, "wamid.TYPE3", "", type="brand_new_type")

    # when
    response = admin_client.get(reverse("admin:conversations_message_changelist"))

    # then: known types by name, an unknown one as WhatsApp calls it
    html = response.content.decode()
    assert '<td class="field-type_label">Texto</td>' in html
    assert '<td class="field-type_label">text</td>' not in html
    assert '<td class="field-type_label">brand_new_type</td>' in html
    assert "?type=text" in html  # the filter still filters on the stored value


@pytest.mark.django_db
def test_it_shows_message_types_in_english_for_an_english_user(admin_client, inbox, english) -> None:
    record(inbox, "wamid.TYPE4", "Confirmar", type="interactive")

    response = admin_client.get(reverse("admin:conversations_message_changelist"))

    assert '<td class="field-type_label">Interactive</td>' in response.content.decode()


@pytest.mark.django_db
def test_it_filters_messages_by_type(admin_client, inbox) -> None:
    record(inbox, "wamid.F-T1", "Olá")
    record(inbox, "wamid.F-T2", "Confirmar", type="interactive")

    response = admin_client.get(reverse("admin:conversations_message_changelist"), {"type": "interactive"})

    assert [m.wamid for m in response.context["cl"].result_list] == ["wamid.F-T2"]


@pytest.mark.django_db
def test_it_shows_every_date_in_the_business_time_zone(admin_client, inbox, settings) -> None:
    # given: 08:26:40 UTC is 05:26 in São Paulo
    settings.TIME_ZONE = "America/Sao_Paulo"
    moment = datetime(2025, 11, 23, 8, 26, 40, tzinfo=UTC)
    message = record(inbox, "wamid.TZ1", "Bom dia", timestamp=moment)
    Message.objects.filter(pk=message.pk).update(
        edit_history=[{"text": "Bom di", "replaced_at": moment.isoformat(), "by_wamid": "wamid.TZ2"}]
    )
    event = store(text_payload("wamid.TZ3", "Oi"))
    WebhookEvent.objects.filter(pk=event.pk).update(received=moment)

    # when
    pages = {
        "conversation": admin_client.get(
            reverse("admin:conversations_conversation_change", args=[message.conversation_id])
        ),
        "message": admin_client.get(reverse("admin:conversations_message_change", args=[message.pk])),
        "event": admin_client.get(reverse("admin:conversations_webhookevent_change", args=[event.pk])),
    }

    # then: local time in the locale's format, and no UTC anywhere
    for name, response in pages.items():
        html = response.content.decode()
        assert "+00:00" not in html, name
        assert "08:26" not in html, name
    assert "24/11/2025 05:26" in pages["conversation"].content.decode()  # the 24-hour window closes
    assert "&quot;replaced_at&quot;: &quot;23/11/2025 05:26&quot;" in pages["message"].content.decode()
    assert f"#{event.pk} 23/11/2025 05:26" in pages["event"].content.decode()


@pytest.mark.django_db
def test_it_keeps_long_values_from_widening_the_lists(admin_client, inbox) -> None:
    # given
    record(inbox, "wamid.LONG", "palavra " * 80)

    # when
    page = admin_client.get(reverse("admin:conversations_message_changelist")).content.decode()

    # then: the preview is cut by the admin's stylesheet, which every admin page loads
    start = page.index('<td class="field-preview">')
    cell = page[start : page.index("</td>", start)]
    assert '<span class="atende-cut" title="' in cell
    assert "palavra palavra" in cell
    assert "/static/css/admin.css" in page
