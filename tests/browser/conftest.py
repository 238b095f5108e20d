"""Browser tests: Playwright for Python driving Debian's Chromium against the server `make run`
starts (the embedded mode: SQLite in WAL mode, tasks inline, daphne's runserver, the Graph API
stand-in and the demo phone), one server for the whole session.

The server runs in a subprocess whose environment has no DATABASE_URL/REDIS_URL (CI sets them
for the test process itself): only the embedded mode serves /demo/. Setup the browser cannot
do (a TOTP device, a conversation in the queue, an old inbound message) goes through
``manage.py shell`` in the same environment, against the same SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from conversations.whatsapp.signature import sign
from tests.demo.conftest import wait_for
from tests.demo.test_embedded_round_trip import _answers, _csrf, _free_port, _query

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "atende-demo-2026"
SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
# The embedded mode's default inbox (config/settings.py): what Meta would sign with.
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550783881"
APP_SECRET = "demo-app-secret"


@dataclass
class Server:
    url: str
    env: dict[str, str]
    folder: Path

    def shell(self, code: str) -> str:
        """Run Python in the server's environment (``manage.py shell -c``); returns its stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def post_webhook(self, value: dict) -> None:
        """Post a signed webhook as Meta would, for the default inbox (``value`` is one change's value)."""
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID},
            **value,
        }
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
            }
        ).encode()
        answer = httpx.post(
            self.url + "/webhooks/whatsapp/",
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text[:300]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`make run`'s commands on a fresh SQLite file and a free port (as tests/demo's round trip)."""
    folder = tmp_path_factory.mktemp("browser")
    port = _free_port()
    site = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "WHATSAPP_", "DEMO_", "SECRET_KEY", "CELERY_", "OTP_"))
    }
    env.update(SQLITE_PATH=str(folder / "db.sqlite3"), MEDIA_ROOT=str(folder / "media"), SITE_URL=site)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    subprocess.run([*manage, "seed_demo", "--quiet"], cwd=ROOT, env=env, check=True, timeout=120)
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        wait_for(lambda: _answers(site), timeout=60)
        yield Server(site, env, folder)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: object, server: Server) -> Iterator:
    """Opens pages in fresh browser contexts (own cookies) at 1280x800; each records dialogs."""
    contexts = []

    def open_page(locale: str = "pt-BR"):
        context = browser.new_context(base_url=server.url, viewport=VIEWPORT, locale=locale)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.dialogs = []  # type: ignore[attr-defined]
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        return page

    yield open_page
    for context in contexts:
        context.close()


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.locator("form [type=submit]").first.click()
    page.wait_for_load_state()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def query(server: Server, sql: str, *args: object) -> list[tuple]:
    return _query(server.folder / "db.sqlite3", sql, *args)


def customer_writes(server: Server, wa_id: str, name: str, text: str) -> int:
    """The customer sends a text from the demo phone (over HTTP); returns their open conversation's id."""
    phone = httpx.Client(base_url=server.url, timeout=60)
    identity = {"wa_id": wa_id, "name": name}
    page = phone.get("/demo/phone/", params=identity)
    sent = phone.post(
        "/demo/phone/send/",
        data={"csrfmiddlewaretoken": _csrf(page.text), **identity, "kind": "text", "text": text},
        headers={"HX-Request": "true"},
    )
    assert sent.status_code == 200, sent.text[:300]
    return conversation_of(server, wa_id)


def conversation_of(server: Server, wa_id: str) -> int:
    rows = query(
        server,
        "SELECT c.id FROM conversations_conversation c JOIN conversations_customer u ON u.id = c.customer_id "
        "WHERE u.wa_id = ? ORDER BY c.id DESC LIMIT 1",
        wa_id,
    )
    assert rows, f"no conversation for {wa_id}"
    return rows[0][0]


def to_queue(server: Server, conversation_id: int) -> None:
    """The bot's handoff: the conversation waits in the queue. The offline bot answers every
    customer and may have handed it off already (a cancellation, a request for a person): then
    its open handoff is only updated, and the conversation stays queued."""
    server.shell(
        "from handoffs import services\n"
        f"services.request_handoff({conversation_id}, reason='customer_request', detail='Cliente pediu um atendente')\n"
    )
    status = query(server, "SELECT status FROM conversations_conversation WHERE id = ?", conversation_id)
    assert status == [("queued",)], f"conversation #{conversation_id} is {status}, not waiting in the queue"


def queued_conversation(server: Server, wa_id: str, name: str, text: str) -> int:
    conversation_id = customer_writes(server, wa_id, name, text)
    to_queue(server, conversation_id)
    return conversation_id
