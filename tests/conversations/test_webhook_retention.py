"""Retention of raw webhook bodies: processed ones are emptied after WEBHOOK_RETENTION_DAYS, in
batches, by beat; flagged and failed ones wait for someone; replays say why they cannot run."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from conversations import jobs, processing, retention
from conversations.models import Message, WebhookEvent
from conversations.whatsapp import store
from conversations.whatsapp.signature import sign
from tests.conftest import TEST_SECRET, text_payload


def _event(wamid: str, *, state: str = "done", age_days: float = 31, valid: bool = True) -> WebhookEvent:
    raw = json.dumps(text_payload(wamid)).encode()
    event_id = store.store_event(
        raw, signature=sign(raw, TEST_SECRET) if valid else "sha256=bad", signature_valid=valid, remote_addr=None
    )
    WebhookEvent.objects.filter(pk=event_id).update(state=state, received=timezone.now() - timedelta(days=age_days))
    return WebhookEvent.objects.get(pk=event_id)


@pytest.mark.django_db
def test_it_empties_old_processed_and_rejected_bodies_and_keeps_the_rest(inbox) -> None:
    # given
    old_done = _event("wamid.OLD-DONE")
    old_rejected = _event("wamid.OLD-REJECTED", state="rejected", valid=False)
    recent_done = _event("wamid.RECENT", age_days=29)
    old_flagged = _event("wamid.OLD-FLAGGED", state="flagged")
    old_failed = _event("wamid.OLD-FAILED", state="failed")
    old_pending = _event("wamid.OLD-PENDING", state="pending")

    # when
    purged = retention.purge_webhook_bodies()

    # then
    assert purged == 2
    for event in (old_done, old_rejected):
        kept = WebhookEvent.objects.get(pk=event.pk)
        assert (bytes(kept.body), kept.body_purged is not None) == (b"", True)
        assert (kept.body_sha256, kept.body_size) == (event.body_sha256, event.body_size)
    for event in (recent_done, old_flagged, old_failed, old_pending):
        kept = WebhookEvent.objects.get(pk=event.pk)
        assert (bytes(kept.body), kept.body_purged) == (bytes(event.body), None)


@pytest.mark.django_db
def test_it_purges_in_batches_and_leaves_the_rest_to_the_next_run(inbox) -> None:
    # given
    for n in range(5):
        _event(f"wamid.B{n}")

    # when
    first = retention.purge_webhook_bodies(batch_size=2, max_batches=1)
    rest = retention.purge_webhook_bodies(batch_size=2)
    again = retention.purge_webhook_bodies(batch_size=2)

    # then
    assert (first, rest, again) == (2, 3, 0)
    assert WebhookEvent.objects.filter(body_purged__isnull=True).count() == 0


@pytest.mark.django_db
def test_it_follows_the_retention_setting(inbox, settings) -> None:
    # given
    settings.WEBHOOK_RETENTION_DAYS = 7
    week_old = _event("wamid.WEEK", age_days=8)
    fresh = _event("wamid.FRESH", age_days=6)

    # when
    retention.purge_webhook_bodies()

    # then
    assert WebhookEvent.objects.get(pk=week_old.pk).body_purged is not None
    assert WebhookEvent.objects.get(pk=fresh.pk).body_purged is None


def test_it_defaults_to_thirty_days_and_schedules_an_expiring_purge() -> None:
    assert django_settings.WEBHOOK_RETENTION_DAYS == 30
    entry = django_settings.CELERY_BEAT_SCHEDULE["purge-webhook-bodies"]
    assert entry["task"] == "conversations.tasks.purge_webhook_bodies"
    assert entry["options"]["expires"] <= entry["schedule"]


@pytest.mark.django_db
def test_it_runs_the_purge_from_its_task_and_its_command(inbox) -> None:
    # given
    _event("wamid.T1")
    _event("wamid.T2")

    # when
    by_task = jobs.task("conversations.tasks.purge_webhook_bodies").delay().get()
    _event("wamid.T3")
    out = StringIO()
    call_command("purge_webhook_bodies", "--batch-size", "1", stdout=out)

    # then
    assert by_task == 2
    assert out.getvalue().strip() == "Purged the bodies of 1 webhook events older than 30 days."
    assert WebhookEvent.objects.filter(body_purged__isnull=True).count() == 0


@pytest.mark.django_db
def test_it_refuses_to_replay_a_purged_event_and_leaves_it_done(inbox, admin_client) -> None:
    # given: an applied event whose body retention emptied
    event = _event("wamid.GONE", state="pending", age_days=40)
    processing.process_event(event.pk)
    retention.purge_webhook_bodies()
    event.refresh_from_db()
    assert (event.state, event.body_purged is not None) == ("done", True)

    # when / then: the command says why
    with pytest.raises(CommandError, match=r"body was emptied on \S+ after the retention period"):
        call_command("replay_webhooks", "--id", str(event.pk), stdout=StringIO())

    # when: a forced replay and the admin's action
    processing.process_event(event.pk, force=True)
    response = admin_client.post(
        reverse("admin:conversations_webhookevent_changelist"),
        {"action": "reprocess", "_selected_action": [event.pk]},
        follow=True,
    )

    # then: nothing changed, and the admin explains
    event.refresh_from_db()
    assert (event.state, event.attempts) == ("done", 1)
    assert Message.objects.filter(wamid="wamid.GONE").count() == 1
    assert response.status_code == 200
    assert len([m for m in response.context["messages"] if m.level_tag == "warning"]) == 1


@pytest.mark.django_db
def test_it_shows_a_purged_event_in_the_admin(inbox, admin_client, english) -> None:
    # given
    event = _event("wamid.SHOWN")
    retention.purge_webhook_bodies()

    # when
    response = admin_client.get(reverse("admin:conversations_webhookevent_change", args=[event.pk]))

    # then
    assert response.status_code == 200
    assert b"Emptied after the retention period" in response.content
