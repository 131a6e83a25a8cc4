"""WeCom group robot channel (企业微信群机器人).

Contract (developer.work.weixin.qq.com/document/path/91770, 群机器人配置说明): POST JSON to
/cgi-bin/webhook/send?key=KEY; markdown content at most 4096 UTF-8 bytes, text at most 2048; at
most 20 messages a minute per robot; the answer is HTTP 200 with `errcode` (0 ok) in the body, so
the status code alone says nothing. 45009 = over the rate limit; 93000 = invalid webhook URL/key;
40058 = content too long / invalid parameter.

The channel paces itself at `max_per_minute` over a sliding minute: when the window is full it
does not send and answers "retry after N s" without counting an attempt, so nothing is dropped and
nothing dead-letters because of pacing. The limit is WeCom's per robot, so channels configured with
the same key (first and second line on one group) share one window.

The window lives in memory, so after a restart the outbox seeds it from the store (`remember_sent`
with the ages of the messages the store says went to this robot in the last minute): a restart
does not grant a fresh twenty.

The key is part of the URL: it is never logged (request exceptions embed the URL, so only their
class name is, and secrecy.py masks it in urllib3's debug lines).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import requests

from .base import Message, SendResult
from .config import WeChatRobotConfig
from .secrecy import install_secret_filter

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
RATE_LIMIT_BACKOFF = 60.0
ERR_OK = 0
ERR_RATE_LIMIT = 45009
PERMANENT_ERRCODES = {
    93000: "invalid_key",  # invalid webhook url
    93004: "robot_disabled",
    93008: "robot_not_in_group",
    40058: "content_rejected",  # content exceeds max length / invalid parameter
    40008: "content_rejected",  # invalid message type
    40035: "content_rejected",  # invalid parameter
}


class _Window:
    """Sends to one robot in the last minute, and a hold after WeCom said 45009."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent_at: deque[float] = deque()
        self.blocked_until = 0.0


_WINDOWS: dict[tuple[str, object], _Window] = {}
_WINDOWS_LOCK = threading.Lock()


def _window_for(url: str, clock: object) -> _Window:
    key = (hashlib.sha256(url.encode()).hexdigest(), clock)
    with _WINDOWS_LOCK:
        return _WINDOWS.setdefault(key, _Window())


def robot_payload(message: Message) -> dict[str, Any]:
    if message.format == "markdown":
        return {"msgtype": "markdown", "markdown": {"content": message.content}}
    text: dict[str, Any] = {"content": message.content}
    if message.mentioned_mobiles:
        text["mentioned_mobile_list"] = list(message.mentioned_mobiles)
    return {"msgtype": "text", "text": text}


class WeChatRobotChannel:
    def __init__(self, cfg: WeChatRobotConfig, clock: Callable[[], float] = time.monotonic,
                 session: requests.Session | None = None) -> None:
        install_secret_filter()
        self.name = cfg.name
        self.max_bytes = cfg.max_bytes
        self._url = cfg.send_url()
        self._timeout = cfg.timeout
        self._max_per_minute = cfg.max_per_minute
        self._clock = clock
        self._session = session or requests.Session()
        self._window = _window_for(self._url, clock)
        self.pacing_key = "wechat_robot:" + hashlib.sha256(self._url.encode()).hexdigest()
        """Channels with the same key share WeCom's twenty a minute (the outbox seeds them together)."""

    def __repr__(self) -> str:
        return f"WeChatRobotChannel(name={self.name!r})"

    def remember_sent(self, ages: Iterable[float]) -> None:
        """Sends the store recorded for this robot, `ages` seconds ago: where they are more than the
        window holds (a restart emptied it), the window takes them, so pacing goes on from them."""
        now = self._clock()
        recorded = sorted(now - age for age in ages if 0 <= age < WINDOW_SECONDS)
        window = self._window
        with window.lock:
            while window.sent_at and now - window.sent_at[0] >= WINDOW_SECONDS:
                window.sent_at.popleft()
            if len(recorded) > len(window.sent_at):
                window.sent_at = deque(recorded)

    def _reserve(self, now: float) -> float:
        """Take a slot in the robot's window and return 0, or return the seconds to wait."""
        window = self._window
        with window.lock:
            while window.sent_at and now - window.sent_at[0] >= WINDOW_SECONDS:
                window.sent_at.popleft()
            wait = window.blocked_until - now
            if len(window.sent_at) >= self._max_per_minute:
                wait = max(wait, WINDOW_SECONDS - (now - window.sent_at[0]))
            if wait <= 0:
                window.sent_at.append(now)
            return max(0.0, wait)

    def send(self, message: Message) -> SendResult:
        now = self._clock()
        wait = self._reserve(now)
        if wait > 0:
            return SendResult.retry("paced", after=wait, count_attempt=False)
        try:
            response = self._session.post(self._url, json=robot_payload(message), timeout=self._timeout)
        except requests.Timeout:
            log.warning("channel %s: request timed out", self.name)
            return SendResult.retry("timeout")
        except requests.RequestException as exc:
            log.warning("channel %s: request failed (%s)", self.name, type(exc).__name__)
            return SendResult.retry("network")
        if response.status_code >= 500 or response.status_code == 429:
            log.warning("channel %s: HTTP %s", self.name, response.status_code)
            return SendResult.retry("http_5xx" if response.status_code >= 500 else "rate_limited")
        if response.status_code != 200:
            log.error("channel %s: HTTP %s, check the webhook URL", self.name, response.status_code)
            return SendResult.permanent("http_4xx")
        try:
            body = response.json()
            errcode = int(body.get("errcode", -1))
        except (ValueError, AttributeError, TypeError):
            log.warning("channel %s: answer is not WeCom JSON", self.name)
            return SendResult.retry("bad_response")
        if errcode == ERR_OK:
            return SendResult.sent()
        errmsg = str(body.get("errmsg", ""))[:120]
        if errcode == ERR_RATE_LIMIT:
            # Someone else may share the robot: hold this channel back a whole window.
            with self._window.lock:
                self._window.blocked_until = now + RATE_LIMIT_BACKOFF
            log.warning("channel %s: WeCom rate limit (45009), backing off %ss", self.name,
                        RATE_LIMIT_BACKOFF)
            return SendResult.retry("rate_limited", after=RATE_LIMIT_BACKOFF)
        if errcode in PERMANENT_ERRCODES:
            log.error("channel %s: WeCom refused the message, errcode %s: %s", self.name, errcode,
                      errmsg.split(", hint")[0])
            return SendResult.permanent(PERMANENT_ERRCODES[errcode])
        log.warning("channel %s: WeCom errcode %s: %s", self.name, errcode, errmsg.split(", hint")[0])
        return SendResult.retry("wecom_error")
