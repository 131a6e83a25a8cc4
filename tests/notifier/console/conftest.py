"""A real notifier (the core's app, uvicorn on a free port) whose first-line channel is a WeCom
group robot served by the fake WeCom server, so the console is reached the way people reach it:
through the link in the message the robot delivered."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bcrypt
import pytest
import requests
import uvicorn

from tests.notifier.messaging.fake_wecom import FakeWeCom
from tests.notifier.sources import ManualClock
from tests.support.procs import free_port, port_open, wait_until

WEBHOOK_TOKEN = "console-test-webhook-token"
PASSWORDS = {"oper": "值班-operator-pw", "watcher": "viewer-pw-2026"}
DUTY_MOBILE = "13800138000"
LINK_RE = re.compile(r"\]\((http://[^)]+/console/link/\d+\?[^)]+)\)")


@dataclass
class Stack:
    url: str
    wecom: FakeWeCom
    notifier: object
    tmp: Path
    throttle_clock: ManualClock

    def fire(self, summary: str = "处理服务健康检查失败", description: str = "", route: str = "",
             **labels: str) -> str:
        """Post one firing alert through the webhook; return its fingerprint."""
        fingerprint = uuid.uuid4().hex[:16]
        alert_labels = {"alertname": "EinvoiceCheckDown", "item": "10", "zone": "intranet",
                        "target": f"10.45.1.{len(self.wecom.accepted) % 250}:7001", "severity": "critical",
                        **labels}
        body = {
            "version": "4", "groupKey": '{}:{alertname="EinvoiceCheckDown"}', "truncatedAlerts": 0,
            "status": "firing", "receiver": "first_line", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager.local",
            "alerts": [{"status": "firing", "labels": alert_labels,
                        "annotations": {"summary": summary, "description": description},
                        "startsAt": datetime.now(UTC).isoformat(), "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "", "fingerprint": fingerprint}],
        }
        query = f"?route={route}" if route else ""
        response = requests.post(f"{self.url}/api/v1/webhook/alertmanager{query}", json=body, timeout=10,
                                 headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
        assert response.status_code == 200, response.text
        return fingerprint

    def ticket_of(self, fingerprint: str):
        for view in self.notifier.service.list_tickets(limit=5000):
            if view.fingerprint == fingerprint:
                return view
        raise AssertionError(f"no ticket for {fingerprint}")

    def delivered_link(self, ticket_id: int) -> str:
        """The signed link in the markdown card the robot delivered for this ticket."""
        found: list[str] = []

        def arrived() -> bool:
            for accepted in self.wecom.accepted:
                match = LINK_RE.search(accepted.content)
                if accepted.msgtype == "markdown" and match and f"/link/{ticket_id}?" in match.group(1):
                    found.append(match.group(1))
                    return True
            return False

        wait_until(arrived, timeout=20, what=f"WeCom card for ticket {ticket_id}")
        return found[0].replace("&amp;", "&")


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from einvoice_notifier.app import Notifier, create_app
    from einvoice_notifier.settings import parse_settings

    tmp = tmp_path_factory.mktemp("console")
    wecom = FakeWeCom(keys=("console-robot",)).start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = parse_settings({
        "listen": f"127.0.0.1:{port}", "public_url": url, "state_dir": str(tmp),
        "database_url": f"sqlite:///{tmp / 'notifier.db'}", "webhook_token": WEBHOOK_TOKEN,
        "console_secret_key": "console-test-secret-key-0123456789",
        "users": [{"name": "oper", "password_hash": _hash(PASSWORDS["oper"]), "role": "operator",
                   "display_name": "值班员张工"},
                  {"name": "watcher", "password_hash": _hash(PASSWORDS["watcher"]), "role": "viewer"}],
        "channels": [{"type": "wechat_robot", "name": "robot", "key": "console-robot",
                      "base_url": wecom.base_url},
                     {"type": "wechat_robot", "name": "backup", "key": "console-revoked-key",
                      "base_url": wecom.base_url}],
        "routing": {"first_line": ["robot"], "second_line": ["backup"], "duty_mobiles": [DUTY_MOBILE]},
        "outbox": {"poll_interval": "200ms", "backoff_initial": "200ms"},
    })
    throttle_clock = ManualClock()
    notifier = Notifier(settings, monotonic=throttle_clock)
    app = create_app(notifier, start_background=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: port_open(port) and server.started, timeout=20, what="notifier listening")
    try:
        yield Stack(url, wecom, notifier, tmp, throttle_clock)
    finally:
        server.should_exit = True
        thread.join(15)
        wecom.stop()
