"""The outbox with the real WeCom robot channel against the fake WeCom server (tests/notifier/
messaging/fake_wecom.py, which follows the documented robot contract): WeChat down for ten minutes,
then back; 30 messages paced under 20 a minute; every message delivered once, none dead."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from einvoice_notifier import db
from einvoice_notifier.messaging.config import build_channel
from einvoice_notifier.outbox import Sender
from einvoice_notifier.payload import Notification
from einvoice_notifier.service import TicketService
from einvoice_notifier.settings import parse_settings

from tests.notifier.messaging.fake_wecom import FakeWeCom
from tests.notifier.support import FakeClock, alert, notification

START = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


@pytest.fixture
def wecom_and_clock() -> Iterator[tuple[FakeWeCom, FakeClock]]:
    """One clock for the outbox (datetime), the channel's pacing and the fake's rate limit (seconds)."""
    clock = FakeClock(START)
    fake = FakeWeCom(keys=("robot-key-1",), clock=lambda: (clock.now - START).total_seconds() + 1000)
    fake.start()
    yield fake, clock
    fake.stop()


def test_wechat_down_ten_minutes_then_everything_arrives_once(
        wecom_and_clock: tuple[FakeWeCom, FakeClock], tmp_path: Path) -> None:
    wecom, clock = wecom_and_clock
    settings = parse_settings({
        "channels": [{"type": "wechat_robot", "name": "robot", "key": "robot-key-1",
                      "base_url": wecom.base_url, "timeout": 5}],
        "routing": {"first_line": ["robot"], "second_line": ["robot"]},
    })
    channel = build_channel(settings.channels[0], clock=wecom.clock)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    db.migrate(engine)
    service = TicketService(engine, settings, clock, {"robot": channel})
    sender = Sender(engine, channel, settings.outbox, clock)
    wecom.down("502")
    service.ingest(Notification.model_validate(notification(
        *[alert(f"{i:04x}", START, target=f"http://intake-{i}/health") for i in range(30)])))
    for _ in range(30):  # ten minutes of WeChat answering 502
        sender.run_once()
        clock.advance(seconds=20)
    assert wecom.accepted == [] and wecom.requests >= 30 * 5, "retried with backoff while down"
    with engine.connect() as conn:
        states = Counter(conn.execute(db.outbox.select().with_only_columns(db.outbox.c.state)).scalars())
    assert states == {"pending": 30}, "nothing given up while WeChat was down"
    wecom.up()
    for _ in range(60):  # up to twenty more minutes
        sender.run_once()
        clock.advance(seconds=20)
    with engine.connect() as conn:
        states = Counter(conn.execute(db.outbox.select().with_only_columns(db.outbox.c.state)).scalars())
    assert states == {"sent": 30}
    contents = Counter(message.content for message in wecom.accepted)
    assert len(wecom.accepted) == 30 and max(contents.values()) == 1, "each message once"
    assert 45009 not in wecom.errcodes, "paced locally under 20 a minute, never refused for the rate"
    engine.dispose()
