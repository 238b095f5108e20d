"""After the 24-hour window the composer offers the inbox's approved templates (synced from the
Graph API stand-in), and one is sent in the same conversation."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import Server, customer_writes, log_in, query, screenshot


def test_it_sends_a_template_from_the_composer_after_the_window(server: Server, new_page) -> None:
    # given: a conversation held by an attendant whose customer last wrote 26 hours ago,
    # and the inbox's templates synced from the Graph API (the stand-in lists 3 in pt-BR)
    conversation_id = customer_writes(server, "5511955550006", "Fabiana Rocha", "Podem me mandar o orçamento?")
    server.shell(
        "from datetime import timedelta\n"
        "from django.contrib.auth import get_user_model\n"
        "from django.db.models import F\n"
        "from conversations.models import Conversation, Message\n"
        "from handoffs import services\n"
        f"services.take_over({conversation_id}, get_user_model().objects.get(username='atendente1'))\n"
        "back = timedelta(hours=26)\n"
        f"Message.objects.filter(conversation_id={conversation_id}, direction='in').update("
        "wa_timestamp=F('wa_timestamp') - back)\n"
        f"Conversation.objects.filter(pk={conversation_id}).update("
        "opened=F('opened') - back, last_inbound=F('last_inbound') - back, last_message=F('last_message') - back)\n"
    )
    synced = server.manage("sync_templates")
    assert "3 created" in synced or "3 updated" in synced or "0 created, 0 updated" in synced, synced
    page = new_page()
    log_in(page, "atendente1")

    # when: the attendant opens the conversation
    page.goto(f"/console/c/{conversation_id}/")

    # then: the composer says the window closed and offers only templates
    composer = page.locator("#composer")
    expect(composer).to_have_class("composer composer--window-closed")
    expect(composer.locator("details.composer__template")).to_have_count(3)
    expect(composer.locator("textarea[name=text]:not([data-placeholder-note])")).to_have_count(0)
    template = composer.locator("details.composer__template").filter(has_text="lembrete_agendamento")
    template.locator("summary").click()
    screenshot(page, "closed-window-composer.png")

    # when: one is filled in and sent
    inputs = template.locator("input[type=text]")
    expect(inputs).to_have_count(2)
    inputs.nth(0).fill("Fabiana")
    inputs.nth(1).fill("sexta-feira às 15h")
    template.locator("button[type=submit]").click()

    # then: it is in the timeline, and the stand-in accepted it
    sent = page.locator("#timeline .msg--out").filter(has_text="sexta-feira às 15h")
    expect(sent).to_have_count(1)
    expect(sent.locator(".tick--sent, .tick--delivered, .tick--read")).to_have_count(1, timeout=15_000)
    [(status, kind)] = query(
        server,
        # the attendant's template (the bot answered the customer's first message too)
        "SELECT status, type FROM conversations_message WHERE conversation_id = ? AND direction = 'out' "
        "AND sender_kind = 'attendant'",
        conversation_id,
    )
    assert kind == "template"
    assert status in ("sent", "delivered", "read")
