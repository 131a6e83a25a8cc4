"""Who is calling: HTTP basic with the configured users or a bearer API token (JSON API), and the
password check and login throttle the console's login form shares with it.

bcrypt is slow on purpose (≈0.2 s a check); after one successful check the password's SHA-256 is
kept in memory so a script polling the API is not throttled by it. Comparisons are constant-time,
and an unknown user name costs one bcrypt check of a decoy hash of the same cost, so the answer's
timing does not tell which names exist.

Throttling (one `LoginThrottle` for the API and the console, so neither is a way around the other):

- per source address: the first `FREE_FAILURES` failures within `WINDOW` cost nothing; after that the
  source must wait `2^(n - FREE_FAILURES)` seconds (at most `MAX_BACKOFF`) after its n-th failure
  before its next attempt is even checked. A correct login clears the source's record.
- per user: `USER_FAILURES` failures within `WINDOW` from all sources together put the user under
  attack. While that lasts, only sources with no failure of their own in the window are checked for
  that user; the rest are refused unchecked. So a guesser spreading over many addresses gets one
  try per fresh address, and cannot lock the real operator out: the operator's own workstation has
  no failures and still logs in. A correct login ends the state.
- per-user state is kept for configured users only, per-source state for at most `MAX_SOURCES`
  addresses (the oldest forgotten first), so made-up names and addresses cannot grow memory.

The source is the TCP peer address: X-Forwarded-For is not trusted (anyone can write it). Behind a
reverse proxy every client shares the proxy's address and the per-source backoff applies to them all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

import bcrypt

from .settings import Settings, User

ROLES = {"viewer": 0, "operator": 1}
WINDOW = 900.0
FREE_FAILURES = 5
MAX_BACKOFF = 900.0
USER_FAILURES = 10
MAX_SOURCES = 10000
BCRYPT_MAX_BYTES = 72


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES[self.role] >= ROLES[role]


class Throttled(Exception):  # noqa: N818 - a refusal, not an error of the caller's code
    """The attempt was refused without checking the password; retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after:.0f} s")
        self.retry_after = max(1.0, retry_after)


@cache
def _decoy_hash(rounds: int) -> bytes:
    """Checked for unknown users so that a wrong name costs as long as a wrong password."""
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=rounds))


def _cost_of(hashes: Iterable[str]) -> int:
    costs = [int(h[4:6]) for h in hashes if len(h) > 6 and h[4:6].isdigit()]
    return min(max(costs), 31) if costs else 12


class LoginThrottle:
    """Failures by source address and by user; `clock` is monotonic seconds (tests move it)."""

    def __init__(self, users: Iterable[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._users = frozenset(users)
        self._sources: OrderedDict[str, deque[float]] = OrderedDict()
        self._by_user: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, times: deque[float], now: float) -> deque[float]:
        while times and now - times[0] > WINDOW:
            times.popleft()
        return times

    def check(self, user: str, source: str) -> None:
        """Raise Throttled when this attempt must not be checked at all."""
        now = self._clock()
        with self._lock:
            mine = self._recent(self._sources.get(source, deque()), now)
            if len(mine) >= FREE_FAILURES:
                wait = min(MAX_BACKOFF, 2.0 ** (len(mine) - FREE_FAILURES + 1)) - (now - mine[-1])
                if wait > 0:
                    raise Throttled(wait)
            attacked = self._recent(self._by_user.get(user, deque()), now)
            if len(attacked) >= USER_FAILURES and mine:
                raise Throttled(WINDOW - (now - mine[-1]))

    def failed(self, user: str, source: str) -> None:
        now = self._clock()
        with self._lock:
            times = self._sources.pop(source, deque())
            times.append(now)
            self._sources[source] = times  # most recent last: the oldest are forgotten first
            while len(self._sources) > MAX_SOURCES:
                self._sources.popitem(last=False)
            if user in self._users:
                self._by_user.setdefault(user, deque()).append(now)

    def succeeded(self, user: str, source: str) -> None:
        with self._lock:
            self._sources.pop(source, None)
            self._by_user.pop(user, None)


class Authenticator:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._users = {user.name: user for user in settings.users}
        self._tokens = [(token.name, token.value().encode(), token.role) for token in settings.api_tokens]
        self._verified: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._decoy_rounds = _cost_of(user.password_hash for user in settings.users)
        self.throttle = LoginThrottle(self._users, clock)

    def user(self, name: str) -> User | None:
        return self._users.get(name)

    def authenticate(self, header: str | None, source: str = "") -> Principal | None:
        """The caller of the JSON API; raises Throttled when a password may not be tried now."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return self._bearer(value.strip())
        if scheme.lower() == "basic":
            return self._basic(value.strip(), source)
        return None

    def _bearer(self, token: str) -> Principal | None:
        found = None
        for name, expected, role in self._tokens:
            if expected and hmac.compare_digest(token.encode(), expected):
                found = Principal(f"token:{name}", role)
        return found

    def _basic(self, value: str, source: str) -> Principal | None:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, password = decoded.partition(":")
        if not sep:
            return None
        self.throttle.check(name, source)  # before the cache too, or it would answer guesses at once
        user = self._users.get(name)
        if user is not None:
            digest = hashlib.sha256(password.encode()).digest()
            with self._lock:
                known = self._verified.get(name)
            if known is not None and hmac.compare_digest(known, digest):
                return Principal(name, user.role)  # checked with bcrypt before: no second bcrypt
        checked = self.login(name, password, source)
        if checked is None:
            return None
        with self._lock:
            self._verified[name] = hashlib.sha256(password.encode()).digest()
        return Principal(checked.name, checked.role)

    def login(self, name: str, password: str, source: str) -> User | None:
        """Check a password under the throttle: the user, None for a wrong name or password (after
        the same bcrypt work either way), or Throttled before any check."""
        self.throttle.check(name, source)
        user = self._users.get(name)
        secret = password.encode()
        hashed = user.password_hash.encode() if user is not None else _decoy_hash(self._decoy_rounds)
        ok = bcrypt.checkpw(secret[:BCRYPT_MAX_BYTES], hashed) and len(secret) <= BCRYPT_MAX_BYTES
        if user is None or not ok:
            self.throttle.failed(name, source)
            with self._lock:
                self._verified.pop(name, None)
            return None
        self.throttle.succeeded(name, source)
        return user
