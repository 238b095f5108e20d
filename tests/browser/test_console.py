"""The console in a real browser: take over, reply with Enter, a customer's message arriving live
from the demo phone, the reply's ticks going to read, transfer and close."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import Server, log_in, query, queued_conversation

# The composer's text box once the attendant may write to the customer (not the note-only form).
REPLY_BOX = "#composer form.composer__form:not(.composer__form--note) textarea[name=text]"


def open_conversation(page: Page, conversation_id: int) -> None:
    page.goto(f"/console/c/{conversation_id}/")
    expect(page.locator("#conversation")).to_have_attribute("data-conversation-id", str(conversation_id))


def take_over(page: Page) -> None:
    page.locator("#conversation-actions [data-shortcut=take-over]").click()
    expect(page.locator(REPLY_BOX)).to_be_visible()


def reply(page: Page, text: str) -> None:
    box = page.locator(REPLY_BOX)
    box.fill(text)
    box.press("Enter")


def submit_menu(menu: Locator, fill: Callable[[], None]) -> None:
    """Open a header menu (<details>), fill it and submit. The live socket re-renders the header's
    actions after a change (closing an open menu), so a menu opened just then is opened again."""
    for _attempt in range(3):
        try:
            menu.locator("summary").click()
            fill()
            menu.locator("button[type=submit]").click(timeout=3_000)
            return
        except PlaywrightTimeoutError:
            continue
    raise AssertionError("the menu kept closing")


def test_it_takes_over_a_queued_conversation_and_replies_with_enter(server: Server, new_page) -> None:
    # given: a conversation waiting in the queue
    conversation_id = queued_conversation(server, "5511955550001", "Bruna Alves", "Oi, preciso remarcar")
    page = new_page()
    log_in(page, "atendente1")

    # when: the attendant opens it from the queue, takes it over, types a reply and presses Enter
    page.goto("/console/?view=queue")
    page.locator(f"#conversation-row-{conversation_id} a").first.click()
    expect(page).to_have_url(f"{server.url}/console/c/{conversation_id}/")
    take_over(page)
    reply(page, "Claro, Bruna! Qual dia fica melhor?")

    # then: the reply is in the timeline, sent from the console, and the box is empty again
    expect(page.locator("#timeline .msg--out").filter(has_text="Claro, Bruna! Qual dia fica melhor?")).to_have_count(1)
    expect(page.locator("#composer textarea[name=text]")).to_have_value("")
    assert query(
        server,
        "SELECT status, assignee_id IS NOT NULL FROM conversations_conversation WHERE id = ?",
        conversation_id,
    ) == [("assigned", 1)]


def test_it_shows_a_message_from_the_demo_phone_without_reloading(server: Server, new_page) -> None:
    # given: an attendant holding a conversation, its page open
    conversation_id = queued_conversation(server, "5511955550002", "Caio Ramos", "Bom dia")
    console = new_page()
    log_in(console, "atendente1")
    open_conversation(console, conversation_id)
    take_over(console)
    console.evaluate("window.__notReloaded = true")

    # when: the customer writes from the phone, in another tab
    phone = new_page()
    phone.goto("/demo/phone/?wa_id=5511955550002&name=Caio+Ramos")
    phone.locator(".composer__text").fill("Vocês abrem no feriado?")
    phone.locator(".composer__text").press("Enter")

    # then: the message appears in the console's timeline through the websocket, no reload
    expect(console.locator("#timeline .msg--in").filter(has_text="Vocês abrem no feriado?")).to_have_count(1)
    assert console.evaluate("window.__notReloaded") is True


def test_it_moves_the_reply_tick_to_read_once_the_phone_showed_it(server: Server, new_page) -> None:
    # given: an attendant replies to a customer whose phone is open on the chat
    conversation_id = queued_conversation(server, "5511955550003", "Denise Prado", "Olá")
    phone = new_page()
    phone.goto("/demo/phone/?wa_id=5511955550003&name=Denise+Prado")
    console = new_page()
    log_in(console, "atendente1")
    open_conversation(console, conversation_id)
    take_over(console)

    # when
    reply(console, "Oi, Denise! Como posso ajudar?")

    # then: the phone shows it, and the console's tick goes to read without a reload
    expect(phone.locator("#phone-chat")).to_contain_text("Oi, Denise! Como posso ajudar?")
    bubble = console.locator("#timeline .msg--out").filter(has_text="Oi, Denise! Como posso ajudar?")
    expect(bubble.locator(".tick--read")).to_have_count(1, timeout=20_000)


def test_it_transfers_to_the_queue_then_closes_with_a_resolution(server: Server, new_page) -> None:
    # given: an attendant holding a conversation
    conversation_id = queued_conversation(server, "5511955550004", "Eduardo Lima", "Quero cancelar")
    page = new_page()
    log_in(page, "atendente1")
    open_conversation(page, conversation_id)
    take_over(page)

    # when: transferred back to the queue
    transfer = page.locator("#conversation-actions details").filter(has=page.locator("select[name=to]"))

    def fill_transfer() -> None:
        transfer.locator("select[name=to]").select_option("queue")
        transfer.locator("input[name=reason]").fill("Precisa do financeiro")

    submit_menu(transfer, fill_transfer)

    # then: it waits in the queue, and the header offers to take it over again
    expect(page.locator("#conversation-actions [data-shortcut=take-over]")).to_be_visible()
    assert query(server, "SELECT status FROM conversations_conversation WHERE id = ?", conversation_id) == [("queued",)]

    # when: taken over again and closed with a resolution note
    take_over(page)
    close = page.locator("#conversation-actions details").filter(has=page.locator("textarea[name=resolution]"))
    submit_menu(close, lambda: close.locator("textarea[name=resolution]").fill("Cancelamento feito pelo financeiro"))

    # then
    expect(page.locator(f"#conversation-actions form[action='/console/c/{conversation_id}/reopen/']")).to_be_visible()
    assert query(server, "SELECT status, resolution FROM conversations_conversation WHERE id = ?", conversation_id) == [
        ("closed", "Cancelamento feito pelo financeiro")
    ]


def test_a_row_the_server_sends_again_unchanged_stays_in_place(server: Server, new_page) -> None:
    # given: two conversations in the queue, changed moments ago (a page's first sync re-sends
    # the rows changed in the last minute), and the rows' out-of-band swaps recorded as the page
    # carries them out (on window: after the page's own listeners have had their say)
    first = queued_conversation(server, "5511955550091", "Lia Souza", "Oi")
    second = queued_conversation(server, "5511955550092", "Rui Lima", "Bom dia")
    page = new_page()
    page.add_init_script(
        """window.__rowSwaps = [];
        window.addEventListener("htmx:oobBeforeSwap", (event) => {
            const id = event.detail.target && event.detail.target.id;
            if (id && id.startsWith("conversation-row-")) window.__rowSwaps.push([id, event.detail.shouldSwap]);
        });"""
    )
    log_in(page, "atendente1")

    # when: the attendant opens the first one; its page's first sync sends the list's rows again
    open_conversation(page, first)
    page.wait_for_function(
        f"() => window.__rowSwaps.some(([id]) => id === 'conversation-row-{second}')", timeout=10_000
    )

    # then: the second row, unchanged, was left as it was instead of replaced
    assert [f"conversation-row-{second}", False] in page.evaluate("() => window.__rowSwaps")
    expect(page.locator(f"#conversation-row-{second}")).to_be_visible()
