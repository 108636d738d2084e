"""Signed, URL-safe tokens: deep links, click redirects and callback references.

A token is `payload.signature`, both base64url without padding; the signature is a truncated
HMAC-SHA256 keyed by NUDGE_SECRET_KEY and a purpose string, so a token made for one purpose
(say, a click redirect) is refused for another (say, linking a chat).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct


class BadToken(ValueError):
    """The token is malformed, forged, or made for another purpose."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise BadToken("not base64url") from exc


class Signer:
    """Sign and verify compact tokens for one purpose."""

    def __init__(self, secret_key: str, purpose: str, *, mac_bytes: int = 12) -> None:
        self._key = hashlib.sha256(f"{purpose}\x00{secret_key}".encode()).digest()
        self._mac_bytes = mac_bytes

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[: self._mac_bytes]

    def sign(self, payload: bytes) -> str:
        """Return payload and its signature as one URL-safe token."""
        return _b64(payload + self._mac(payload))

    def unsign(self, token: str) -> bytes:
        """Return the payload of a valid token or raise BadToken."""
        if not token or len(token) > 512:
            raise BadToken("empty or oversized token")
        raw = _unb64(token)
        if len(raw) <= self._mac_bytes:
            raise BadToken("too short")
        payload, mac = raw[: -self._mac_bytes], raw[-self._mac_bytes :]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise BadToken("bad signature")
        return payload

    def sign_ints(self, *values: int) -> str:
        """Sign a tuple of unsigned 64-bit integers (ids, unix times)."""
        return self.sign(struct.pack(f">{len(values)}Q", *values))

    def unsign_ints(self, token: str, count: int) -> tuple[int, ...]:
        """Verify a token made by sign_ints with `count` values and return them."""
        payload = self.unsign(token)
        if len(payload) != 8 * count:
            raise BadToken("wrong shape")
        return struct.unpack(f">{count}Q", payload)
