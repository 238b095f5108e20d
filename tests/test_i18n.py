"""Brazilian Portuguese by default, English available, every string translated."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from django.utils import translation

from conversations.models import Conversation

CATALOGUE = Path(__file__).resolve().parents[1] / "locale" / "pt_BR" / "LC_MESSAGES" / "django.po"


def test_it_translates_every_string_to_brazilian_portuguese() -> None:
    blocks = CATALOGUE.read_text().split("\n\n")[1:]  # the first block is the header
    untranslated = []
    for block in blocks:
        if block.lstrip().startswith("#~") or "#, fuzzy" in block:
            untranslated.append(block)
            continue
        msgstrs = re.findall(r'^msgstr(?:\[\d\])? ((?:".*"\n?)+)', block, flags=re.M)
        if not msgstrs or any(not "".join(re.findall(r'"(.*)"', s)) for s in msgstrs):
            untranslated.append(block)
    assert untranslated == []


def test_it_compiled_the_catalogue() -> None:
    # The committed .mo must carry what the .po says (someone edited the .po and forgot
    # `make messages` otherwise).
    with CATALOGUE.with_suffix(".mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    entries = re.findall(r'^(?:msgctxt "(.*)"\n)?msgid "(.+)"\nmsgstr "(.+)"$', CATALOGUE.read_text(), flags=re.M)
    assert len(entries) > 100
    for context, msgid, msgstr in entries:
        msgid, msgstr = msgid.replace('\\"', '"'), msgstr.replace('\\"', '"')
        # An entry with a context ("Open" as a verb) is looked up with it, as pgettext does.
        found = compiled.pgettext(context, msgid) if context else compiled.gettext(msgid)
        assert found == msgstr, (context, msgid)


def test_it_speaks_portuguese_by_default_and_english_on_request(settings) -> None:
    assert settings.LANGUAGE_CODE == "pt-br"
    with translation.override(settings.LANGUAGE_CODE):
        assert str(Conversation.Status.QUEUED.label) == "Aguardando atendente"
    with translation.override("en"):
        assert str(Conversation.Status.QUEUED.label) == "Waiting for an attendant"


@pytest.mark.django_db
def test_it_shows_the_admin_in_portuguese_unless_english_is_chosen(admin_client) -> None:
    response = admin_client.get("/admin/")
    assert "Administração do Atende" in response.content.decode()
    assert "Caixas de entrada" in response.content.decode()

    admin_client.post("/i18n/setlang/", {"language": "en", "next": "/admin/"})
    response = admin_client.get("/admin/")
    assert "Atende administration" in response.content.decode()
