"""HTTP sessions that connect from a chosen loopback address (127.0.0.0/8 is all loopback on Linux),
so tests of per-source login throttling can play several clients against one real server."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter


class _FromAddress(HTTPAdapter):
    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(source: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", _FromAddress(source))
    return session


class ManualClock:
    """Monotonic seconds that move only when the test says so (the login throttle's clock)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
