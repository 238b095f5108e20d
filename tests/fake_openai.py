"""A fake OpenAI-compatible provider: a real HTTP server on 127.0.0.1, scriptable per route.

Routes (``/v1`` prefix, so ``fake.url`` is what a bot's ``base_url`` should be):

- ``POST /v1/chat/completions``: queued ``Reply`` objects are used first, in order (see
  ``answer``, ``tool_calls``, ``error``, ``rate_limited``, ``hang``); with nothing queued it
  answers a deterministic plain text (``DEFAULT_ANSWER`` plus the last user line) at once.
- ``POST /v1/audio/transcriptions``: multipart like OpenAI's; the uploaded file is kept in
  ``uploads``; answers the next queued reply (see ``transcript``) or ``DEFAULT_TRANSCRIPT``.

Every request is recorded (method, path, headers, body) *before* any scripted delay or hold,
so a test can see that a request reached the provider even when the client gave up waiting.
``api_key``, when set, is required as the Bearer token (a wrong one gets OpenAI's 401).

Standalone (the benchmark): ``python -m tests.fake_openai --port 8765`` serves instant answers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/v1"
HOLD_LIMIT = 10.0
DEFAULT_MODEL = "fake-model"
# The key the ``fake_openai`` fixture requires (a secret-looking one, for the never-logged tests).
TEST_KEY = "sk-test-FAKE0123456789abcdefSECRET"
DEFAULT_ANSWER = "Resposta automática:"
DEFAULT_TRANSCRIPT = "Olá, queria saber o preço do corte de cabelo."


@dataclass
class Reply:
    """A scripted answer. ``json`` is sent as is (build it with the helpers below)."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Close the connection without answering (after recording the request).
    drop: bool = False
    # Never answer while the server runs (at most HOLD_LIMIT seconds): the client times out.
    hang: bool = False
    # Set when the request has arrived (and is recorded): a test can act while it is in flight.
    arrived: threading.Event | None = None
    # The answer waits until this is set (at most HOLD_LIMIT seconds).
    hold: threading.Event | None = None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Upload:
    """One transcription request: the file and the form fields sent with it."""

    filename: str
    content_type: str
    data: bytes
    fields: dict[str, str]


# --- answers in OpenAI's shape -------------------------------------------------------------


def _completion(message: dict[str, Any], finish: str, tokens_in: int, tokens_out: int, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
    }


def answer(
    text: str,
    *,
    tokens_in: int = 100,
    tokens_out: int = 20,
    model: str = DEFAULT_MODEL,
    delay: float = 0.0,
    usage: bool = True,
) -> Reply:
    """A plain answer. ``usage=False`` leaves usage out, as some local servers do."""
    data = _completion({"role": "assistant", "content": text}, "stop", tokens_in, tokens_out, model)
    if not usage:
        del data["usage"]
    return Reply(json=data, delay=delay)


def call(name: str, arguments: dict[str, Any] | str | None = None, *, id: str | None = None) -> dict[str, Any]:
    """One tool call for ``tool_calls``; a string ``arguments`` is sent verbatim (bad JSON too).
    ``id=""`` sends an empty id, as some OpenAI-compatible servers do."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return {
        "id": f"call_{name}_{time.monotonic_ns()}" if id is None else id,
        "type": "function",
        "function": {"name": name, "arguments": raw},
    }


def tool_calls(
    *calls: dict[str, Any],
    text: str | None = None,
    tokens_in: int = 100,
    tokens_out: int = 20,
    model: str = DEFAULT_MODEL,
) -> Reply:
    """The model asks for tools (each made with ``call``), optionally with some text."""
    message = {"role": "assistant", "content": text, "tool_calls": list(calls)}
    return Reply(json=_completion(message, "tool_calls", tokens_in, tokens_out, model))


def error(
    status: int, message: str = "", *, type: str = "", code: str | None = None, headers: dict[str, str] | None = None
) -> Reply:
    """An error in OpenAI's shape."""
    defaults = {
        400: ("invalid_request_error", "Invalid request"),
        401: ("invalid_request_error", "Incorrect API key provided"),
        404: ("invalid_request_error", "The model does not exist"),
        429: ("requests", "Rate limit reached"),
        500: ("server_error", "The server had an error while processing your request"),
        503: ("server_error", "The engine is currently overloaded"),
    }
    default_type, default_message = defaults.get(status, ("server_error", "Error"))
    body = {"error": {"message": message or default_message, "type": type or default_type, "param": None, "code": code}}
    return Reply(status=status, json=body, headers=headers or {})


