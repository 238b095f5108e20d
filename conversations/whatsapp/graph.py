"""A small client for the WhatsApp Cloud API (Graph API), one per inbox.

Every failure becomes a ``GraphError`` whose ``kind`` tells the caller what to do next:

- ``retryable``: Meta surely did not act on the request (an error answer, or a connection
  that never opened); try again later.
- ``uncertain``: the request may have reached Meta (the answer was lost). Sending it again
  could deliver the message twice, so the caller waits for a status webhook instead.
- ``needs_template``: the 24-hour window is closed (131047).
- ``alert``: the token, a permission or the account needs an admin (190, 0/3/10/200-299,
  368, 131031, missing or disabled templates). ``pause`` says whether to stop sending.
- ``permanent``: anything else; retrying will not help.

The access token goes only into the Authorization header: it is never logged and never part
of an error's text.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
from django.conf import settings

from conversations.models import Alert, Inbox

logger = logging.getLogger(__name__)

RETRYABLE = "retryable"
UNCERTAIN = "uncertain"
NEEDS_TEMPLATE = "needs_template"
ALERT = "alert"
PERMANENT = "permanent"

PAIR_RATE_LIMIT = 131056
REENGAGEMENT = 131047
RETRYABLE_CODES = frozenset({130429, PAIR_RATE_LIMIT, 4, 80007, 131000, 131016, 131057})
TOKEN_CODES = frozenset({190})
PERMISSION_CODES = frozenset({0, 3, 10, *range(200, 300)})
ACCOUNT_CODES = frozenset({368, 131031})
# Missing, paused or disabled templates: only an admin can fix them, so they alert too.
TEMPLATE_CODES = frozenset({132001, 132015, 132016})
# Meta stops accepting anything from the number until a person fixes these.
PAUSE_CODES = TOKEN_CODES | ACCOUNT_CODES

USER_AGENT = "Atende/1.0 (WhatsApp helpdesk)"
_TITLE_PREFIX = re.compile(r"^\(#\d+\)\s*")


@dataclass(eq=False)
class GraphError(Exception):
    """A failed Graph API call, classified. ``str()`` is safe to log and to show an admin."""

    message: str
    http_status: int | None = None
    code: int | None = None
    subcode: int | None = None
    title: str = ""
    details: str = ""
    fbtrace_id: str = ""
    kind: str = PERMANENT
    # Parsed error body, for the record (never contains our token).
    body: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [f"HTTP {self.http_status}" if self.http_status else "transport"]
        if self.code is not None:
            parts.append(f"code {self.code}")
        parts.append(self.title or self.message)
        if self.details and self.details != (self.title or self.message):
            parts.append(self.details)
        if self.fbtrace_id:
            parts.append(f"fbtrace_id {self.fbtrace_id}")
        return " / ".join(parts)

    @property
    def retryable(self) -> bool:
        return self.kind == RETRYABLE

    @property
    def uncertain(self) -> bool:
        return self.kind == UNCERTAIN

    @property
    def needs_template(self) -> bool:
        return self.kind == NEEDS_TEMPLATE

    @property
    def alert(self) -> bool:
        return self.kind == ALERT

    @property
    def pause(self) -> bool:
        """Stop all sends from this inbox until an admin clears it."""
        return self.code in PAUSE_CODES

    @property
    def alert_kind(self) -> str:
        if self.code in TOKEN_CODES:
            return Alert.Kind.TOKEN
        if self.code in ACCOUNT_CODES:
            return Alert.Kind.ACCOUNT
        if self.code in TEMPLATE_CODES:
            return Alert.Kind.TEMPLATE
        return Alert.Kind.PERMISSION

    @property
    def as_error_dict(self) -> dict[str, Any]:
        """The shape ``services.set_error`` reads (same as a failed status webhook's errors[0])."""
        return {
            "code": self.code if self.code is not None else self.http_status,
            "title": self.title or self.message,
            "error_data": {"details": self.details or self.message},
        }


class MediaTooLarge(GraphError):
    pass


def classify(http_status: int | None, code: int | None) -> str:
    if code == REENGAGEMENT:
        return NEEDS_TEMPLATE
    if code in RETRYABLE_CODES:
        return RETRYABLE
    if code in PAUSE_CODES or code in PERMISSION_CODES or code in TEMPLATE_CODES:
        return ALERT
    if http_status is not None and (http_status == 429 or http_status >= 500):
        return RETRYABLE
    return PERMANENT


def error_from_response(response: httpx.Response) -> GraphError:
    """Build a GraphError from a non-2xx answer, whatever its body looks like."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        # No Graph error object: a proxy or load balancer answered. A 504 means the request
        # may have been handed to Meta's backend, so its outcome is unknown.
        kind = UNCERTAIN if status == 504 else classify(status, None)
        text = response.text[:300] if response.headers.get("content-type", "").startswith("text/plain") else ""
        return GraphError(message=text or response.reason_phrase or f"HTTP {status}", http_status=status, kind=kind)

    def _int(value: Any) -> int | None:
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    code = _int(error.get("code"))
    message = str(error.get("message") or "")
    error_data = error.get("error_data") if isinstance(error.get("error_data"), dict) else {}
    title = str(error.get("error_user_title") or _TITLE_PREFIX.sub("", message) or message)
    details = str(error_data.get("details") or error.get("error_user_msg") or "")
    return GraphError(
        message=message or f"HTTP {status}",
        http_status=status,
        code=code,
        subcode=_int(error.get("error_subcode")),
        title=title[:500],
        details=details,
        fbtrace_id=str(error.get("fbtrace_id") or ""),
        kind=classify(status, code),
        body=error,
    )


def error_from_transport(exc: httpx.HTTPError) -> GraphError:
    # ConnectError/ConnectTimeout: no byte of the request left this machine, so a retry cannot
    # duplicate anything. Any later failure (write/read timeout, dropped connection) may come
    # after Meta received and acted on the request.
    not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    kind = RETRYABLE if not_sent else UNCERTAIN
    return GraphError(message=f"{type(exc).__name__}: {exc}"[:500], kind=kind)


@dataclass
class MediaInfo:
    url: str
    mime_type: str
    sha256: str
    file_size: int | None
    id: str


@dataclass
class Download:
    """A downloaded file, spooled to disk past a few MB; the caller closes ``file``."""

    file: IO[bytes]
    size: int
    sha256_hex: str
    content_type: str


# One pooled HTTP client per process: a new ``httpx.Client`` builds its TLS context (tens of
# milliseconds of CPU), and a new connection to Meta costs a TCP and TLS handshake per send.
# Kept-alive connections are dropped after KEEPALIVE_SECONDS idle, well before servers usually
# close them, so a send rarely meets a connection closing under it. Keyed by process id: a
# forked worker never uses its parent's sockets.
KEEPALIVE_SECONDS = 20.0
_shared: dict[int, httpx.Client] = {}
_shared_lock = threading.Lock()


def shared_client() -> httpx.Client:
    pid = os.getpid()
    client = _shared.get(pid)
    if client is None:
        with _shared_lock:
            client = _shared.get(pid)
            if client is None:
                _shared.clear()
                # Redirects are not followed: the Bearer header must never travel to another host.
                client = httpx.Client(
                    follow_redirects=False,
                    limits=httpx.Limits(max_connections=50, keepalive_expiry=KEEPALIVE_SECONDS),
                )
                _shared[pid] = client
    return client


class GraphClient:
    def __init__(self, inbox: Inbox, *, timeout: float | None = None, transport: httpx.BaseTransport | None = None):
        self.inbox = inbox
        self.base_url = settings.WHATSAPP_GRAPH_URL.rstrip("/")
        self.timeout = settings.WHATSAPP_HTTP_TIMEOUT if timeout is None else timeout
        self._transport = transport

    # --- plumbing -----------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.inbox.access_token}", "User-Agent": USER_AGENT}

    @contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        """The process's pooled client (see ``shared_client``), or a client of its own for a
        transport given by a test. Headers and timeout go with each request."""
        if self._transport is None:
            yield shared_client()
            return
        with httpx.Client(transport=self._transport, follow_redirects=False) as client:
            yield client

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            with self._client() as client:
                response = client.request(method, url, headers=self._headers(), timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            error = error_from_transport(exc)
            logger.warning("graph %s %s failed: %s", method, path, error)
            raise error from exc
        if response.is_success:
            try:
                data = response.json()
            except ValueError as exc:
                # A 200 we cannot read: Meta may well have acted on it.
                raise GraphError(
                    message="unreadable success response", http_status=response.status_code, kind=UNCERTAIN
                ) from exc
            return data if isinstance(data, dict) else {}
        error = error_from_response(response)
        logger.warning("graph %s %s failed: %s", method, path, error)
        raise error

    # --- messages -----------------------------------------------------------------------

    def send_message(self, body: dict[str, Any]) -> str:
        """POST a message body; return the wamid Meta assigned."""
        data = self._request("POST", f"{self.inbox.phone_number_id}/messages", json=body)
        messages = data.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not wamid:
            # Accepted but without an id: treat like a lost answer, the status webhook (which
            # echoes our callback data) will tell us the wamid.
            raise GraphError(message="success response without messages[0].id", http_status=200, kind=UNCERTAIN)
        return str(wamid)

    def mark_read(self, wamid: str, *, typing: bool = False) -> bool:
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        data = self._request("POST", f"{self.inbox.phone_number_id}/messages", json=body)
        return bool(data.get("success"))

    # --- templates ----------------------------------------------------------------------

    def list_templates(self, waba_id: str, *, page_size: int = 100, max_pages: int = 50) -> list[dict[str, Any]]:
        """Every message template of a WhatsApp Business Account, all pages. Pages are followed
        by their ``after`` cursor on our base URL, never by ``paging.next``: the Bearer header
        must not travel to whatever host a response names."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {
            "fields": "id,name,language,status,category,components",
            "limit": page_size,
        }
        for _page in range(max_pages):
            data = self._request("GET", f"{waba_id}/message_templates", params=params)
            page = data.get("data")
            items += [item for item in page if isinstance(item, dict)] if isinstance(page, list) else []
            paging = data.get("paging") if isinstance(data.get("paging"), dict) else {}
            cursors = paging.get("cursors") if isinstance(paging.get("cursors"), dict) else {}
            after = cursors.get("after")
            if not paging.get("next") or not after:
                return items
            params = {**params, "after": after}
        raise GraphError(message=f"more than {max_pages} pages of templates", kind=PERMANENT)

    # --- media --------------------------------------------------------------------------

    def upload_media(self, file: IO[bytes], *, mime_type: str, filename: str) -> str:
        """Upload a file for sending; return Meta's media id (valid for 30 days)."""
        data = self._request(
            "POST",
            f"{self.inbox.phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, file, mime_type)},
        )
        media_id = data.get("id")
        if not media_id:
            raise GraphError(message="upload response without id", http_status=200, kind=RETRYABLE)
        return str(media_id)

    def media_info(self, media_id: str) -> MediaInfo:
        data = self._request("GET", media_id, params={"phone_number_id": self.inbox.phone_number_id})
        url = data.get("url")
        if not url:
            raise GraphError(message="media info without url", http_status=200, kind=RETRYABLE)
        size = data.get("file_size")
        try:
            file_size = int(size) if size is not None else None
        except (TypeError, ValueError):
            file_size = None
        return MediaInfo(
            url=str(url),
            mime_type=str(data.get("mime_type") or ""),
            sha256=str(data.get("sha256") or ""),
            file_size=file_size,
            id=str(data.get("id") or media_id),
        )

    def download(self, url: str, *, max_bytes: int) -> Download:
        """Stream a media URL (it needs the same Bearer header) into a temporary file, stopping
        as soon as it grows past ``max_bytes``."""
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
        digest = hashlib.sha256()
        size = 0
        try:
            with (
                self._client() as client,
                client.stream("GET", url, headers=self._headers(), timeout=self.timeout) as response,
            ):
                if not response.is_success:
                    response.read()
                    raise error_from_response(response)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise MediaTooLarge(
                        message=f"file is {declared} bytes, limit {max_bytes}",
                        http_status=response.status_code,
                        kind=PERMANENT,
                    )
                for chunk in response.iter_bytes(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLarge(
                            message=f"file is larger than the limit of {max_bytes} bytes",
                            http_status=response.status_code,
                            kind=PERMANENT,
                        )
                    digest.update(chunk)
                    spool.write(chunk)
                content_type = response.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            spool.close()
            # A GET has no side effect at Meta, so any transport failure is simply retryable.
            error = error_from_transport(exc)
            error.kind = RETRYABLE
            logger.warning("media download failed: %s", error)
            raise error from exc
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return Download(file=spool, size=size, sha256_hex=digest.hexdigest(), content_type=content_type)
