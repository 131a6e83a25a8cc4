"""Who is calling the JSON API: HTTP basic with the configured users, or a bearer API token.

bcrypt is slow on purpose (≈0.2 s a check); after one successful check the password's SHA-256 is
kept in memory so a script polling the API is not throttled by it. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from dataclasses import dataclass

import bcrypt

from .settings import Settings

ROLES = {"viewer": 0, "operator": 1}


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES[self.role] >= ROLES[role]


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self._users = {user.name: user for user in settings.users}
        self._tokens = [(token.name, token.value().encode(), token.role) for token in settings.api_tokens]
        self._verified: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def authenticate(self, header: str | None) -> Principal | None:
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return self._bearer(value.strip())
        if scheme.lower() == "basic":
            return self._basic(value.strip())
        return None

    def _bearer(self, token: str) -> Principal | None:
        found = None
        for name, expected, role in self._tokens:
            if hmac.compare_digest(token.encode(), expected):
                found = Principal(f"token:{name}", role)
        return found

    def _basic(self, value: str) -> Principal | None:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, password = decoded.partition(":")
        user = self._users.get(name)
        if not sep or user is None:
            return None
        digest = hashlib.sha256(password.encode()).digest()
        with self._lock:
            known = self._verified.get(name)
        if known is not None and hmac.compare_digest(known, digest):
            return Principal(name, user.role)
        if not bcrypt.checkpw(password.encode(), user.password_hash.encode()):
            return None
        with self._lock:
            self._verified[name] = digest
        return Principal(name, user.role)
