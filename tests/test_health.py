"""GET /health/ reports database, Redis and broker state."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from conversations import dispatch
from conversations.models import Alert, WebhookEvent
from conversations.whatsapp import store
from tests.conftest import broker_down, text_payload


@pytest.fixture
def production_mode(settings):
    """Workers, beat and the listener exist (tasks are not run inline)."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    cache.delete(dispatch.HEARTBEAT_KEY)
    return settings


@pytest.mark.django_db
def test_it_reports_healthy_services(client, settings) -> None:
    response = client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "broker", "webhooks"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
@pytest.mark.redis
def test_it_pings_the_real_redis_and_broker_in_production_mode(client, settings) -> None:
    from config.celery import app

    # given: tasks really go through the broker, and beat's sweep has just run
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    dispatch.heartbeat()

    # when
    response = client.get("/health/")

    # then
    body = response.json()
    assert response.status_code == 200, body
    assert "ms" in body["checks"]["redis"]
    assert "ms" in body["checks"]["broker"]


@pytest.mark.django_db
def test_it_answers_503_when_redis_is_unreachable(client, settings) -> None:
    # given: Redis and the broker point at a port where nothing listens
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    settings.CELERY_TASK_ALWAYS_EAGER = False

    # when
    with broker_down():
        response = client.get("/health/")

    # then
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "error"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["broker"]["ok"] is False


@pytest.mark.django_db
def test_it_reports_the_webhook_backlog_and_the_last_dispatch_in_production_mode(client, production_mode) -> None:
    # given: a sweep two seconds ago and an event stored a moment ago
    cache.set(dispatch.HEARTBEAT_KEY, time.time() - 2)
    store.store_event(
        json.dumps(text_payload("wamid.H")).encode(), signature="", signature_valid=True, remote_addr=None
    )

    # when
    response = client.get("/health/")

    # then
    check = response.json()["checks"]["webhooks"]
    assert response.status_code == 200
    assert check["ok"] is True
    assert 0 <= check["oldest_due_seconds"] < 60
    assert 2 <= check["last_dispatch_seconds"] < 60
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_it_answers_503_and_alerts_when_nothing_dispatches(client, production_mode, english) -> None:
    # given: beat and the listener stopped 45 s ago (threshold 30 s)
    cache.set(dispatch.HEARTBEAT_KEY, time.time() - 45)

    # when
    first = client.get("/health/")
    second = client.get("/health/")

    # then
    check = first.json()["checks"]["webhooks"]
    assert first.status_code == 503
    assert first.json()["status"] == "error"
    assert check["ok"] is False
    # (45 s, or a little more: the first request of a test process can take a second)
    assert re.fullmatch(r"no webhook dispatch for 4[5-9] s: are beat and listen_webhooks running\?", check["error"])
    assert second.status_code == 503
    alert = Alert.objects.get()
    assert (alert.kind, alert.title, alert.inbox) == (
        Alert.Kind.WEBHOOK,
        "Webhook events are not being dispatched (beat and the listener stopped?)",
        None,
    )


@pytest.mark.django_db
def test_it_answers_503_when_no_dispatch_ever_ran(client, production_mode) -> None:
    response = client.get("/health/")

    assert response.status_code == 503
    assert response.json()["checks"]["webhooks"]["last_dispatch_seconds"] is None


@pytest.mark.django_db
def test_it_answers_503_and_alerts_when_the_oldest_event_waits_too_long(client, production_mode, english) -> None:
    # given: the dispatcher is alive but an event has waited 3 minutes (threshold 120 s)
    dispatch.heartbeat()
    event_id = store.store_event(
        json.dumps(text_payload("wamid.OLD")).encode(), signature="", signature_valid=True, remote_addr=None
    )
    WebhookEvent.objects.filter(pk=event_id).update(received=timezone.now() - timedelta(minutes=3))

    # when
    response = client.get("/health/")

    # then
    check = response.json()["checks"]["webhooks"]
    assert response.status_code == 503
    assert check["error"] == "the oldest unprocessed webhook event has waited 180 s"
    assert 180 <= check["oldest_due_seconds"] < 240
    assert Alert.objects.get().title == "Webhook events are not being processed"


@pytest.mark.django_db
def test_it_counts_a_retry_from_when_it_came_due(client, production_mode) -> None:
    # given: an event received an hour ago, failed, due for its retry a second ago
    dispatch.heartbeat()
    event_id = store.store_event(b"{}", signature="", signature_valid=True, remote_addr=None)
    WebhookEvent.objects.filter(pk=event_id).update(
        received=timezone.now() - timedelta(hours=1),
        state="failed",
        attempts=3,
        next_attempt=timezone.now() - timedelta(seconds=1),
    )

    # when
    response = client.get("/health/")

    # then
    assert response.status_code == 200
    assert response.json()["checks"]["webhooks"]["oldest_due_seconds"] < 60


@pytest.mark.django_db
def test_it_has_no_webhook_backlog_in_the_embedded_mode(client) -> None:
    response = client.get("/health/")

    assert response.status_code == 200
    assert response.json()["checks"]["webhooks"] == {"ok": True, "mode": "embedded (events applied in the request)"}
