"""Every real sample is accepted and produces exactly the rows it should."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conversations.models import Alert, Conversation, Customer, Message, OrphanStatus, WebhookEvent
from tests.conftest import FIXTURES, SHARED_PAYLOADS, load_sample, rewrite_sample

# file -> (messages stored, event state)
EXPECTED = {
    "01_text_meta.json": (1, "done"),
    "02_text_bsuid_fields_pywa.json": (1, "done"),
    "04_text_forwarded_pywa.json": (1, "done"),
    "05_text_frequently_forwarded_pywa.json": (1, "done"),
    "07_text_ctwa_referral_meta.json": (1, "done"),
    "08_text_ctwa_referral_ref_video_fields.json": (1, "done"),
    "10_text_conversation_context_summary.json": (1, "done"),
    "11_image_with_url_meta.json": (1, "done"),
    "13_image_with_media_download_error_chatwoot.json": (0, "flagged"),
    "14_video_forwarded_caption_pywa.json": (1, "done"),
    "15_document_caption_filename_pywa.json": (1, "done"),
    "17_audio_file_voice_false_pywa.json": (1, "done"),
    "19_sticker_animated_meta.json": (1, "done"),
    "21_location_named_place_meta.json": (1, "done"),
    "23_location_url_only_bindambc.json": (1, "done"),
    "24_contacts_meta.json": (1, "done"),
    "26_contacts_all_fields_placeholders_netflie.json": (1, "done"),
    "27_interactive_button_reply_meta.json": (1, "done"),
    "28_interactive_list_reply_meta.json": (1, "done"),
    "30_interactive_nfm_reply_address_meta.json": (1, "done"),
    "31_button_template_quick_reply_bindambc.json": (1, "done"),
    "33_button_with_referral_and_referred_product_netflie.json": (1, "done"),
    "34_reaction_meta.json": (1, "done"),
    "35_reaction_removed_empty_emoji_pywa.json": (1, "done"),
    "37_order_meta.json": (1, "done"),
    "39_system_user_changed_number_meta.json": (1, "done"),
    "41_unsupported_edit_131051_meta.json": (1, "done"),
    "43_unsupported_no_subtype_bindambc.json": (1, "done"),
    "44_unknown_type_legacy_errors_netflie.json": (1, "done"),
    "46_value_level_errors_130429_meta.json": (0, "done"),
    "47_revoke_deleted_message_pywa.json": (1, "done"),
    "49_status_sent_pmp_marketing_meta.json": (0, "done"),
    "51_status_failed_131049_meta.json": (0, "done"),
    "52_status_delivered_cbp_service_meta.json": (0, "done"),
    "54_status_delivered_pywa.json": (0, "done"),
    "55_status_read_pywa.json": (0, "done"),
    "56_status_read_minimal_bindambc.json": (0, "done"),
    "58_status_failed_131047_reengagement_bindambc.json": (0, "done"),
    "59_status_failed_131053_media_upload_bindambc.json": (0, "done"),
    "61_status_failed_minimal_bad_id_netflie.json": (0, "done"),
    "62_status_sent_biz_opaque_callback_data_pywa.json": (0, "done"),
    "63_status_delivered_business_initiated_bindambc.json": (0, "done"),
    "65_status_group_batch_out_of_order.json": (0, "done"),
    "66_status_read_group_placeholders_pywa.json": (0, "done"),
    "67_batch_two_changes_one_entry_netflie.json": (1, "done"),
    "69_field_message_template_status_update_bindambc.json": (0, "done"),
    "71_field_smb_message_echoes_pywa.json": (1, "done"),
}


def test_it_has_an_expectation_for_every_bundled_sample() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_it_accepts_each_sample_and_stores_exactly_its_rows(name: str, inbox, post_webhook) -> None:
    # given
    expected_messages, expected_state = EXPECTED[name]
    body = json.dumps(load_sample(name)).encode()

    # when
    response = post_webhook(body)

    # then
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert bytes(event.body) == body
    assert event.signature_valid is True
    assert event.state == expected_state, event.notes
    assert event.last_error == ""
    assert Message.objects.count() == expected_messages


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", sorted(SHARED_PAYLOADS.glob("*.json")) or [None], ids=lambda p: p.name if p else "none"
)
def test_it_never_fails_on_a_shared_acceptance_sample(path: Path | None, inbox, post_webhook) -> None:
    """Whatever real samples sit in ../shared, each is answered 200 and processed or flagged."""
    if path is None:
        pytest.skip("no ../shared/whatsapp/payloads beside the repository")
    # given
    body = json.dumps(rewrite_sample(json.loads(path.read_text()), f"{path.name[:2]}.")).encode()

    # when
    response = post_webhook(body)

    # then
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.state in ("done", "flagged"), event.last_error
    ids = set()
    for entry in json.loads(body)["entry"]:
        for change in entry.get("changes", []):
            value = change.get("value", {})
            if value.get("metadata", {}).get("phone_number_id") == inbox.phone_number_id:
                ids |= {m["id"] for m in value.get("messages", []) + value.get("message_echoes", []) if "id" in m}
    assert Message.objects.filter(wamid__in=ids).count() == len(ids)


@pytest.mark.django_db
def test_it_stores_a_text_message_with_its_customer_and_conversation(inbox, post_webhook) -> None:
    # when
    post_webhook(load_sample("01_text_meta.json"))

    # then
    message = Message.objects.get()
    assert message.type == "text"
    assert message.text == "Does it come in another color?"
    assert message.direction == "in"
    assert message.sender_kind == "customer"
    assert message.wamid == "01.wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert message.wa_timestamp == datetime.fromtimestamp(1749416383, tz=UTC)
    customer = Customer.objects.get()
    assert (customer.wa_id, customer.name, customer.phone) == ("16505551234", "Sheena Nelson", "+16505551234")
    conversation = Conversation.objects.get()
    assert conversation.customer == customer
    assert conversation.inbox == inbox
    assert conversation.status == "bot"
    assert conversation.last_inbound == message.wa_timestamp
    assert message.conversation == conversation


@pytest.mark.django_db
def test_it_keeps_business_scoped_user_ids(inbox, post_webhook) -> None:
    post_webhook(load_sample("02_text_bsuid_fields_pywa.json"))

    customer = Customer.objects.get()
    assert customer.wa_id == "972987654321"
    assert customer.user_id == "US.13491208655302741918"
    assert customer.parent_user_id == "US.ENT.11815799212886844830"


@pytest.mark.django_db
def test_it_identifies_a_username_only_customer_by_user_id(inbox, post_webhook) -> None:
    # given: a user with a username and no phone number, twice
    data = load_sample("02_text_bsuid_fields_pywa.json", prefix="a.")
    value = data["entry"][0]["changes"][0]["value"]
    del value["contacts"][0]["wa_id"]
    value["contacts"][0]["profile"]["username"] = "maria.s"
    del value["messages"][0]["from"]
    value["messages"][0]["from_user_id"] = "US.13491208655302741918"
    second = json.loads(json.dumps(data).replace('"a.', '"b.'))

    # when
    post_webhook(data)
    post_webhook(second)

    # then
    customer = Customer.objects.get()
    assert (customer.wa_id, customer.user_id, customer.username) == ("", "US.13491208655302741918", "maria.s")
    assert customer.recipient == {"recipient": "US.13491208655302741918"}
    assert Message.objects.filter(conversation__customer=customer).count() == 2
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_it_marks_forwarded_messages(inbox, post_webhook) -> None:
    post_webhook(load_sample("04_text_forwarded_pywa.json"))
    post_webhook(load_sample("05_text_frequently_forwarded_pywa.json"))

    assert Message.objects.get(text="forwarded text").forwarded is True
    assert Message.objects.get(text="text forwarded many times").frequently_forwarded is True


@pytest.mark.django_db
def test_it_keeps_the_ad_referral_that_opened_the_conversation(inbox, post_webhook) -> None:
    post_webhook(load_sample("07_text_ctwa_referral_meta.json"))

    conversation = Conversation.objects.get()
    assert conversation.ctwa_clid.startswith("Aff-n8ZTODiE79d22KtAwQKj9e")
    assert conversation.referral_headline == "Chat with us"
    assert conversation.referral_source == "https://fb.me/3cr4Wqqkv"
    assert conversation.referral["welcome_message"] == {"text": "Hi there! Let us know how we can help!"}
    assert Message.objects.get().referral["source_id"] == "120226305854810726"


@pytest.mark.django_db
def test_it_keeps_media_fields_and_queues_the_download(inbox, post_webhook) -> None:
    post_webhook(load_sample("11_image_with_url_meta.json"))
    post_webhook(load_sample("15_document_caption_filename_pywa.json"))
    post_webhook(load_sample("17_audio_file_voice_false_pywa.json"))
    post_webhook(load_sample("19_sticker_animated_meta.json"))

    image = Message.objects.get(type="image")
    assert (image.media_id, image.media_mime, image.caption) == ("11.1003383421387256", "image/jpeg", "Taj Mahal")
    assert image.media_sha256 == "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI="
    assert image.media_status in ("pending", "failed")
    document = Message.objects.get(type="document")
    assert (document.media_filename, document.media_mime) == ("filename.pdf", "application/pdf")
    assert Message.objects.get(type="audio").content["voice"] is False
    assert Message.objects.get(type="sticker").content["animated"] is True


@pytest.mark.django_db
def test_it_flags_a_partial_envelope_and_keeps_it(inbox, post_webhook, english) -> None:
    body = json.dumps(load_sample("13_image_with_media_download_error_chatwoot.json")).encode()

    response = post_webhook(body)

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.state == "flagged"
    assert "partial envelope" in event.notes
    assert bytes(event.body) == body
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_it_keeps_location_contacts_interactive_button_and_order_fields(inbox, post_webhook) -> None:
    for name in (
        "21_location_named_place_meta.json",
        "26_contacts_all_fields_placeholders_netflie.json",
        "27_interactive_button_reply_meta.json",
        "28_interactive_list_reply_meta.json",
        "30_interactive_nfm_reply_address_meta.json",
        "33_button_with_referral_and_referred_product_netflie.json",
        "37_order_meta.json",
    ):
        post_webhook(load_sample(name))

    location = Message.objects.get(type="location")
    assert location.content["latitude"] == 37.44221496582
    assert location.text == "Philz Coffee, 101 Forest Ave, Palo Alto, CA 94301"
    contacts = Message.objects.get(type="contacts").content["contacts"][0]
    assert contacts["birthday"] == "1989-03-16"
    assert contacts["org"]["department"] == "CONTACT_ORG_DEPARTMENT"
    assert contacts["addresses"][0]["zip"] == "CONTACT_ZIP"
    button_reply = Message.objects.get(content__type="button_reply")
    assert button_reply.text == "Cancel"
    assert button_reply.context_wamid == "27.wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA"
    list_reply = Message.objects.get(content__type="list_reply")
    assert list_reply.content["list_reply"]["description"] == "Next Day to 2 Days"
    flow = Message.objects.get(content__type="nfm_reply")
    assert json.loads(flow.content["nfm_reply"]["response_json"])["values"]["city"] == "Mumbai"
    button = Message.objects.get(type="button")
    assert (button.text, button.content["payload"]) == ("No", "No-Button-Payload")
    assert button.content["referred_product"] == {"catalog_id": "CATALOG_ID", "product_retailer_id": "PRODUCT_ID"}
    assert button.forwarded and button.frequently_forwarded
    assert button.wa_timestamp == datetime.fromtimestamp(1669233778, tz=UTC)
    order = Message.objects.get(type="order")
    assert order.text == "Love these!"
    assert order.content["product_items"][1] == {
        "product_retailer_id": "nqryix03ez",
        "quantity": 1,
        "item_price": 25,
        "currency": "USD",
    }


@pytest.mark.django_db
def test_it_stores_unsupported_and_unknown_messages_with_metas_error(inbox, post_webhook) -> None:
    post_webhook(load_sample("41_unsupported_edit_131051_meta.json"))
    post_webhook(load_sample("44_unknown_type_legacy_errors_netflie.json"))

    unsupported = Message.objects.get(type="unsupported")
    assert unsupported.error_code == 131051
    assert unsupported.error_title == "Message type unknown"
    assert unsupported.error_details == "Message type is currently not supported."
    assert unsupported.content == {"type": "edit"}
    unknown = Message.objects.get(type="unknown")
    assert (unknown.error_code, unknown.error_details) == (131051, "Message type is not currently supported")


@pytest.mark.django_db
def test_it_applies_a_system_number_change_to_the_customer(inbox, post_webhook) -> None:
    # given: the customer wrote before
    post_webhook(load_sample("01_text_meta.json"))

    # when
    post_webhook(load_sample("39_system_user_changed_number_meta.json"))

    # then
    customer = Customer.objects.get()
    assert (customer.wa_id, customer.phone) == ("12195555358", "+12195555358")
    system = Message.objects.get(type="system")
    assert system.sender_kind == "system"
    assert system.text == "User Sheena Nelson changed from 16505551234 to 12195555358"
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_it_records_echoes_as_outbound_messages_from_the_phone_app(inbox, post_webhook) -> None:
    post_webhook(load_sample("71_field_smb_message_echoes_pywa.json"))

    echo = Message.objects.get()
    assert (echo.direction, echo.sender_kind, echo.status, echo.text) == ("out", "phone_app", "sent", "Test message")
    assert echo.conversation.last_inbound is None


@pytest.mark.django_db
def test_it_raises_an_alert_for_a_rejected_template(inbox, post_webhook) -> None:
    post_webhook(load_sample("69_field_message_template_status_update_bindambc.json"))

    event = WebhookEvent.objects.get()
    assert event.state == "done"
    assert "schedule_confirmation4" in event.notes
    alert = Alert.objects.get()
    assert alert.kind == "template"
    assert "REJECTED" in alert.title


@pytest.mark.django_db
def test_it_logs_value_level_errors_on_the_event(inbox, post_webhook) -> None:
    post_webhook(load_sample("46_value_level_errors_130429_meta.json"))

    event = WebhookEvent.objects.get()
    assert event.state == "done"
    assert "130429" in event.notes


@pytest.mark.django_db
def test_it_keeps_statuses_for_unknown_messages_without_failing(inbox, post_webhook) -> None:
    post_webhook(load_sample("61_status_failed_minimal_bad_id_netflie.json"))

    event = WebhookEvent.objects.get()
    assert event.state == "done"
    orphan = OrphanStatus.objects.get()
    assert (orphan.wamid, orphan.status) == ("61.amid.ID", "failed")
