"""The admin's own wording: third-party sections, and Django's generic messages in pt-BR."""

from __future__ import annotations

import ast
import gettext
from pathlib import Path

import django
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from conversations.models import Inbox

ROOT = Path(__file__).resolve().parents[1]
DJANGO_ADMIN_PT_BR = Path(django.__file__).parent / "contrib/admin/locale/pt_BR/LC_MESSAGES/django.mo"


def listed_msgids(name: str) -> list[str | tuple[str, str]]:
    """The msgids one tuple of config/admin_messages.py lists (read, as makemessages does)."""
    tree = ast.parse((ROOT / "config/admin_messages.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            calls = [item for item in node.value.elts if isinstance(item, ast.Call)]
            return [
                call.args[0].value if call.func.id == "gettext_noop" else (call.args[0].value, call.args[1].value)
                for call in calls
            ]
    raise AssertionError(name)


@pytest.mark.django_db
def test_it_names_the_third_party_sections(admin_client: Client, english: None) -> None:
    # when
    html = admin_client.get(reverse("admin:index")).content.decode()

    # then: our names, not the apps' labels
    for name in (
        "Login attempts",
        "Two-factor authentication",
        "Two-factor backup codes",
        "Backup code lists",
        "Periodic tasks",
        "TOTP devices",
    ):
        assert name in html
    for label in (">Axes<", ">Otp_Totp<", ">Otp_Static<", ">Periodic Tasks<", ">Django_Celery_Beat<"):
        assert label not in html


def test_it_overrides_only_messages_django_admin_really_uses() -> None:
    # given: Django admin's own pt-BR catalogue, whose entries ours replace
    with DJANGO_ADMIN_PT_BR.open("rb") as fp:
        catalogue = gettext.GNUTranslations(fp)._catalog

    # then: every msgid we list is one of Django's, exactly (quotes included)
    listed = listed_msgids("ADMIN_MESSAGES")
    assert len(listed) == 23
    for msgid in listed:
        key = (msgid[0], 0) if isinstance(msgid, tuple) else msgid
        assert key in catalogue, msgid
    assert "The {name} “{obj}” was changed successfully." in listed


def test_it_lists_the_third_party_model_names_their_apps_translate() -> None:
    sources = "".join(
        (Path(module.__file__).parent / "models.py").read_text()
        for module in (__import__("axes"), __import__("django_celery_beat"))
    )

    for msgid in listed_msgids("THIRD_PARTY_NAMES"):
        assert f"_('{msgid}')" in sources or f'_("{msgid}")' in sources, msgid


@pytest.mark.django_db
def test_it_reports_a_change_without_a_masculine_article(client: Client) -> None:
    """Needs the pt-BR entries of config/admin_messages.py in locale/ (written with the catalogue)."""
    # given: an inbox ("caixa de entrada", feminine)
    admin = User.objects.create_superuser("admin", password="x")
    client.force_login(admin)
    inbox = Inbox.objects.create(name="Loja", phone_number_id="PNID_GENDER")

    url = reverse("admin:conversations_inbox_change", args=[inbox.pk])
    inlines = {}
    for formset in (inline.formset for inline in client.get(url).context["inline_admin_formsets"]):
        inlines |= {f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()}

    # when
    response = client.post(
        url,
        {
            **inlines,
            "name": "Loja Centro",
            "phone_number_id": "PNID_GENDER",
            "display_number": "",
            "waba_id": "",
            "is_active": "on",
            "access_token": "",
            "app_secret": "",
            "verify_token": "",
            "_save": "1",
        },
        follow=True,
    )

    # then
    texts = [str(message) for message in response.context["messages"]]
    link = f'<a href="{url}">Loja Centro (PNID_GENDER)</a>'
    assert texts == [f"Alterações salvas com sucesso: caixa de entrada “{link}”."]
