"""The README's "Try it", on the server `make run` starts: the embedded mode (SQLite in WAL mode,
Celery tasks inline, daphne's runserver). A customer writes from the phone, an attendant takes
over and replies from the console, the reply reaches the phone and its ticks go to read.

The attendant's send runs inside the console request: the send task calls the Graph API
stand-in over HTTP on the same server, whose status webhooks then write to the same SQLite
file. Nothing may wait on a lock another request holds while it waits on HTTP.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.demo.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "atende-demo-2026"
WA_ID = "5511912340099"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`make run`'s commands on a fresh SQLite file and a free port."""
    folder = tmp_path_factory.mktemp("embedded")
    port = _free_port()
    site = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "WHATSAPP_", "DEMO_", "SECRET_KEY", "CELERY_"))
    }
    env.update(SQLITE_PATH=str(folder / "db.sqlite3"), MEDIA_ROOT=str(folder / "media"), SITE_URL=site)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    subprocess.run([*manage, "seed_demo", "--quiet"], cwd=ROOT, env=env, check=True, timeout=120)
    log = (folder / "server.log").open("wb")
    server = subprocess.Popen(
        [*manage, "runserver", "--noreload", f"127.0.0.1:{port}"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        wait_for(lambda: _answers(site), timeout=60)
        yield site, folder / "db.sqlite3"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _answers(site: str) -> bool:
    try:
        return httpx.get(site + "/health/", timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def _query(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=20) as connection:
        return connection.execute(sql, args).fetchall()


def _csrf(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def test_it_carries_a_conversation_between_the_phone_and_the_console(embedded: tuple[str, Path]) -> None:
    site, db = embedded
    phone = httpx.Client(base_url=site, timeout=60)
    console = httpx.Client(base_url=site, timeout=60)
    identity = {"wa_id": WA_ID, "name": "Paula Teste"}

    # given: the customer writes from the phone
    page = phone.get("/demo/phone/", params=identity)
    sent = phone.post(
        "/demo/phone/send/",
        data={
            "csrfmiddlewaretoken": _csrf(page.text),
            **identity,
            "kind": "text",
            "text": "Oi, queria marcar um horário",
        },
        headers={"HX-Request": "true"},
    )
    assert sent.status_code == 200
    [(conversation_id,)] = _query(
        db,
        "SELECT c.id FROM conversations_conversation c JOIN conversations_customer u ON u.id = c.customer_id "
        "WHERE u.wa_id = ?",
        WA_ID,
    )
    # the demo's offline bot answered it (tasks run inline in the embedded mode)
    assert _query(
        db,
        "SELECT COUNT(*) > 0 FROM conversations_message WHERE conversation_id = ? AND sender_kind = 'bot'",
        conversation_id,
    ) == [(1,)]

    # when: an attendant logs in, takes over and replies from the console
    login = console.get("/accounts/login/")
    answer = console.post(
        "/accounts/login/",
        data={"csrfmiddlewaretoken": _csrf(login.text), "username": "atendente1", "password": PASSWORD},
    )
    assert answer.status_code == 302, answer.text[:300]
    token = console.cookies["csrftoken"]
    headers = {"X-CSRFToken": token, "HX-Request": "true"}
    assert console.post(f"/console/c/{conversation_id}/take-over/", headers=headers).status_code == 200
    started = time.monotonic()
    reply = console.post(
        f"/console/c/{conversation_id}/send/", data={"text": "Olá, Paula! Temos quinta às 10h."}, headers=headers
    )

    # then: the send (task inline, Graph API stand-in over HTTP on the same server) was quick
    assert reply.status_code == 200, reply.text[:300]
    assert time.monotonic() - started < 10
    [(wamid,)] = _query(
        db,
        "SELECT wamid FROM conversations_message WHERE conversation_id = ? AND sender_kind = 'attendant'",
        conversation_id,
    )
    assert wamid.startswith("wamid.")
    # the phone shows the reply; once shown, the status webhooks take it to read
    assert "Olá, Paula! Temos quinta às 10h." in phone.get("/demo/phone/chat/", params=identity).text
    wait_for(
        lambda: _query(db, "SELECT status FROM conversations_message WHERE wamid = ?", wamid) == [("read",)],
        timeout=15,
    )
    assert _query(db, "SELECT COUNT(*) FROM conversations_webhookevent WHERE signature_valid = 0") == [(0,)]
