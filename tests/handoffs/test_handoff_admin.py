"""Handoffs and attendants in the Django admin: the packet read-only and escaped, filters by
reason, priority, state and rating, capacity editable and presence not, each supervisor
limited to their inboxes, attendants kept out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations.models import Conversation
from handoffs.models import Attendant, Handoff

pytestmark = pytest.mark.django_db

Status = Conversation.Status


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def supervisor_client(team: Any) -> Client:
    team.supervisor.user_permissions.set(Permission.objects.filter(content_type__app_label="handoffs"))
    return client_for(team.supervisor)


@pytest.fixture
def packet(team: Any, make_conversation: Any) -> Handoff:
    conversation = make_conversation(status=Status.ASSIGNED, assignee=team.ana)
    now = timezone.now()
    return Handoff.objects.create(
        conversation=conversation,
        reason=Handoff.Reason.COMPLAINT,
        reason_text="<script>alert('motivo')</script>",
        priority=Handoff.Priority.HIGH,
        summary="Cliente reclama do corte <b>torto</b>; quer falar com a gerente.",
        lead={"name": "Maria <i>Silva</i>", "service": "Corte"},
        requested=now - timedelta(minutes=12),
        assigned=now - timedelta(minutes=2),
        assignee=team.ana,
        first_answered=now - timedelta(minutes=1),
        closed=now,
        csat_asked=now,
        csat_score=4,
        csat_answered=now,
    )


def test_it_shows_the_packet_read_only_and_escaped(admin_client: Client, packet: Handoff) -> None:
    response = admin_client.get(reverse("admin:handoffs_handoff_change", args=[packet.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert not response.context["adminform"].form.fields
    assert "torto" in html and "<b>torto</b>" not in html
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "Maria &lt;i&gt;Silva&lt;/i&gt;" in html
    assert "Corte" in html


def test_it_refuses_to_change_a_handoff(admin_client: Client, packet: Handoff) -> None:
    response = admin_client.post(
        reverse("admin:handoffs_handoff_change", args=[packet.pk]), {"priority": "3", "csat_score": "1"}
    )

    assert response.status_code == 403
    packet.refresh_from_db()
    assert (packet.priority, packet.csat_score) == (Handoff.Priority.HIGH, 4)


def test_it_filters_handoffs_by_reason_priority_state_and_rating(
    admin_client: Client, packet: Handoff, team: Any, make_conversation: Any
) -> None:
    waiting = Handoff.objects.create(
        conversation=make_conversation(status=Status.QUEUED), reason=Handoff.Reason.CUSTOMER_REQUEST, priority=1
    )
    url = reverse("admin:handoffs_handoff_changelist")

    def shown(**params: str) -> set[int]:
        response = admin_client.get(url, params)
        assert response.status_code == 200
        return {row.pk for row in response.context["cl"].result_list}

    assert shown() == {packet.pk, waiting.pk}
    assert shown(reason__exact="complaint") == {packet.pk}
    assert shown(priority__exact="1") == {waiting.pk}
    assert shown(state="waiting") == {waiting.pk}
    assert shown(state="closed") == {packet.pk}
    assert shown(csat="4") == {packet.pk}
    assert shown(csat="answered") == {packet.pk}


def test_it_keeps_a_supervisor_to_their_inboxes_handoffs(
    supervisor_client: Client, packet: Handoff, team: Any, make_conversation: Any
) -> None:
    theirs = Handoff.objects.create(
        conversation=make_conversation(status=Status.QUEUED, inbox=team.other_inbox),
        reason=Handoff.Reason.BILLING,
        summary="RESUMO-DA-OUTRA-CAIXA",
    )

    listing = supervisor_client.get(reverse("admin:handoffs_handoff_changelist"))
    other = supervisor_client.get(reverse("admin:handoffs_handoff_change", args=[theirs.pk]))

    assert {row.pk for row in listing.context["cl"].result_list} == {packet.pk}
    assert other.status_code == 302
    assert "RESUMO-DA-OUTRA-CAIXA" not in supervisor_client.get(other["Location"], follow=True).content.decode()


def test_it_keeps_attendants_out(team: Any, packet: Handoff) -> None:
    team.ana.is_staff = True
    team.ana.save()
    team.ana.user_permissions.set(Permission.objects.filter(content_type__app_label="handoffs"))

    response = client_for(team.ana).get(reverse("admin:handoffs_handoff_change", args=[packet.pk]))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


# --- Attendants ------------------------------------------------------------------------------------


def test_it_edits_capacity_but_not_presence(admin_client: Client, team: Any) -> None:
    attendant = Attendant.objects.create(user=team.ana, presence=Attendant.Presence.ONLINE, capacity=5)
    url = reverse("admin:handoffs_attendant_change", args=[attendant.pk])

    response = admin_client.post(url, {"capacity": "8", "sound": "on", "presence": "offline"})

    assert response.status_code == 302
    attendant.refresh_from_db()
    assert (attendant.capacity, attendant.presence) == (8, Attendant.Presence.ONLINE)


def test_it_edits_capacity_from_the_list(admin_client: Client, team: Any) -> None:
    attendant = Attendant.objects.create(user=team.ana, capacity=5)
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(attendant.pk),
        "form-0-capacity": "2",
        "_save": "1",
    }

    response = admin_client.post(reverse("admin:handoffs_attendant_changelist"), data)

    assert response.status_code == 302
    attendant.refresh_from_db()
    assert attendant.capacity == 2


def test_it_shows_a_supervisor_only_their_inboxes_people(supervisor_client: Client, team: Any) -> None:
    mine = Attendant.objects.create(user=team.ana)
    Attendant.objects.create(user=team.bruno)
    theirs = Attendant.objects.create(user=team.outsider)

    listing = supervisor_client.get(reverse("admin:handoffs_attendant_changelist"))
    other = supervisor_client.post(reverse("admin:handoffs_attendant_change", args=[theirs.pk]), {"capacity": "1"})

    rows = {row.user.username for row in listing.context["cl"].result_list}
    assert rows == {"ana", "bruno"}
    assert mine.user.username in rows
    assert other.status_code == 302
    theirs.refresh_from_db()
    assert theirs.capacity == 5


def test_it_counts_each_attendants_open_conversations(admin_client: Client, team: Any, make_conversation: Any) -> None:
    Attendant.objects.create(user=team.ana)
    make_conversation(status=Status.ASSIGNED, assignee=team.ana)
    make_conversation(status=Status.ASSIGNED, assignee=team.ana)
    make_conversation(status=Status.CLOSED, assignee=team.ana)

    listing = admin_client.get(reverse("admin:handoffs_attendant_changelist"))

    (row,) = listing.context["cl"].result_list
    assert row._open == 2


def test_it_lists_handoffs_and_attendants_without_a_query_per_row(
    admin_client: Client, team: Any, make_conversation: Any, django_assert_num_queries: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add(n: int) -> None:
        for _ in range(n):
            user = User.objects.create_user(f"pessoa{User.objects.count()}", first_name="P")
            Attendant.objects.create(user=user)
            conversation = make_conversation(status=Status.ASSIGNED, assignee=user)
            Handoff.objects.create(conversation=conversation, reason=Handoff.Reason.TOPIC, assignee=user)

    urls = [reverse("admin:handoffs_handoff_changelist"), reverse("admin:handoffs_attendant_changelist")]
    add(2)
    counts = []
    for url in urls:
        admin_client.get(url)
        with CaptureQueriesContext(connection) as few:
            assert admin_client.get(url).status_code == 200
        counts.append(len(few.captured_queries))
    add(6)

    for url, count in zip(urls, counts, strict=True):
        with django_assert_num_queries(count):
            admin_client.get(url)
