"""What adversarial testing found in the console (issue 10), over real HTTP against the running
notifier: error pages for logged-in people, ids no row can have, the link page redacted like the
messages, form limits and errors in Chinese, a warning before resolving a firing alert, the time left
to deadlines and why, the display name in the header."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import requests
from einvoice_notifier.calendar import CalendarData, WorkingCalendar
from einvoice_notifier.console.deadlines import deadline_note, duration_zh
from einvoice_notifier.messaging.links import sign_ticket_link

from tests.notifier.console.test_console_security import csrf_in, login
from tests.notifier.support import shanghai

pytestmark = pytest.mark.xdist_group("console")

QUIET = "second_line"
"""Tickets of these tests go to the second-line channel (a revoked robot: dead letters at once), so
they do not use up the first-line robot's twenty a minute that the link tests wait on."""
TAX_ID = "91450103198765432P"
MOBILE = "13907712345"


@pytest.mark.parametrize("path", ["/console/tickets/99999999", "/console/tickets/12345678901234567890",
                                  "/console/tickets/0", "/console/tickets/abc"])
def test_missing_tickets_are_a_404_page_with_the_header_for_a_logged_in_user(stack, path):
    for user in ("oper", "watcher"):
        session, _csrf = login(stack, user)
        page = session.get(stack.url + path, timeout=10)
        assert page.status_code == 404, page.text[:200]
        assert "不存在" in page.text and 'action="/console/logout"' in page.text
        csrf_in(page.text)  # the header's logout form carries the session's token


def test_actions_on_ids_no_row_can_have_are_404(stack):
    session, csrf = login(stack, "oper")
    for raw in ("12345678901234567890", "99999999"):
        for action in ("acknowledge", "progress", "note", "resolve", "close"):
            answer = session.post(f"{stack.url}/console/tickets/{raw}/{action}", timeout=10,
                                  data={"csrf": csrf, "text": "x", "note": "x", "cause": "c", "solution": "s",
                                        "resolution": "local", "confirm_firing": "yes"})
            assert answer.status_code == 404, (raw, action, answer.status_code)


def test_bad_links_and_a_logout_without_token_are_pages_not_500(stack):
    ticket = stack.ticket_of(stack.fire(route=QUIET))
    session, _csrf = login(stack, "watcher")
    bad = session.get(f"{stack.url}/console/link/{ticket.id}?action=view&exp=1&sig={'0' * 64}", timeout=10)
    assert bad.status_code == 403 and "链接无效" in bad.text and 'action="/console/logout"' in bad.text
    huge = session.get(f"{stack.url}/console/link/12345678901234567890?action=view&exp=1&sig=0", timeout=10)
    assert huge.status_code == 403 and "链接无效" in huge.text
    posted = session.post(f"{stack.url}/console/link/{ticket.id}/acknowledge", timeout=10,
                          data={"action": "view", "exp": "1", "sig": "0" * 64, "csrf": "x"})
    assert posted.status_code == 403 and "链接无效" in posted.text
    logout = session.post(f"{stack.url}/console/logout", data={}, timeout=10, allow_redirects=False)
    assert logout.status_code == 403 and "请求已过期" in logout.text
    assert session.get(f"{stack.url}/console/tickets", timeout=10, allow_redirects=False).status_code == 200


def test_the_link_page_without_login_redacts_everything_it_shows(stack):
    fingerprint = stack.fire(route=QUIET, summary=f"纳税人 {TAX_ID} 推送失败", description=f"来电 {MOBILE}",
                             alertname=f"PushFailed_{TAX_ID}", nsrsbh=TAX_ID,
                             target=f"http://10.45.1.7:7001/push?nsrsbh={TAX_ID}")
    ticket = stack.ticket_of(fingerprint)
    stack.notifier.service.add_note(ticket.id, "oper", f"回拨 {MOBILE}，税号 {TAX_ID}")
    link = sign_ticket_link(stack.url, ticket.id, stack.notifier.service.link_secret,
                            datetime(2100, 1, 1, tzinfo=UTC))
    page = requests.get(link, timeout=10)
    assert page.status_code == 200
    assert TAX_ID not in page.text and MOBILE not in page.text
    assert "〔税号已隐藏〕" in page.text and "〔电话已隐藏〕" in page.text
    assert re.search(r'id="alertname">PushFailed_〔税号已隐藏〕', page.text)
    # Logged in, the same person sees the record whole.
    session, _csrf = login(stack, "watcher")
    full = session.get(link, timeout=10)
    assert TAX_ID in full.text and MOBILE in full.text


def test_text_over_the_limit_is_refused_in_chinese_and_kept(stack):
    ticket = stack.ticket_of(stack.fire(route=QUIET))
    session, csrf = login(stack, "oper")
    text = "很长的备注" * 2001  # 10 005 characters
    answer = session.post(f"{stack.url}/console/tickets/{ticket.id}/note", data={"csrf": csrf, "text": text},
                          timeout=10)
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
    assert "备注最多 10000 字，当前 10005 字" in answer.text
    assert "field required" not in answer.text.lower() and "string_too_long" not in answer.text
    assert f">{text}</textarea>" in answer.text  # what was typed comes back in its box
    assert 'maxlength="10000"' in answer.text
    assert [e.action for e in stack.notifier.service.timeline(ticket.id)] == ["create"]


