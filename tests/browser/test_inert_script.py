"""Customer text with markup in it stays text in the console: nothing runs, no element appears."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import Server, customer_writes, log_in

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"


def test_it_shows_a_message_with_script_in_it_as_text_and_runs_nothing(server: Server, new_page) -> None:
    # given: a customer sends markup from the demo phone, which stays open
    phone = new_page()
    phone.goto("/demo/phone/?wa_id=5511955550007&name=Gabriel+Costa")
    for text in (IMG, SCRIPT):
        phone.locator(".composer__text").fill(text)
        phone.locator(".composer__text").press("Enter")
        expect(phone.locator("#phone-chat")).to_contain_text(text)
    conversation_id = customer_writes(server, "5511955550007", "Gabriel Costa", "*ajuda* _por favor_")

    # when: an attendant opens the conversation, and the list that shows its last message
    console = new_page()
    log_in(console, "atendente1")
    console.goto(f"/console/c/{conversation_id}/")

    # then: both show as text, WhatsApp's formatting still applies, and no dialog fired anywhere
    timeline = console.locator("#timeline")
    expect(timeline.locator(".msg__text").filter(has_text=IMG)).to_have_count(1)
    expect(timeline.locator(".msg__text").filter(has_text=SCRIPT)).to_have_count(1)
    expect(timeline.locator(".msg__text strong").filter(has_text="ajuda")).to_have_count(1)
    assert console.locator("#timeline img[src=x]").count() == 0
    assert console.locator("#timeline .msg__text script").count() == 0
    assert phone.locator("#phone-chat img[src=x]").count() == 0
    console.goto("/console/?view=bot&q=alert")
    console.wait_for_timeout(500)
    assert console.dialogs == []
    assert phone.dialogs == []
