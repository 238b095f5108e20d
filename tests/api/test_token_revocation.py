"""A password change ends the user's API token too, as it ends their other sessions."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db


def test_it_revokes_the_api_token_when_the_password_changes() -> None:
    # given
    user = get_user_model().objects.create_user("ana", password="old-Passw0rd!")
    Token.objects.create(user=user)

    # when
    user.set_password("new-Passw0rd!")
    user.save()

    # then
    assert not Token.objects.filter(user=user).exists()


def test_it_keeps_the_api_token_when_anything_else_changes() -> None:
    # given
    user = get_user_model().objects.create_user("ana", password="old-Passw0rd!")
    token = Token.objects.create(user=user)

    # when
    user.first_name = "Ana"
    user.save()
    user.last_login = None
    user.save(update_fields=["last_login"])

    # then
    assert Token.objects.filter(pk=token.pk).exists()
