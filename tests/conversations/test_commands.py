"""seed_demo, replay_webhooks and sign_webhook."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command

from conversations import processing
from conversations.models import Conversation, Customer, Inbox, Message, WebhookEvent
from conversations.whatsapp import store
from conversations.whatsapp.signature import sign, verify
from tests.conftest import FIXTURES, TEST_SECRET, text_payload

DEMO_PNID = "106540352242922"


def run(*args: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def demo_settings(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The embedded mode's defaults, also when the suite runs against PostgreSQL and Redis."""
    settings.PRODUCTION = False
    settings.SITE_URL = "http://127.0.0.1:8000"
    settings.WHATSAPP_PHONE_NUMBER_ID = DEMO_PNID
    settings.WHATSAPP_DISPLAY_NUMBER = "15550783881"
    settings.WHATSAPP_WABA_ID = "102290129340398"
    settings.WHATSAPP_ACCESS_TOKEN = "demo-access-token"
    settings.WHATSAPP_APP_SECRET = "demo-app-secret"
    settings.WHATSAPP_VERIFY_TOKEN = "demo-verify-token"
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    return settings


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "groups": Group.objects.count(),
        "inboxes": Inbox.objects.count(),
        "customers": Customer.objects.count(),
        "conversations": Conversation.objects.count(),
        "messages": Message.objects.count(),
    }


# --- seed_demo ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_seeds_the_demo_once(demo_settings) -> None:
    # when
    run("seed_demo", "--quiet")
    first = counts()
    run("seed_demo", "--quiet")

    # then
    assert counts() == first
    assert first == {"users": 4, "groups": 2, "inboxes": 1, "customers": 5, "conversations": 5, "messages": 14}


@pytest.mark.django_db
def test_it_creates_the_demo_users_and_groups(demo_settings) -> None:
    run("seed_demo", "--quiet")

    admin = User.objects.get(username="admin")
    supervisor = User.objects.get(username="supervisora")
    attendant = User.objects.get(username="atendente1")
    assert admin.is_superuser and admin.check_password("atende-demo-2026")
    assert supervisor.is_staff and not supervisor.is_superuser
    assert list(supervisor.groups.values_list("name", flat=True)) == ["Supervisores"]
    assert list(attendant.groups.values_list("name", flat=True)) == ["Atendentes"]
    assert supervisor.has_perm("conversations.change_webhookevent")
    assert not supervisor.has_perm("conversations.change_inbox")
    assert attendant.has_perm("conversations.view_message")
    assert not attendant.has_perm("conversations.view_webhookevent")


@pytest.mark.django_db
def test_it_creates_realistic_conversations_through_the_services(demo_settings) -> None:
    run("seed_demo", "--quiet")

    customer = Customer.objects.get(wa_id="5531987650003")
    assert customer.phone == "+5531987650003"
    assert Message.objects.get(wamid="wamid.DEMO-011").reactions == {"customer": "👍"}
    assert Message.objects.get(wamid="wamid.DEMO-010").content["name"] == "Praça da Liberdade"
    ad = Conversation.objects.get(customer__wa_id="5585987650004")
    assert ad.referral_headline == "Promoção de inverno: 20% em toda a loja"
    assert ad.inbox.phone_number_id == DEMO_PNID
    assert not Message.objects.exclude(media_status=Message.MediaStatus.NONE).exists()


@pytest.mark.django_db
def test_it_prints_logins_and_demo_credentials_in_the_embedded_mode(demo_settings) -> None:
    out = run("seed_demo")

    assert "admin / atende-demo-2026" in out
    assert "atendente2 / atende-demo-2026" in out
    assert "http://127.0.0.1:8000/admin/" in out
    assert "http://127.0.0.1:8000/webhooks/whatsapp/" in out
    assert "demo-verify-token" in out
    assert "demo-app-secret" in out


@pytest.mark.django_db
def test_it_prints_nothing_when_quiet(demo_settings) -> None:
    assert run("seed_demo", "--quiet") == ""