def test_the_close_form_shows_every_error_and_keeps_what_was_typed(stack):
    ticket = stack.ticket_of(stack.fire(route=QUIET))
    session, csrf = login(stack, "oper")
    base = f"{stack.url}/console/tickets/{ticket.id}"
    session.post(f"{base}/resolve", data={"csrf": csrf, "confirm_firing": "yes"}, timeout=10)
    answer = session.post(f"{base}/close", timeout=10, data={
        "csrf": csrf, "cause": "", "solution": "方" * 10001, "resolution": ""})
    assert answer.status_code == 422
    errors = re.search(r'<div class="error" role="alert" id="errors"><ul>(.*?)</ul>', answer.text, re.S)
    assert errors is not None
    items = re.findall(r"<li>(.*?)</li>", errors.group(1))
    assert items == ["请填写原因", "解决方案最多 10000 字，当前 10001 字，请精简后再提交",
                     "请选择“本级解决”或“升级处理”"]
    assert ">" + "方" * 10001 + "</textarea>" in answer.text
    second = session.post(f"{base}/close", timeout=10, data={
        "csrf": csrf, "cause": "证书过期", "solution": "", "resolution": "escalated"})
    assert second.status_code == 422 and ">证书过期</textarea>" in second.text
    assert re.search(r'value="escalated" id="escalated" checked', second.text)
    assert stack.notifier.service.get_ticket(ticket.id).state == "resolved"


def test_resolving_a_firing_alert_asks_first(stack):
    ticket = stack.ticket_of(stack.fire(route=QUIET))
    session, csrf = login(stack, "oper")
    base = f"{stack.url}/console/tickets/{ticket.id}"
    page = session.get(base, timeout=10)
    assert "仍在触发" in page.text and 'id="confirm-firing"' in page.text
    warned = session.post(f"{base}/resolve", data={"csrf": csrf, "note": "已重启"}, timeout=10)
    assert warned.status_code == 409 and "告警仍在触发中" in warned.text
    assert ">已重启</textarea>" in warned.text
    assert stack.notifier.service.get_ticket(ticket.id).state == "open"
    done = session.post(f"{base}/resolve", data={"csrf": csrf, "note": "已重启", "confirm_firing": "yes"},
                        timeout=10)
    assert done.status_code == 200 and stack.notifier.service.get_ticket(ticket.id).state == "resolved"


def test_deadlines_show_the_time_left_and_the_header_the_display_name(stack):
    ticket = stack.ticket_of(stack.fire(route=QUIET))
    session, _csrf = login(stack, "oper")
    page = session.get(f"{stack.url}/console/tickets/{ticket.id}", timeout=10)
    assert re.search(r'id="response-left">(还剩|已超时) ', page.text)
    assert re.search(r'id="who" title="oper">值班员张工（操作员）', page.text)
    listing = session.get(f"{stack.url}/console/tickets", timeout=10)
    assert re.search(r'<div class="left[^"]*"[^>]*>(还剩|已超时) ', listing.text)
    viewer, _ = login(stack, "watcher")  # no display name configured: the user name
    assert 'title="watcher">watcher（只读）' in viewer.get(f"{stack.url}/console/tickets", timeout=10).text


CALENDAR = WorkingCalendar(CalendarData())


def test_time_left_at_the_lunch_break_says_why():
    now = shanghai(2026, 11, 27, 12, 30)  # the working clock stops 12:00–14:30
    deadline = CALENDAR.add_working_seconds(now, 7200)
    note = deadline_note("response", "open", deadline, now, CALENDAR, working_clock=True)
    assert note is not None and not note.late
    assert note.left == "还剩 4 小时"
    assert "午休" in note.why and "14:30 恢复计时" in note.why and "剩余值守时间 2 小时" in note.why


def test_time_left_spanning_the_break_and_the_night():
    morning = shanghai(2026, 11, 27, 11, 0)
    deadline = CALENDAR.add_working_seconds(morning, 7200)  # 1 h before lunch, 1 h after: 15:30
    note = deadline_note("resolution", "acknowledged", deadline, morning, CALENDAR, working_clock=True)
    assert note is not None and note.left == "还剩 4 小时 30 分钟"
    assert "2 小时 30 分钟 午休或非值守时间不计时" in note.why
    night = shanghai(2026, 11, 27, 23, 0)
    overnight = deadline_note("response", "open", CALENDAR.add_working_seconds(night, 3600), night,
                              CALENDAR, working_clock=True)
    assert overnight is not None and "夜间" in overnight.why and "11-28 07:30 恢复计时" in overnight.why


def test_outage_deadlines_count_every_minute_and_breaches_say_by_how_much():
    now = datetime(2026, 11, 27, 4, 30, tzinfo=UTC)  # 12:30 in Shanghai, lunch
    wall = deadline_note("resolution", "open", datetime(2026, 11, 27, 4, 50, tzinfo=UTC), now, CALENDAR,
                         working_clock=False)
    assert wall is not None and wall.left == "还剩 20 分钟" and "全天计时" in wall.why
    late = deadline_note("response", "open", datetime(2026, 11, 27, 4, 5, tzinfo=UTC), now, CALENDAR,
                         working_clock=True)
    assert late is not None and late.late and late.left == "已超时 25 分钟"
    assert deadline_note("response", "acknowledged", now, now, CALENDAR, True) is None
    assert duration_zh(90061) == "1 天 1 小时 1 分钟"


def test_an_expired_link_for_a_huge_id_is_not_a_500(stack):
    secret = stack.notifier.service.link_secret
    link = sign_ticket_link(stack.url, 2**63 - 1, secret, datetime(2100, 1, 1, tzinfo=UTC))
    page = requests.get(link, timeout=10)
    assert page.status_code == 404 and "不存在" in page.text
