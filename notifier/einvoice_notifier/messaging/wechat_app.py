"""WeCom application message channel (企业微信应用消息), the second way to reach people.

Contract (developer.work.weixin.qq.com/document/path/91039 获取access_token and /90236 发送应用消息):
GET /cgi-bin/gettoken?corpid=ID&corpsecret=SECRET -> {"errcode":0,"access_token":..,"expires_in":7200};
the token is cached until it expires (less a margin) because WeCom limits gettoken calls.
POST /cgi-bin/message/send?access_token=TOKEN with touser/toparty/totag ("|"-joined), msgtype,
agentid and text/markdown {"content"} (at most 2048 bytes). 42001 (expired) and 40014 (invalid
token) mean: fetch a new token and try once more. The secret and the token are never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from .base import Message, SendResult
from .config import WeChatAppConfig
from .secrecy import install_secret_filter

log = logging.getLogger(__name__)

TOKEN_ERRCODES = {42001, 40014, 41001}
CREDENTIAL_ERRCODES = {40001, 40013, 40091, 40056}
CONTENT_ERRCODES = {40058, 40008, 40035, 44004}
ERR_RATE_LIMIT = 45009


class _CallFailedError(Exception):
    def __init__(self, result: SendResult) -> None:
        super().__init__(result.reason)
        self.result = result


class WeChatAppChannel:
    max_bytes = 2048

    def __init__(self, cfg: WeChatAppConfig, clock: Callable[[], float] = time.monotonic,
                 session: requests.Session | None = None) -> None:
        install_secret_filter()
        self.name = cfg.name
        self._cfg = cfg
        self._secret = cfg.secret_value()
        self._base = cfg.base_url.rstrip("/")
        self._clock = clock
        self._session = session or requests.Session()
        self._token: str | None = None
        self._token_expires = 0.0
        self.token_fetches = 0
        """How many times a token was requested (the cache's effect, visible to tests)."""

    def __repr__(self) -> str:
        return f"WeChatAppChannel(name={self.name!r})"

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._session.request(method, f"{self._base}{path}", timeout=self._cfg.timeout,
                                             **kwargs)
        except requests.Timeout:
            raise _CallFailedError(SendResult.retry("timeout")) from None
        except requests.RequestException as exc:
            log.warning("channel %s: request failed (%s)", self.name, type(exc).__name__)
            raise _CallFailedError(SendResult.retry("network")) from None
        if response.status_code != 200:
            log.warning("channel %s: HTTP %s", self.name, response.status_code)
            reason = "http_5xx" if response.status_code >= 500 else "http_4xx"
            raise _CallFailedError(SendResult.retry(reason))
        try:
            body = response.json()
            int(body["errcode"])
        except (ValueError, KeyError, TypeError):
            raise _CallFailedError(SendResult.retry("bad_response")) from None
        return body

    def _access_token(self) -> str:
        now = self._clock()
        if self._token is not None and now < self._token_expires:
            return self._token
        self.token_fetches += 1
        body = self._call("GET", "/cgi-bin/gettoken",
                          params={"corpid": self._cfg.corp_id, "corpsecret": self._secret})
        errcode = int(body["errcode"])
        if errcode != 0:
            log.error("channel %s: gettoken refused, errcode %s", self.name, errcode)
            if errcode in CREDENTIAL_ERRCODES:
                raise _CallFailedError(SendResult.permanent("invalid_credentials"))
            raise _CallFailedError(SendResult.retry("wecom_error"))
        self._token = str(body["access_token"])
        expires_in = float(body.get("expires_in", 7200))
        self._token_expires = now + max(0.0, expires_in - self._cfg.token_margin)
        return self._token

    def _payload(self, message: Message) -> dict[str, Any]:
        payload: dict[str, Any] = {"msgtype": message.format, "agentid": self._cfg.agent_id,
                                   message.format: {"content": message.content}}
        for key, values in (("touser", self._cfg.to_user), ("toparty", self._cfg.to_party),
                            ("totag", self._cfg.to_tag)):
            if values:
                payload[key] = "|".join(values)
        if self._cfg.duplicate_check_interval:
            payload["enable_duplicate_check"] = 1
            payload["duplicate_check_interval"] = self._cfg.duplicate_check_interval
        return payload

    def send(self, message: Message) -> SendResult:
        try:
            for attempt in (1, 2):
                token = self._access_token()
                body = self._call("POST", "/cgi-bin/message/send", params={"access_token": token},
                                  json=self._payload(message))
                errcode = int(body["errcode"])
                if errcode == 0:
                    if body.get("invaliduser") or body.get("invalidparty") or body.get("invalidtag"):
                        log.warning("channel %s: some recipients are unknown to WeCom", self.name)
                    return SendResult.sent()
                if errcode in TOKEN_ERRCODES and attempt == 1:
                    self._token = None
                    continue
                if errcode == ERR_RATE_LIMIT:
                    return SendResult.retry("rate_limited", after=60.0)
                if errcode in CONTENT_ERRCODES:
                    log.error("channel %s: WeCom refused the message, errcode %s", self.name, errcode)
                    return SendResult.permanent("content_rejected")
                if errcode in CREDENTIAL_ERRCODES:
                    return SendResult.permanent("invalid_credentials")
                log.warning("channel %s: WeCom errcode %s", self.name, errcode)
                return SendResult.retry("wecom_error")
        except _CallFailedError as retry:
            return retry.result
        return SendResult.retry("token_rejected")
