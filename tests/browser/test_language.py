"""The console speaks Brazilian Portuguese by default, and English once chosen at /i18n/setlang/."""

from __future__ import annotations

from django.utils import translation
from playwright.sync_api import expect

from tests.browser.conftest import Server, log_in


def _pt_br(msgid: str) -> str:
    with translation.override("pt-br"):
        return translation.gettext(msgid)


def test_it_shows_the_pt_br_strings_then_english_after_choosing_it(server: Server, new_page) -> None:
    # given: a browser that asks for nothing in particular
    page = new_page(locale="en-US")

    # when / then: the login page is in pt-BR
    page.goto("/accounts/login/")
    expect(page.locator("html")).to_have_attribute("lang", "pt-br")
    expect(page.locator("h1")).to_have_text("Entrar")
    expect(page.locator("label[for=id_username]")).to_have_text("Nome de usuário")
    expect(page.locator("label[for=id_password]")).to_have_text("Senha")

    # when / then: so is the console: its tabs and its buttons
    log_in(page, "atendente1")
    page.goto("/console/?view=bot")
    expect(page.locator("html")).to_have_attribute("lang", "pt-br")
    tabs = page.locator("#console-counters")
    expect(tabs).to_contain_text("Com o robô")
    # Strings translated as the catalogue stands (others join it when locale/ is updated).
    for msgid in ("Queue", "Mine", "With the bot"):
        expect(tabs).to_contain_text(_pt_br(msgid))
    # Opened by its address: the first live sync re-sends the rows changed in the last minute
    # (all of them here), and a click at that instant can land on the row being replaced.
    page.goto(page.locator("a[href^='/console/c/']").first.get_attribute("href"))
    expect(page.locator("#conversation-actions [data-shortcut=take-over]")).to_have_text(_pt_br("Take over"))

    # when: English is chosen (Django's set_language, as a language menu would post it)
    answer = page.context.request.post(
        "/i18n/setlang/",
        form={"language": "en", "next": "/console/?view=bot"},
        headers={"X-CSRFToken": next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")},
        max_redirects=0,
    )
    assert answer.status == 302

    # then: the console is in English
    page.goto("/console/?view=bot")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#console-counters")).to_contain_text("With the bot")
    # Opened by its address: the first live sync re-sends the rows changed in the last minute
    # (all of them here), and a click at that instant can land on the row being replaced.
    page.goto(page.locator("a[href^='/console/c/']").first.get_attribute("href"))
    expect(page.locator("#conversation-actions [data-shortcut=take-over]")).to_have_text("Take over")
