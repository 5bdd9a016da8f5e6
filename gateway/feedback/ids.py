"""Request ids: every answer carries one, and feedback refers to the answer by it.

An id is signed (HMAC-SHA256 with the gateway's key), so the gateway knows without storing
anything that it gave this answer, with which model and version, for which text (an 8-byte
digest of it) and when. Feedback on an id the gateway did not issue, or with another text
than the answer's, is refused. Gateways that share a key (``--request-id-key-file``; the chart
mounts one Secret in every replica, ``make serve`` keeps one in its state folder) accept each
other's ids; without a key file the key is random per process, and ids die with it.

Format: ``ea1.<payload>.<tag>``, both base64url without padding; the payload holds the issue
time (seconds), the model, the version, the text digest and 6 random bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import InvalidArgument, quote

PREFIX = "ea1"
_TAG_BYTES = 12
_KEY_BYTES = 32
MAX_ID_CHARS = 400


@dataclass(frozen=True)
class IssuedAnswer:
    """What a valid request id says about the answer it names."""

    request_id: str
    model: str
    model_version: str
    text_digest: bytes
    issued_at: int  # unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(path: str) -> bytes:
    """The key in ``path`` (created with a random key when missing), or a random one for ''."""
    if not path:
        return os.urandom(_KEY_BYTES)
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(os.urandom(_KEY_BYTES))
    key = file.read_bytes()
    if len(key) < 16:
        raise ValueError(f"request id key file {path} holds {len(key)} bytes; at least 16 are needed")
    return key


class RequestIds:
    """Issues and checks request ids with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def text_digest(self, text: str) -> bytes:
        """8 bytes that tie an id to its text. Keyed: whoever sees an id cannot test guesses of
        the text against it."""
        return hmac.new(
            self._key, b"text\0" + text.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).digest()[:8]

    def issue(self, model: str, model_version: str, text: str) -> str:
        name, version = model.encode(), model_version.encode()
        payload = (
            struct.pack(">IB", int(time.time()), len(name)) + name
            + struct.pack(">B", len(version)) + version + self.text_digest(text) + os.urandom(6)
        )  # fmt: skip
        return f"{PREFIX}.{_b64(payload)}.{_b64(self._tag(payload))}"

    def check(self, request_id: str) -> IssuedAnswer:
        """The answer ``request_id`` names; INVALID_ARGUMENT when this gateway did not issue it."""
        field = "request_id"
        if not request_id:
            raise InvalidArgument(field, "must be the request_id of an answer")
        if len(request_id) > MAX_ID_CHARS:
            raise InvalidArgument(field, f"is {len(request_id)} characters long; the limit is {MAX_ID_CHARS}")
        parts = request_id.split(".")
        try:
            if len(parts) != 3 or parts[0] != PREFIX:
                raise ValueError
            payload, tag = _unb64(parts[1]), _unb64(parts[2])
            if not hmac.compare_digest(tag, self._tag(payload)):
                raise ValueError
            issued, size = struct.unpack_from(">IB", payload)
            at = 5
            model = payload[at : at + size].decode()
            at += size
            (size,) = struct.unpack_from(">B", payload, at)
            version = payload[at + 1 : at + 1 + size].decode()
            digest = payload[at + 1 + size : at + 9 + size]
        except (ValueError, struct.error, UnicodeDecodeError):
            raise InvalidArgument(
                field, f"{quote(request_id)} is not a request id this service issued (or its key changed)"
            ) from None
        return IssuedAnswer(request_id, model, version, digest, issued)
