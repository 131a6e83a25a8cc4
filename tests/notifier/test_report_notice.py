"""《…》已生成: a report newly in the archive (`report_archive`, the reports' `--out`) is announced once
to the first line, with the link to the console's 报告 page, by whichever replica holds the
scheduler lease. The archive is written by the real `einvoice-report` command (an incident report,
which needs only the ticket store) and by hand for a kind and period of the schedule; file times are
set against the test's clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from einvoice_notifier import db
from einvoice_notifier.service import REPORT_NOTICE_SETTLE, REPORT_NOTICE_WINDOW
from einvoice_reports import cli
from sqlalchemy import select

from tests.notifier.support import FakeClock, alert, shanghai
from tests.notifier.test_tickets import World

T0 = shanghai(2026, 12, 1, 0, 40)


def _written(paths: list[Path], at: datetime) -> None:
    for path in paths:
        os.utime(path, (at.timestamp(), at.timestamp()))


def _monthly(archive: Path, at: datetime, period: str = "2026-11") -> list[Path]:
    folder = archive / "monthly"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{period}.html", folder / f"{period}.pdf"]
    paths[0].write_text("<html>月度系统运维报告</html>", encoding="utf-8")
    paths[1].write_bytes(b"%PDF-1.7 scripted")
    _written(paths, at)
    return paths


def _report_rows(world: World) -> list[dict]:
    with world.notifier.engine.connect() as conn:
        rows = conn.execute(select(db.outbox).where(db.outbox.c.event == "report_ready")
                            .order_by(db.outbox.c.id)).mappings()
        return [dict(row) for row in rows]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def world(store_url: str, archive: Path) -> Iterator[World]:
    found = World(store_url, FakeClock(T0), report_archive=str(archive))
    yield found
    found.notifier.engine.dispose()


def test_a_new_report_is_announced_once_to_the_first_line(world: World, archive: Path) -> None:
    _monthly(archive, T0 - timedelta(minutes=5))
    assert world.notifier.run_scheduled()
    world.deliver()
    first_lines = [m.content.splitlines()[0] for m in world.robot.sent]
    assert first_lines == ["## 【报告已生成】《月度系统运维报告》2026-11"]
    message = world.robot.sent[0]
    assert "格式：网页、PDF" in message.content
    assert message.content.rstrip().endswith("[查看报告](http://127.0.0.1:9878/console/reports)")
    assert world.oncall.sent == [], "the second line is not told"
    # Later rounds, and another replica on the same store, send nothing more.
    world.clock.advance(minutes=1)
    assert world.notifier.run_scheduled()
    other = World(world.notifier.engine.url.render_as_string(hide_password=False), world.clock,
                  report_archive=str(archive))
    try:
        assert other.service.announce_reports(archive) == 0
    finally:
        other.notifier.engine.dispose()
    world.deliver()
    assert len(world.robot.sent) == 1 and len(_report_rows(world)) == 1


def test_a_report_is_announced_once_its_files_are_settled_and_not_when_old(world: World,
                                                                            archive: Path) -> None:
    _monthly(archive, T0 - timedelta(seconds=REPORT_NOTICE_WINDOW + 60), period="2026-10")
    _monthly(archive, T0 - timedelta(seconds=REPORT_NOTICE_SETTLE / 2))
    (archive / "monthly" / "notes.txt").write_text("not a report")
    stray = archive / "unknown" / "2026-11.html"  # not a kind of the reports
    stray.parent.mkdir()
    stray.write_text("x")
    _written([archive / "monthly" / "notes.txt", stray], T0 - timedelta(minutes=5))
    assert world.notifier.run_scheduled()
    assert _report_rows(world) == [], "still being written; the October report is old news"
    world.clock.advance(seconds=REPORT_NOTICE_SETTLE)
    assert world.notifier.run_scheduled()
    rows = _report_rows(world)
    assert len(rows) == 1 and "《月度系统运维报告》2026-11" in rows[0]["content"]
    assert rows[0]["dedupe_key"] == "report|monthly|2026-11|robot|0"


def test_an_incident_report_written_by_the_command_is_announced(world: World, archive: Path,
                                                                 store_url: str) -> None:
    world.ingest(alert("ab01", T0 - timedelta(hours=2)))
    ticket_id = world.service.list_tickets()[0].id
    code = cli.main(["incident", "--ticket", str(ticket_id), "--store", store_url, "--out", str(archive),
                     "--no-pdf"], now=T0)
    assert code == 0
    html = archive / "incident" / f"ticket-{ticket_id}.html"
    _written([html], T0 - timedelta(minutes=2))
    assert world.notifier.run_scheduled()
    world.deliver()
    texts = [m.content for m in world.robot.sent if "报告已生成" in m.content]
    assert len(texts) == 1
    assert f"《突发事件分析报告》ticket-{ticket_id}" in texts[0] and "格式：网页\n" in texts[0]


def test_announcing_can_be_switched_off(store_url: str, archive: Path) -> None:
    world = World(store_url, FakeClock(T0), report_archive=str(archive), announce_reports=False)
    try:
        _monthly(archive, T0 - timedelta(minutes=5))
        assert world.notifier.run_scheduled()
        assert _report_rows(world) == []
    finally:
        world.notifier.engine.dispose()