def rate_limited(retry_after: float = 1, message: str = "") -> Reply:
    return error(
        429,
        message or "Rate limit reached for requests",
        code="rate_limit_exceeded",
        headers={"Retry-After": f"{retry_after:g}"},
    )


def hang() -> Reply:
    return Reply(hang=True)


def dropped() -> Reply:
    return Reply(drop=True)


def transcript(text: str, *, delay: float = 0.0) -> Reply:
    return Reply(json={"text": text}, delay=delay)


def approximate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class FakeOpenAI:
    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.uploads: list[Upload] = []
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeOpenAI:
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

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        # A hanging answer must not hold up the end of a test.
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
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
        """What a bot's ``base_url`` should be."""
        return self.root + API_PREFIX

    # --- scripting ------------------------------------------------------------------------

    def script(self, route: str, *replies: Reply) -> None:
        """Queue answers for a route: ``chat`` or ``transcriptions``."""
        with self._lock:
            self._scripts[route].extend(replies)

    def chat(self, *replies: Reply) -> None:
        self.script("chat", *replies)

    def pending(self, route: str = "chat") -> int:
        with self._lock:
            return len(self._scripts[route])

    # --- what happened ----------------------------------------------------------------------

    def calls(self, route: str) -> list[Recorded]:
        return [r for r in self.requests if self._route(r.method, r.path) == route]

    def chats(self) -> list[dict[str, Any]]:
        """The chat completion requests' bodies, in order."""
        return [r.json for r in self.calls("chat")]

    # --- serving ----------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> str:
        if method == "POST" and path == API_PREFIX + "/chat/completions":
            return "chat"
        if method == "POST" and path == API_PREFIX + "/audio/transcriptions":
            return "transcriptions"
        return "unknown"

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
        )
        route = self._route(handler.command, split.path)
        with self._lock:
            self.requests.append(recorded)
            if route == "transcriptions":
                self.uploads.append(self._parse_upload(recorded))
            scripted = self._scripts[route].popleft() if self._scripts[route] else None
        if scripted is not None and scripted.arrived is not None:
            scripted.arrived.set()
        reply = self._answer(route, recorded, scripted)
        if reply.hang:
            self._stopping.wait(HOLD_LIMIT)
            handler.close_connection = True
            return
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
            for name, value in {"Content-Type": content_type, **reply.headers}.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client timed out and hung up.
            pass

    def _answer(self, route: str, recorded: Recorded, scripted: Reply | None) -> Reply:
        if self.api_key is not None and recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return error(401, "Incorrect API key provided", code="invalid_api_key")
        if scripted is not None:
            return scripted
        if route == "chat":
            return self._default_chat(recorded.json or {})
        if route == "transcriptions":
            return transcript(DEFAULT_TRANSCRIPT)
        return error(404, "Unknown path")

    def _default_chat(self, data: dict[str, Any]) -> Reply:
        messages = data.get("messages") or []
        last_user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        if not isinstance(last_user, str):
            last_user = json.dumps(last_user)
        text = f"{DEFAULT_ANSWER} {last_user}".strip()
        prompt = sum(approximate_tokens(str(m.get("content") or "")) for m in messages)
        return answer(
            text, tokens_in=prompt, tokens_out=approximate_tokens(text), model=data.get("model") or DEFAULT_MODEL
        )

    def _parse_upload(self, recorded: Recorded) -> Upload:
        content_type = recorded.headers.get("content-type", "")
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + recorded.body
        )
        upload = Upload(filename="", content_type="", data=b"", fields={})
        if not message.is_multipart():
            return upload
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition") or ""
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                upload.filename = filename
                upload.content_type = part.get_content_type()
                upload.data = payload
            else:
                upload.fields[name] = payload.decode("utf-8", "replace")
        return upload


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible server with instant answers.")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    fake = FakeOpenAI().start(args.port)
    print(f"fake OpenAI at {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
