"""X-Hub-Signature-256 verification over the raw request body."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def sign(body: bytes, secret: str) -> str:
    """The header value Meta would send for this body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _escaped(body: bytes) -> bytes | None:
    """Meta documents signing an escaped-unicode form (\\u00e4 for ä); try it for non-ASCII bodies."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None

    def escape(match: re.Match[str]) -> str:
        char = match.group(0)
        encoded = char.encode("utf-16-be")
        return "".join(f"\\u{encoded[i]:02x}{encoded[i + 1]:02x}" for i in range(0, len(encoded), 2))

    return _NON_ASCII.sub(escape, text).encode("ascii")


def verify(body: bytes, header: str, secrets: Iterable[str]) -> str | None:
    """Return the secret that signed the body, or None. Constant-time per comparison."""
    if not header or not header.startswith("sha256="):
        return None
    received = header[len("sha256=") :].strip()
    if not _HEX64.match(received):
        return None
    received = received.lower()
    candidates = [body]
    if not body.isascii():
        escaped = _escaped(body)
        if escaped is not None:
            candidates.append(escaped)
    for secret in secrets:
        if not secret:
            continue
        key = secret.encode()
        for candidate in candidates:
            expected = hmac.new(key, candidate, hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected, received):
                return secret
    return None
