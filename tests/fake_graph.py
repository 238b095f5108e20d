"""A fake WhatsApp Graph API: a real HTTP server on 127.0.0.1, scriptable per route.

Routes (``/v23.0`` prefix, as in ``settings.WHATSAPP_GRAPH_URL``):

- ``POST /v23.0/<pnid>/messages``: a send (or a mark-as-read). By default it accepts and
  answers a fresh wamid; queued ``Reply`` objects are used first, in order.
- ``POST /v23.0/<pnid>/media``: an upload; answers ``{"id": "UPLOADED.<n>"}``.
- ``GET /v23.0/<media_id>``: media info for files added with ``add_media``.
- ``GET /files/<token>``: the binary download; it needs the Bearer token, like Meta's.
- ``GET /v23.0/<waba_id>/message_templates``: the templates set in ``templates[waba_id]``,
  paged by ``limit`` with ``after`` cursors, as Meta pages them.

Every request is recorded (method, path, query, headers, body) *before* any scripted delay,
so a test can see that a request reached "Meta" even when the client gave up waiting.
``accepted`` lists the messages the server accepted (the ones Meta would deliver), including
those whose answer the client never read.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/v23.0"
TOKEN = "test-token"
HOLD_LIMIT = 10.0


@dataclass
class Reply:
    """A scripted answer. ``accept=True`` makes a messages reply a real acceptance (a wamid is
    generated unless ``wamid`` is given), e.g. combined with ``delay`` to lose the answer."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    accept: bool = False
    wamid: str = ""
    # Close the connection without answering (after recording the request).
    drop: bool = False
    # Set when the request has arrived (and is recorded): a test can act while it is in flight.
    arrived: threading.Event | None = None
    # The answer waits until this is set (at most HOLD_LIMIT seconds): a test decides when a
    # slow upload or a slow answer completes, instead of racing a timer.
    hold: threading.Event | None = None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    # The client's address and port: one per TCP connection.
    peer: tuple[str, int] = ("", 0)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class FakeMedia:
    content: bytes
    mime_type: str
    sha256: str
    file_size: int
    # How many info answers give an already-expired URL before a working one.
    expired_urls: int = 0