@pytest.mark.django_db
def test_it_uses_demo_password_from_the_environment(demo_settings, monkeypatch) -> None:
    monkeypatch.setenv("DEMO_PASSWORD", "outra-senha-segura-42")

    run("seed_demo", "--quiet")

    assert User.objects.get(username="atendente1").check_password("outra-senha-segura-42")


@pytest.mark.django_db
def test_it_never_resets_an_existing_password(demo_settings) -> None:
    # given
    User.objects.create_user("atendente1", password="changed-by-the-user-77")

    # when
    out = run("seed_demo")

    # then
    user = User.objects.get(username="atendente1")
    assert user.check_password("changed-by-the-user-77")
    assert "atendente1 / " not in out
    assert list(user.groups.values_list("name", flat=True)) == ["Atendentes"]


@pytest.mark.django_db
def test_it_refuses_the_default_password_in_production(demo_settings) -> None:
    demo_settings.PRODUCTION = True

    with pytest.raises(CommandError, match="DEMO_PASSWORD"):
        run("seed_demo")

    assert User.objects.count() == 0
    assert Inbox.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_a_weak_demo_password_in_production(demo_settings, monkeypatch) -> None:
    demo_settings.PRODUCTION = True
    monkeypatch.setenv("DEMO_PASSWORD", "123456")

    with pytest.raises(CommandError, match="too weak"):
        run("seed_demo")

    assert User.objects.count() == 0


@pytest.mark.django_db
def test_it_prints_no_secret_in_production(demo_settings, monkeypatch) -> None:
    # given
    demo_settings.PRODUCTION = True
    monkeypatch.setenv("DEMO_PASSWORD", "Prod-Demo-Password-2026!")

    # when
    out = run("seed_demo")

    # then
    assert "Prod-Demo-Password-2026!" not in out
    assert "demo-app-secret" not in out
    assert "demo-verify-token" not in out
    assert "exists" in out
    assert User.objects.get(username="admin").check_password("Prod-Demo-Password-2026!")


# --- replay_webhooks ---------------------------------------------------------------------------


def stored(body: dict, *, valid: bool = True) -> WebhookEvent:
    raw = json.dumps(body).encode()
    event_id = store.store_event(raw, signature=sign(raw, TEST_SECRET), signature_valid=valid, remote_addr=None)
    return WebhookEvent.objects.get(pk=event_id)


@pytest.mark.django_db
def test_it_replays_a_pending_event(inbox) -> None:
    # given: stored but never processed (the broker was down)
    event = stored(text_payload("wamid.PENDING", "Oi, tudo bem?"))

    # when
    out = run("replay_webhooks")

    # then
    event.refresh_from_db()
    assert event.state == WebhookEvent.State.DONE
    assert Message.objects.get(wamid="wamid.PENDING").text == "Oi, tudo bem?"
    assert "Processed 1 events (done: 1)." in out


@pytest.mark.django_db
def test_it_leaves_flagged_events_alone_unless_asked() -> None:
    # given: a message for a phone number that was not configured when it arrived
    event = stored(text_payload("wamid.FLAG"))
    processing.process_event(event.pk)
    event.refresh_from_db()
    assert event.state == WebhookEvent.State.FLAGGED
    Inbox.objects.create(name="Test", phone_number_id="TEST_PNID", app_secret=TEST_SECRET)

    # when
    plain = run("replay_webhooks")
    event.refresh_from_db()
    state_after_plain = event.state
    flagged = run("replay_webhooks", "--flagged")

    # then
    assert state_after_plain == WebhookEvent.State.FLAGGED
    assert "nothing to do" in plain
    event.refresh_from_db()
    assert event.state == WebhookEvent.State.DONE
    assert "done: 1" in flagged
    assert Message.objects.filter(wamid="wamid.FLAG").count() == 1


