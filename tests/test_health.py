"""GET /health/ reports database, Redis and broker state."""

from __future__ import annotations

import pytest

from tests.conftest import broker_down


@pytest.mark.django_db
def test_it_reports_healthy_services(client, settings) -> None:
    response = client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "broker"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
@pytest.mark.redis
def test_it_pings_the_real_redis_and_broker_in_production_mode(client, settings) -> None:
    from config.celery import app

    # given: tasks really go through the broker
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False

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