def graph_error(
    code: int,
    *,
    status: int = 400,
    message: str = "",
    details: str = "",
    subcode: int | None = None,
    delay: float = 0.0,
) -> Reply:
    """An error in Meta's shape."""
    titles = {
        0: "AuthException",
        4: "Application request limit reached",
        100: "Invalid parameter",
        190: "Error validating access token: Session has expired",
        368: "Temporarily blocked for policies violations",
        130429: "Rate limit hit",
        131000: "Something went wrong",
        131026: "Message undeliverable",
        131031: "Account has been locked",
        131047: "Re-engagement message",
        131056: "(Business Account, Consumer Account) pair rate limit hit",
        132001: "Template name does not exist in the translation",
    }
    error: dict[str, Any] = {
        "message": f"(#{code}) {message or titles.get(code, 'Error')}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or f"details for {code}"},
        "fbtrace_id": f"TRACE{code}",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return Reply(status=status, json={"error": error}, delay=delay)


def sha256_b64(content: bytes) -> str:
    return base64.b64encode(hashlib.sha256(content).digest()).decode()


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class FakeGraph:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.accepted: list[dict[str, Any]] = []
        self.media: dict[str, FakeMedia] = {}
        # Message templates per WhatsApp Business Account id, as Meta lists them.
        self.templates: dict[str, list[dict[str, Any]]] = {}
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._tokens: dict[str, tuple[str, bool]] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeGraph:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: with Nagle on, the second waits for the
            # client's delayed ACK (about 40 ms), a delay no real server adds.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A delayed answer must not hold up the end of a test.
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def root(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """What ``settings.WHATSAPP_GRAPH_URL`` should be."""
        return self.root + API_PREFIX

    # --- scripting ------------------------------------------------------------------------

    def script(self, route: str, *replies: Reply) -> None:
        """Queue answers for a route: ``messages``, ``media`` (upload), ``info``, ``download``."""
        with self._lock:
            self._scripts[route].extend(replies)

    def add_media(
        self, media_id: str, content: bytes, mime_type: str, *, sha256: str | None = None, expired_urls: int = 0
    ) -> FakeMedia:
        media = FakeMedia(
            content=content,
            mime_type=mime_type,
            sha256=sha256_hex(content) if sha256 is None else sha256,
            file_size=len(content),
            expired_urls=expired_urls,
        )
        self.media[media_id] = media
        return media

    # --- what happened ----------------------------------------------------------------------

    def calls(self, route: str) -> list[Recorded]:
        return [r for r in self.requests if self._route(r.method, r.path)[0] == route]

    def sends(self) -> list[Recorded]:
        """Message sends (not mark-as-read calls)."""
        return [r for r in self.calls("messages") if (r.json or {}).get("status") != "read"]

    # --- serving ----------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[str, str]:
        if method == "GET" and path.startswith("/files/"):
            return "download", path.removeprefix("/files/")
        if path.startswith(API_PREFIX + "/"):
            parts = path.removeprefix(API_PREFIX + "/").strip("/").split("/")
            if method == "POST" and len(parts) == 2 and parts[1] == "messages":
                return "messages", parts[0]
            if method == "POST" and len(parts) == 2 and parts[1] == "media":
                return "media", parts[0]
            if method == "GET" and len(parts) == 1:
                return "info", parts[0]
            if method == "GET" and len(parts) == 2 and parts[1] == "message_templates":
                return "templates", parts[0]
        return "unknown", path

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        recorded = Recorded(
            method=handler.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            peer=handler.client_address[:2],
        )
        route, arg = self._route(handler.command, split.path)
        with self._lock:
            self.requests.append(recorded)
            scripted = self._scripts[route].popleft() if self._scripts[route] else None
        if scripted is not None and scripted.arrived is not None:
            scripted.arrived.set()
        reply = self._answer(route, arg, recorded, scripted)
        if reply.hold is not None:
            reply.hold.wait(HOLD_LIMIT)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            handler.close_connection = True
            return
        payload = reply.body if reply.body is not None else json.dumps(reply.json or {}).encode()
        try:
            handler.send_response(reply.status)
            content_type = "application/json" if reply.body is None else "application/octet-stream"
            headers = {"Content-Type": content_type, **reply.headers}
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client timed out and hung up: Meta would have done the work all the same.
            pass

    def _answer(self, route: str, arg: str, recorded: Recorded, scripted: Reply | None) -> Reply:
        if recorded.headers.get("authorization") != f"Bearer {TOKEN}":
            return graph_error(190, status=401, message="Invalid OAuth access token")
        if scripted is not None and not scripted.accept:
            return scripted
        if route == "messages":
            data = recorded.json or {}
            if data.get("status") == "read":
                return Reply(json={"success": True})
            wamid = (scripted.wamid if scripted else "") or f"wamid.FAKE{next(self._counter)}"
            with self._lock:
                self.accepted.append({"wamid": wamid, "body": data})
            answer = {
                "messaging_product": "whatsapp",
                "contacts": [{"input": data.get("to", ""), "wa_id": str(data.get("to", "")).lstrip("+")}],
                "messages": [{"id": wamid}],
            }
            if scripted is not None:
                return Reply(json=answer, delay=scripted.delay, drop=scripted.drop, hold=scripted.hold)
            return Reply(json=answer)
        if route == "media":
            return Reply(json={"id": f"UPLOADED.{next(self._counter)}"})
        if route == "templates":
            return self._templates_page(arg, recorded.query)
        if route == "info":
            media = self.media.get(arg)
            if media is None:
                return graph_error(100, message="Invalid parameter", details="Unknown media id")
            token = f"{arg}-{next(self._counter)}"
            expired = media.expired_urls > 0
            if expired:
                media.expired_urls -= 1
            with self._lock:
                self._tokens[token] = (arg, expired)
            return Reply(
                json={
                    "messaging_product": "whatsapp",
                    "url": f"{self.root}/files/{token}",
                    "mime_type": media.mime_type,
                    "sha256": media.sha256,
                    "file_size": media.file_size,
                    "id": arg,
                }
            )
        if route == "download":
            media_id, expired = self._tokens.get(arg, ("", True))
            if expired or media_id not in self.media:
                return Reply(status=404, body=b"URL signature expired", headers={"Content-Type": "text/plain"})
            media = self.media[media_id]
            return Reply(body=media.content, headers={"Content-Type": media.mime_type})
        return Reply(status=404, json={"error": {"message": "Unknown path", "code": 100}})

    def _templates_page(self, waba_id: str, query: dict[str, list[str]]) -> Reply:
        if waba_id not in self.templates:
            return graph_error(100, message="Unsupported get request", details="Unknown WABA id")
        items = self.templates[waba_id]
        limit = int((query.get("limit") or ["25"])[0])
        start = int((query.get("after") or ["0"])[0])
        page = items[start : start + limit]
        answer: dict[str, Any] = {"data": page, "paging": {"cursors": {"before": str(start)}}}
        if start + limit < len(items):
            answer["paging"]["cursors"]["after"] = str(start + limit)
            # Meta's next link: a client must not follow it blindly with its token.
            answer["paging"]["next"] = f"https://graph.example.invalid/{waba_id}/templates?after={start + limit}"
        return Reply(json=answer)