@pytest.mark.django_db
def test_it_replays_one_event_by_id(inbox) -> None:
    event = stored(text_payload("wamid.ONE"))
    processing.process_event(event.pk)

    out = run("replay_webhooks", "--id", str(event.pk))

    event.refresh_from_db()
    assert event.attempts == 2
    assert "done: 1" in out
    assert Message.objects.filter(wamid="wamid.ONE").count() == 1


@pytest.mark.django_db
def test_it_refuses_to_replay_an_unsigned_event(inbox) -> None:
    event = stored(text_payload("wamid.FORGED"), valid=False)

    with pytest.raises(CommandError, match="invalid signature"):
        run("replay_webhooks", "--id", str(event.pk))

    event.refresh_from_db()
    assert event.state == WebhookEvent.State.REJECTED
    assert event.attempts == 0
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_it_respects_the_limit(inbox) -> None:
    for n in range(3):
        stored(text_payload(f"wamid.LIM{n}"))

    out = run("replay_webhooks", "--limit", "2")

    assert "Processed 2 events" in out
    assert WebhookEvent.objects.filter(state=WebhookEvent.State.PENDING).count() == 1


@pytest.mark.django_db
def test_it_reports_an_unknown_event_id() -> None:
    with pytest.raises(CommandError, match="No webhook event #999"):
        run("replay_webhooks", "--id", "999")


# --- sign_webhook ------------------------------------------------------------------------------


def test_it_prints_a_signature_that_verifies(tmp_path: Path) -> None:
    # given: a body with non-ASCII text, signed over its exact bytes
    path = tmp_path / "body.json"
    path.write_bytes('{"object": "whatsapp_business_account", "x": "ação"}'.encode())

    # when
    header = run("sign_webhook", str(path), "--secret", "s3cr3t").strip()

    # then
    assert header.startswith("sha256=")
    assert verify(path.read_bytes(), header, ["s3cr3t"]) == "s3cr3t"


@pytest.mark.django_db
def test_it_signs_with_the_default_inbox_secret(inbox, settings) -> None:
    settings.WHATSAPP_PHONE_NUMBER_ID = inbox.phone_number_id
    settings.WHATSAPP_APP_SECRET = "not-this-one"
    path = FIXTURES / "01_text_meta.json"

    header = run("sign_webhook", str(path)).strip()

    assert header == sign(path.read_bytes(), TEST_SECRET)


def test_it_refuses_to_sign_without_a_secret(settings, tmp_path: Path) -> None:
    settings.WHATSAPP_PHONE_NUMBER_ID = ""
    settings.WHATSAPP_APP_SECRET = ""
    path = tmp_path / "body.json"
    path.write_text("{}")

    with pytest.raises(CommandError, match="No app secret"):
        run("sign_webhook", str(path))


@pytest.mark.django_db(transaction=True)
def test_it_posts_a_signed_sample_to_the_webhook(live_server, tmp_path: Path) -> None:
    # given: the test inbox, and a sample routed to it
    Inbox.objects.create(name="Test", phone_number_id="TEST_PNID", app_secret=TEST_SECRET)
    path = tmp_path / "sample.json"
    path.write_text(json.dumps(text_payload("wamid.POSTED", "Chegou?")))
    url = f"{live_server.url}/webhooks/whatsapp/"

    # when
    out = run("sign_webhook", str(path), "--secret", TEST_SECRET, "--post", url)

    # then
    assert f"POST {url} -> 200" in out
    event = WebhookEvent.objects.get()
    assert event.signature_valid
    assert bytes(event.body) == path.read_bytes()


@pytest.mark.django_db(transaction=True)
def test_it_fails_when_the_webhook_rejects_the_signature(live_server, tmp_path: Path) -> None:
    Inbox.objects.create(name="Test", phone_number_id="TEST_PNID", app_secret=TEST_SECRET)
    path = tmp_path / "sample.json"
    path.write_text(json.dumps(text_payload("wamid.BAD")))

    with pytest.raises(CommandError, match="403"):
        run("sign_webhook", str(path), "--secret", "wrong-secret", "--post", f"{live_server.url}/webhooks/whatsapp/")

    assert not Message.objects.exists()
