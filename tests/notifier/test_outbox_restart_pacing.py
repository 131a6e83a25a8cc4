"""WeCom's twenty messages a minute per robot hold across a restart (issue 10: 35 went out in one
minute after a restart): the sender paces from what the store says was sent, on SQLite and MariaDB,
against the fake WeCom server, whose own per-minute limit answers 45009 as the documented robot does."""

from __future__ import annotations

from datetime import UTC, datetime

from einvoice_notifier import db
from einvoice_notifier.messaging.config import build_channel
from einvoice_notifier.outbox import Outbox, Sender
from einvoice_notifier.payload import Notification
from einvoice_notifier.service import TicketService
from einvoice_notifier.settings import parse_settings

from tests.notifier.messaging.fake_wecom import FakeWeCom
from tests.notifier.support import FakeClock, alert, notification

START = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


class SharedSeconds:
    """The fake's and the channel's seconds, read from the outbox's datetime clock (one time line);
    a new instance after a restart, as a new process has its own monotonic clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def __call__(self) -> float:
        return (self.clock.now - START).total_seconds() + 1000


def test_a_restart_does_not_grant_a_fresh_twenty(store_url: str) -> None:
    clock = FakeClock(START)
    wecom = FakeWeCom(keys=("robot-key-r",), clock=SharedSeconds(clock)).start()
    try:
        settings = parse_settings({
            "channels": [{"type": "wechat_robot", "name": "first", "key": "robot-key-r",
                          "base_url": wecom.base_url},
                         {"type": "wechat_robot", "name": "second", "key": "robot-key-r",
                          "base_url": wecom.base_url}],
            "routing": {"first_line": ["first"], "second_line": ["second"]},
        })
        engine = db.make_engine(store_url)
        db.migrate(engine)

        def process() -> tuple[TicketService, Outbox]:
            seconds = SharedSeconds(clock)  # a fresh process: fresh channel objects, empty windows
            channels = {cfg.name: build_channel(cfg, clock=seconds) for cfg in settings.channels}
            return TicketService(engine, settings, clock, channels), Outbox(engine, channels, settings.outbox,
                                                                            clock)

        service, outbox = process()
        service.ingest(Notification.model_validate(notification(
            *[alert(f"{i:04x}", START, target=f"http://intake-{i}/health") for i in range(20)])))
        for _ in range(3):
            outbox.senders["first"].run_once()
            clock.advance(seconds=5)
        assert len(wecom.accepted) == 20

        # Restart within the same minute, with 15 new alerts for the first line and 15 escalations'
        # worth for the second: the robot (shared by both channels) has no allowance left.
        service, outbox = process()
        service.ingest(Notification.model_validate(notification(
            *[alert(f"{i:04x}", START, target=f"http://intake-{i}/health") for i in range(20, 35)])))
        service.ingest(Notification.model_validate(notification(
            *[alert(f"{i:04x}", START, target=f"http://batch-{i}/health") for i in range(35, 50)])),
            "second_line")
        for _ in range(8):  # the rest of the first minute
            for sender in outbox.senders.values():
                sender.run_once()
            clock.advance(seconds=5)
        assert len(wecom.accepted) == 20, "nothing more within the minute the store says was used"
        assert 45009 not in wecom.errcodes
        for _ in range(60):  # then twenty a minute again, none refused, none lost
            for sender in outbox.senders.values():
                sender.run_once()
            clock.advance(seconds=5)
        assert 45009 not in wecom.errcodes
        contents = [a.content for a in wecom.accepted]
        assert len(contents) == len(set(contents)) >= 50
        engine.dispose()
    finally:
        wecom.stop()


def test_a_sender_paces_from_the_store_only_for_channels_that_pace(tmp_path) -> None:
    from tests.notifier.support import RecordingChannel

    clock = FakeClock(START)
    settings = parse_settings({"channels": [{"type": "console", "name": "robot", "stdout": False}],
                               "routing": {"first_line": ["robot"], "second_line": ["robot"]}})
    engine = db.make_engine(f"sqlite:///{tmp_path / 'n.db'}")
    db.migrate(engine)
    channel = RecordingChannel("robot")
    sender = Sender(engine, channel, settings.outbox, clock)
    assert sender.pacing_peers == ("robot",)
    assert sender.run_once() is None  # no remember_sent: nothing to seed, nothing pending
    engine.dispose()
