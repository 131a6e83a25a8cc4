"""A local WeCom (企业微信) server that enforces the contract the real one documents.

Sources for what it answers:
- 群机器人配置说明 https://developer.work.weixin.qq.com/document/path/91770 : POST
  /cgi-bin/webhook/send?key=KEY, msgtype text (content <= 2048 bytes, mentioned_mobile_list) or
  markdown (content <= 4096 bytes), "每个机器人发送的消息不能超过20条/分钟"; answers HTTP 200 with
  {"errcode":0,"errmsg":"ok"}.
- 全局错误码 https://developer.work.weixin.qq.com/document/path/90313 : 45009 接口调用超过限制
  ("api freq out of limit"), 93000 invalid webhook url, 40058 不合法的参数 (seen in practice as
  "markdown.content exceed max length 4096. invalid Request Parameter"), 42001 access_token已过期,
  40014 不合法的access_token, 40001 不合法的secret参数, 40013 不合法的CorpID.
- 获取access_token https://developer.work.weixin.qq.com/document/path/91039 : GET
  /cgi-bin/gettoken?corpid=&corpsecret= -> {"errcode":0,"errmsg":"ok","access_token":..,"expires_in":7200}.
- 发送应用消息 https://developer.work.weixin.qq.com/document/path/90236 : POST
  /cgi-bin/message/send?access_token= with touser/toparty/totag, msgtype, agentid, text/markdown
  content <= 2048 bytes; answers errcode, errmsg, invaliduser, invalidparty, invalidtag, msgid.
  "enable_duplicate_check": 1 — 表示在一定时间间隔内，同样内容（请求json）的消息，不会重复收到;
  the interval is duplicate_check_interval (default 1800 s, at most 4 h). The page names no error
  for a dropped duplicate: the call succeeds and nobody receives it a second time.

The clock is injectable so a test can move through minutes without waiting. `down("refused")`
closes the listening socket (connection refused), `down("502")` answers 502 like a broken proxy,
`up()` restores service on the same port. Everything accepted is recorded in `accepted`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROBOT_LIMIT_PER_MINUTE = 20
MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048
APP_MAX_BYTES = 2048
TOKEN_LIFETIME = 7200


@dataclass
class Accepted:
    via: str  # "robot:<key>" or "app:<agentid>"
    msgtype: str
    content: str
    mentioned_mobile_list: list[str] = field(default_factory=list)
    recipients: dict[str, str] = field(default_factory=dict)


class FakeWeCom:
    def __init__(self, keys: tuple[str, ...] = ("robot-key-1",), corp_id: str = "ww-corp",
                 corp_secret: str = "app-secret", agent_id: int = 1000002,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = set(keys)
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.agent_id = agent_id
        self.clock = clock
        self.accepted: list[Accepted] = []
        self.requests = 0
        self.errcodes: list[int] = []
        self.tokens_issued = 0
        self.duplicates_dropped = 0
        """Application messages not delivered because the same request JSON came within its
        duplicate_check_interval (each one a re-send the sender made)."""
        self._delivered: dict[str, float] = {}
        self._tokens: dict[str, float] = {}
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._mode = "up"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeWeCom:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def robot_url(self, key: str) -> str:
        return f"{self.base_url}/cgi-bin/webhook/send?key={key}"

    def down(self, how: str = "refused") -> None:
        """"refused": nothing listens on the port; "502": a proxy in front answers Bad Gateway."""
        if how == "refused":
            self.stop()
        self._mode = how

    def up(self) -> None:
        if self._server is None:
            self.start()
        self._mode = "up"

    def expire_tokens(self, revoke: bool = False) -> None:
        """Expire every token now (next use: 42001), or revoke them (next use: 40014)."""
        with self._lock:
            if revoke:
                self._tokens.clear()
            else:
                now = self.clock()
                self._tokens = dict.fromkeys(self._tokens, now)

    # -- protocol ----------------------------------------------------------------------------
    def _reply(self, handler: BaseHTTPRequestHandler, body: dict[str, Any], status: int = 200) -> None:
        if "errcode" in body:
            self.errcodes.append(int(body["errcode"]))
        data = json.dumps(body, ensure_ascii=False).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.requests += 1
        if self._mode == "502":
            data = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            handler.send_response(502)
            handler.send_header("Content-Type", "text/html")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if method == "POST" and url.path == "/cgi-bin/webhook/send":
            self._robot(handler, query.get("key", ""), raw)
        elif method == "GET" and url.path == "/cgi-bin/gettoken":
            self._gettoken(handler, query)
        elif method == "POST" and url.path == "/cgi-bin/message/send":
            self._app_send(handler, query.get("access_token", ""), raw)
        else:
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

    @staticmethod
    def _parse(raw: bytes) -> dict[str, Any] | None:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def _robot(self, handler: BaseHTTPRequestHandler, key: str, raw: bytes) -> None:
        if key not in self.keys:
            self._reply(handler, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [fake]"})
            return
        with self._lock:
            window = self._recent[key]
            now = self.clock()
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= ROBOT_LIMIT_PER_MINUTE:
                self._reply(handler, {"errcode": 45009, "errmsg": "api freq out of limit"})
                return
            window.append(now)
        body = self._parse(raw)
        msgtype = body.get("msgtype") if body else None
        if body is None or msgtype not in ("text", "markdown") or not isinstance(body.get(msgtype), dict):
            self._reply(handler, {"errcode": 40008, "errmsg": "invalid message type"})
            return
        part = body[msgtype]
        content = part.get("content")
        if not isinstance(content, str) or not content:
            self._reply(handler, {"errcode": 40058, "errmsg": f"{msgtype}.content is empty"})
            return
        limit = MARKDOWN_MAX_BYTES if msgtype == "markdown" else TEXT_MAX_BYTES
        if len(content.encode("utf-8")) > limit:
            self._reply(handler, {"errcode": 40058, "errmsg": f"{msgtype}.content exceed max length "
                                  f"{limit}. invalid Request Parameter"})
            return
        with self._lock:
            self.accepted.append(Accepted(f"robot:{key}", msgtype, content,
                                          list(part.get("mentioned_mobile_list") or [])))
        self._reply(handler, {"errcode": 0, "errmsg": "ok"})

    def _gettoken(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        if query.get("corpid") != self.corp_id:
            self._reply(handler, {"errcode": 40013, "errmsg": "invalid corpid"})
            return
        if query.get("corpsecret") != self.corp_secret:
            self._reply(handler, {"errcode": 40001, "errmsg": "invalid credential"})
            return
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens_issued += 1
            self._tokens[token] = self.clock() + TOKEN_LIFETIME
        self._reply(handler, {"errcode": 0, "errmsg": "ok", "access_token": token,
                              "expires_in": TOKEN_LIFETIME})

    def _app_send(self, handler: BaseHTTPRequestHandler, token: str, raw: bytes) -> None:
        with self._lock:
            expires = self._tokens.get(token)
        if expires is None:
            self._reply(handler, {"errcode": 40014, "errmsg": "invalid access_token"})
            return
        if self.clock() >= expires:
            self._reply(handler, {"errcode": 42001, "errmsg": "access_token expired"})
            return
        body = self._parse(raw)
        if body is None or body.get("agentid") != self.agent_id:
            self._reply(handler, {"errcode": 40056, "errmsg": "invalid agentid"})
            return
        msgtype = body.get("msgtype")
        part = body.get(msgtype) if msgtype in ("text", "markdown") else None
        if not isinstance(part, dict) or not isinstance(part.get("content"), str):
            self._reply(handler, {"errcode": 40008, "errmsg": "invalid message type"})
            return
        if len(part["content"].encode("utf-8")) > APP_MAX_BYTES:
            self._reply(handler, {"errcode": 40058, "errmsg": "content exceed max length 2048"})
            return
        recipients = {k: body[k] for k in ("touser", "toparty", "totag") if body.get(k)}
        if not recipients:
            self._reply(handler, {"errcode": 40035, "errmsg": "no recipient"})
            return
        if body.get("enable_duplicate_check") == 1:
            interval = min(int(body.get("duplicate_check_interval") or 1800), 4 * 3600)
            same = json.dumps(body, sort_keys=True, ensure_ascii=False)
            with self._lock:
                now = self.clock()
                if now - self._delivered.get(same, float("-inf")) < interval:
                    self.duplicates_dropped += 1
                    self._reply(handler, {"errcode": 0, "errmsg": "ok", "invaliduser": "",
                                          "invalidparty": "", "invalidtag": "", "unlicenseduser": "",
                                          "msgid": secrets.token_hex(8)})
                    return
                self._delivered[same] = now
        with self._lock:
            self.accepted.append(Accepted(f"app:{body['agentid']}", msgtype, part["content"],
                                          recipients=recipients))
        self._reply(handler, {"errcode": 0, "errmsg": "ok", "invaliduser": "", "invalidparty": "",
                              "invalidtag": "", "unlicenseduser": "", "msgid": secrets.token_hex(8)})


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
