"""Admin for the console's labels and canned responses: supervisors edit their inboxes' rows
only; rows for every inbox are for superusers."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from conversations.models import CannedResponse, Inbox, Label, Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def supervisor(inbox: Inbox, client: Any) -> User:
    user = User.objects.create_user("renata", is_staff=True)
    Membership.objects.create(user=user, inbox=inbox, role=Membership.Role.SUPERVISOR)
    user.user_permissions.set(Permission.objects.filter(content_type__model__in=["label", "cannedresponse"]))
    client.force_login(user)
    device = TOTPDevice.objects.create(user=user, name="t", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return user


def test_a_supervisor_sees_only_the_labels_of_their_inboxes(inbox: Inbox, supervisor: User, client: Any) -> None:
    other = Inbox.objects.create(name="B", phone_number_id="PN_B")
    Label.objects.create(inbox=inbox, name="Nosso")
    Label.objects.create(inbox=other, name="Alheio")
    Label.objects.create(inbox=None, name="Geral")

    body = client.get(reverse("admin:conversations_label_changelist")).content.decode()

    assert "Nosso" in body
    assert ("Alheio" in body, "Geral" in body) == (False, False)


def test_a_supervisor_adds_a_canned_response_to_their_inbox_only(inbox: Inbox, supervisor: User, client: Any) -> None:
    other = Inbox.objects.create(name="B", phone_number_id="PN_B")
    url = reverse("admin:conversations_cannedresponse_add")
    data = {"shortcut": "pix", "title": "Chave Pix", "text": "pix@loja.com"}

    for_every_inbox = client.post(url, data)
    for_another_inbox = client.post(url, {**data, "inbox": other.pk})
    for_mine = client.post(url, {**data, "inbox": inbox.pk})

    assert (for_every_inbox.status_code, for_another_inbox.status_code, for_mine.status_code) == (200, 200, 302)
    assert list(CannedResponse.objects.values_list("inbox_id", "shortcut")) == [(inbox.pk, "pix")]
