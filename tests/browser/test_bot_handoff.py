"""Issue 8 in a real browser: a customer writes on the demo phone, the offline bot answers
(its greeting and menu, then a question from the demo salon's knowledge base), the customer
taps the menu's "talk to an attendant", is told a person is coming, and the attendant (left
offline, so the conversation waits in the queue) sees the row arrive in the queue without a
reload, opens it, reads the handoff packet, takes over, answers, and hands the conversation
back to the bot, which answers the customer's next message. Also the "try the bot" page."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, conversation_of, log_in, query, screenshot
from tests.browser.test_console import REPLY_BOX, reply, submit_menu, take_over
from tests.demo.conftest import wait_for

WA_ID = "5511955550020"
NAME = "Ana Beatriz Costa"
# The demo salon's greeting and knowledge answers (bots/demo.py: Portuguese data, not translated).
GREETING = "Aqui é a Bella, assistente virtual do Studio Bella Vista"
BRUSH_PRICE = "A escova custa R$ 80 para cabelo curto"
# The answer's second sentence: the menu's row for that entry shows its first one.
ADDRESS = "Fica a 5 minutos a pé da estação Fradique Coutinho"
# The reply id of the offline bot's "talk to an attendant" option (bots/offline.py HUMAN_CHOICE).
HUMAN_CHOICE = "human"


def _write(phone: Page, text: str) -> None:
    box = phone.locator(".composer__text")
    box.fill(text)
    box.press("Enter")
    expect(phone.locator("#phone-chat .bubble--mine").filter(has_text=text).last).to_be_visible()


def _last_business_bubble(phone: Page):
    return phone.locator("#phone-chat .bubble--theirs:not(.bubble--typing)").last


def _menu_option(phone: Page, choice: str):
    """The phone's button for one of the bot's menu options (a list row or a reply button)."""
    return phone.locator("#phone-chat .bubble__buttons form").filter(
        has=phone.locator(f"input[name=reply_id][value='{choice}']")
    )


def _business_texts(server: Server, conversation_id: int, sender_kind: str, after_id: int = 0) -> list[str]:
    rows = query(
        server,
        "SELECT text FROM conversations_message WHERE conversation_id = ? AND direction = 'out' "
        "AND sender_kind = ? AND id > ? ORDER BY id",
        conversation_id,
        sender_kind,
        after_id,
    )
    return [text for (text,) in rows]


def _last_message_id(server: Server, conversation_id: int) -> int:
    return query(server, "SELECT MAX(id) FROM conversations_message WHERE conversation_id = ?", conversation_id)[0][0]


def test_the_bot_answers_hands_off_to_the_attendant_and_gets_the_conversation_back(server: Server, new_page) -> None:
    phone = new_page()
    phone.goto(f"/demo/phone/?wa_id={WA_ID}&name=Ana+Beatriz+Costa")

    # when: the customer says hello
    _write(phone, "Oi")

    # then: the bot greets them and offers its menu, "talk to an attendant" among the topics
    chat = phone.locator("#phone-chat")
    expect(chat).to_contain_text(GREETING)
    human = _menu_option(phone, HUMAN_CHOICE)
    expect(human).to_have_count(1)
    topics = phone.locator("#phone-chat .bubble__buttons form").filter(has=phone.locator("input[value^='kb:']"))
    expect(topics.first).to_be_visible()
    conversation_id = conversation_of(server, WA_ID)
    assert query(server, "SELECT status FROM conversations_conversation WHERE id = ?", conversation_id) == [("bot",)]

    # when: a real question from the salon's knowledge base
    _write(phone, "Quanto custa a escova?")

    # then: the answer, from the bot, with the conversation still the bot's
    expect(_last_business_bubble(phone)).to_contain_text(BRUSH_PRICE)
    assert any(BRUSH_PRICE in text for text in _business_texts(server, conversation_id, "bot"))
    screenshot(phone, "demo-phone-bot.png")

    # given: the attendant (offline: nobody gets it automatically) watches the queue
    console = new_page()
    log_in(console, "atendente1")
    console.goto("/console/?view=queue")
    expect(console.locator(f"#conversation-row-{conversation_id}")).to_have_count(0)
    console.evaluate("window.__notReloaded = true")
    before_handoff = _last_message_id(server, conversation_id)

    # when: the customer taps "talk to an attendant" on the bot's menu
    human.locator("button").last.click()

    # then: the conversation joins the queue with a handoff packet, and the attendant's queue
    # shows it without a reload
    expect(console.locator(f"#conversation-row-{conversation_id}")).to_be_visible(timeout=20_000)
    assert console.evaluate("window.__notReloaded") is True
    assert query(server, "SELECT status FROM conversations_conversation WHERE id = ?", conversation_id) == [("queued",)]
    [(reason, summary)] = query(
        server,
        "SELECT reason, summary FROM handoffs_handoff WHERE conversation_id = ? AND closed IS NULL",
        conversation_id,
    )
    assert reason == "customer_request"
    assert summary.strip()
    # and the customer is told a person is coming (or, out of hours, when people are back)
    notices = wait_for(lambda: _business_texts(server, conversation_id, "system", before_handoff), timeout=15)
    expect(chat).to_contain_text(notices[0].splitlines()[0][:60])

    # when: the attendant opens it from the queue
    console.locator(f"#conversation-row-{conversation_id} a").first.click()
    expect(console).to_have_url(f"{server.url}/console/c/{conversation_id}/")

    # then: the handoff packet at the top: the reason and the summary written at handoff time
    packet = console.locator("#conversation-header #handoff-packet")
    expect(packet).to_be_visible()
    expect(packet.locator(".handoff-packet__reason")).not_to_be_empty()
    expect(packet.locator(".handoff-packet__text")).to_contain_text(summary.strip().splitlines()[0][:60])
    screenshot(console, "handoff-packet.png")

    # when: the attendant takes over and answers
    take_over(console)
    reply(console, "Oi, Ana! Aqui é o Lucas, da recepção. Em que posso ajudar?")

    # then: the phone shows the attendant's answer
    expect(chat).to_contain_text("Aqui é o Lucas, da recepção")
    assert query(
        server, "SELECT status, assignee_id IS NOT NULL FROM conversations_conversation WHERE id = ?", conversation_id
    ) == [("assigned", 1)]

    # when: the attendant hands the conversation back to the bot
    transfer = console.locator("#conversation-actions details").filter(has=console.locator("select[name=to]"))

    def fill_transfer() -> None:
        transfer.locator("select[name=to]").select_option("bot")
        transfer.locator("input[name=reason]").fill("Dúvida resolvida")

    submit_menu(transfer, fill_transfer)
    expect(console.locator("#conversation-actions [data-shortcut=take-over]")).to_be_visible()
    expect(console.locator(REPLY_BOX)).to_have_count(0)
    assert query(server, "SELECT status FROM conversations_conversation WHERE id = ?", conversation_id) == [("bot",)]
    handed_back = _last_message_id(server, conversation_id)

    # and the customer writes again
    _write(phone, "Qual o endereço de vocês?")

    # then: the bot answers again, on the phone and live in the console
    expect(_last_business_bubble(phone)).to_contain_text(ADDRESS)
    assert any(ADDRESS in text for text in _business_texts(server, conversation_id, "bot", handed_back))
    expect(console.locator("#timeline .msg--out").filter(has_text=ADDRESS)).to_have_count(1)
    assert console.dialogs == [] and phone.dialogs == []


def test_the_supervisor_tries_the_bot(server: Server, new_page) -> None:
    # given
    page = new_page()
    log_in(page, "supervisora")
    page.goto("/console/bots/try/")

    # when: one exchange with the demo inbox's bot
    page.locator("#try-text").fill("Quanto custa a escova?")
    page.locator("#try-chat form button[type=submit]").click()

    # then: the bot's answer from the knowledge base, with the entry it used
    turn = page.locator("#try-chat .try-turn")
    expect(turn).to_have_count(1)
    expect(turn.locator(".try-turn__reply")).to_contain_text(BRUSH_PRICE)
    turn.locator(".try-turn__details summary").click()
    expect(turn.locator(".try-turn__knowledge")).to_contain_text("Quanto custa a escova?")
    screenshot(page, "try-bot.png")
    assert page.dialogs == []
