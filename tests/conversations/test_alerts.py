"""Admin alerts: one open alert per (inbox, kind, code, title), even when workers race."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from conversations import services
from conversations.models import Alert, Inbox

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_returns_the_open_alert_instead_of_raising_it_twice(inbox: Inbox) -> None:
    # given
    first = services.raise_alert(inbox, Alert.Kind.TOKEN, "Access token expired", code=190, details="first")

    # when
    second = services.raise_alert(inbox, Alert.Kind.TOKEN, "Access token expired", code=190, details="second")

    # then
    assert second.pk == first.pk
    assert Alert.objects.count() == 1
    assert Alert.objects.get().details == "first"


def test_it_raises_the_same_alert_again_once_the_open_one_is_resolved(inbox: Inbox) -> None:
    # given
    old = services.raise_alert(inbox, Alert.Kind.TOKEN, "Access token expired", code=190)
    assert services.resolve_alert(old) is True

    # when
    new = services.raise_alert(inbox, Alert.Kind.TOKEN, "Access token expired", code=190)

    # then
    assert new.pk != old.pk
    assert list(Alert.objects.filter(resolved__isnull=True)) == [new]
    assert Alert.objects.count() == 2
    assert services.resolve_alert(old) is False


def test_it_tells_different_alerts_apart(inbox: Inbox) -> None:
    # when
    alerts = {
        services.raise_alert(inbox, Alert.Kind.TOKEN, "Access token expired", code=190).pk,
        services.raise_alert(inbox, Alert.Kind.TOKEN, "Access token expired", code=None).pk,
        services.raise_alert(inbox, Alert.Kind.ACCOUNT, "Access token expired", code=190).pk,
        services.raise_alert(None, Alert.Kind.TOKEN, "Access token expired", code=190).pk,
        services.raise_alert(inbox, Alert.Kind.TOKEN, "Another title", code=190).pk,
    }

    # then
    assert len(alerts) == 5
    assert Alert.objects.filter(resolved__isnull=True).count() == 5


@pytest.mark.postgres
def test_it_keeps_one_open_alert_when_workers_raise_it_at_once(inbox: Inbox) -> None:
    # given: eight workers hit the same expired token at the same instant, each inside its own
    # transaction (as when processing a webhook event) that stays open a moment after raising
    workers = 8
    barrier = threading.Barrier(workers)
    raised: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with transaction.atomic():
                barrier.wait()
                alert = services.raise_alert(inbox, Alert.Kind.TOKEN, "Access token expired", code=190)
                time.sleep(0.2)
            raised.append(alert.pk)
        except BaseException as exc:  # surfaced to the test
            errors.append(exc)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    assert errors == []
    open_alert = Alert.objects.get(resolved__isnull=True)
    assert raised == [open_alert.pk] * workers
    assert Alert.objects.count() == 1
