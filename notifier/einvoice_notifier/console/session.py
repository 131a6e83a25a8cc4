"""Console sessions and CSRF tokens, signed with keys derived from the console secret.

The session is a signed cookie (no server-side store, so a restart with the same configured secret
keeps people logged in): user name, a random nonce, issue and expiry times, HMAC-SHA256. The role is
not trusted from the cookie: it is looked up in the settings on every request, so removing a user or
demoting them takes effect at once. The CSRF token of a session is an HMAC of its nonce; before login
a short-lived cookie nonce plays the same part for the login form; a signed link's page gets a token
bound to that link's signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

SESSION_COOKIE = "einvoice_console"
LOGIN_COOKIE = "einvoice_console_login"
SESSION_TTL = 12 * 3600
"""One on-site shift (07:30–12:00 and 14:30–22:00 fit in it); then log in again."""


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    nonce: str
    issued: int
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the console secret key must be at least 16 bytes")
        self._session_key = hmac.new(secret, b"einvoice-console-session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"einvoice-console-csrf", hashlib.sha256).digest()

    def _mac(self, key: bytes, data: bytes) -> str:
        return hmac.new(key, data, hashlib.sha256).hexdigest()

    def issue(self, user: str, now: float) -> tuple[str, Session]:
        session = Session(user, secrets.token_hex(16), int(now), int(now) + SESSION_TTL)
        payload = _b64(json.dumps({"u": session.user, "n": session.nonce, "i": session.issued,
                                   "e": session.expires}, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(self._session_key, payload.encode())}", session

    def read(self, cookie: str | None, now: float) -> Session | None:
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(self._session_key, payload.encode()).encode()):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = Session(str(data["u"]), str(data["n"]), int(data["i"]), int(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if now < session.expires else None

    def csrf_for(self, purpose: str, nonce: str) -> str:
        return self._mac(self._csrf_key, f"{purpose}|{nonce}".encode())

    def csrf_ok(self, purpose: str, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.csrf_for(purpose, nonce).encode(), token.encode())
