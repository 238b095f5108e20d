"""The demo's customer phone and Graph API stand-in, over real HTTP: ``live_server`` serves the
app in threads, so the stand-in's status webhooks and the phone's messages really travel
through ``/webhooks/whatsapp/`` like Meta's."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from conversations.models import Inbox
from demo.network import courier, network

PNID = "DEMO_TEST_PNID"
TOKEN = "demo-test-token"
SECRET = "demo-test-secret"
WABA = "DEMO_TEST_WABA"
WA_ID = "5511987650042"
NAME = "Maria Souza"
# A 4x4 red PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000004000000040802000000269309290000001049444154789c63f8cfc000"
    "470cc47100ae930ff1d05f239e0000000049454e44ae426082"
)


def settled() -> None:
    """Wait until the stand-in has posted every status webhook it owes.

    Tests read the database only then: on SQLite the live server's threads open their own
    connections to the shared in-memory test database, where a read meeting another
    connection's write fails at once ("table is locked") instead of waiting. (A file database,
    as in `make run`, waits; tests/demo/test_embedded_round_trip.py runs that one.)"""
    assert courier.wait_idle(20)


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.05)


@pytest.fixture
def demo_inbox(transactional_db: None) -> Inbox:
    return Inbox.objects.create(
        name="Clínica Sorriso",
        phone_number_id=PNID,
        display_number="5511900000042",
        waba_id=WABA,
        access_token=TOKEN,
        app_secret=SECRET,
        verify_token="demo-test-verify",
    )


@pytest.fixture
def demo_site(live_server: Any, settings: Any, demo_inbox: Inbox) -> Iterator[str]:
    """The app on a live server, its Graph API URL pointing at its own stand-in."""
    settings.DEMO_ENABLED = True
    settings.WHATSAPP_PHONE_NUMBER_ID = PNID
    settings.WHATSAPP_GRAPH_URL = live_server.url + "/demo/graph/v24.0"
    settings.WHATSAPP_HTTP_TIMEOUT = 10.0
    # Plain HTTP, as in the embedded mode (the production-mode run of the suite sets it).
    settings.CSRF_COOKIE_SECURE = False
    network.reset()
    yield live_server.url
    # Every status webhook handed to the courier arrives before the database is emptied.
    assert courier.wait_idle(20)
    network.reset()


class Phone:
    """A browser on /demo/phone/ as one customer (cookies and the CSRF token included)."""

    def __init__(self, base_url: str, wa_id: str = WA_ID, name: str = NAME) -> None:
        self.wa_id, self.name = wa_id, name
        self.http = httpx.Client(base_url=base_url, timeout=30.0)
        page = self.http.get("/demo/phone/", params={"wa_id": wa_id, "name": name})
        assert page.status_code == 200, page.text[:500]
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match is not None
        self.token = match.group(1)

    def send(self, kind: str, files: dict | None = None, **fields: str) -> httpx.Response:
        data = {"csrfmiddlewaretoken": self.token, "wa_id": self.wa_id, "name": self.name, "kind": kind, **fields}
        response = self.http.post("/demo/phone/send/", data=data, files=files, headers={"HX-Request": "true"})
        # Showing the chat reports the business's messages read: let those webhooks land.
        settled()
        return response

    def chat(self, version: str = "") -> httpx.Response:
        params = {"wa_id": self.wa_id, "name": self.name, "v": version}
        response = self.http.get("/demo/phone/chat/", params=params, headers={"HX-Request": "true"})
        settled()
        return response


@pytest.fixture
def phone(demo_site: str) -> Iterator[Phone]:
    device = Phone(demo_site)
    yield device
    device.http.close()
