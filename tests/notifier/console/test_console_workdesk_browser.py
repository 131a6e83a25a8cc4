"""Issue 18's console pages in a real headless browser (Debian chromium driven by playwright): an
operator reports a phone call, gets every error at once with the text kept, escalates it to the
bureau, declares a major incident; edits the roster; hands over; signs today's inspection (no
Prometheus configured: blank, and the page says so); closes and marks a typical problem; finds it
in the knowledge base. A viewer sees the pages without the forms.

The file sorts after the other console tests on purpose: they share one notifier whose first-line
robot sends twenty messages a minute, and the link tests wait for their cards; the shift added here is
removed at the end so nobody else's messages @ its person."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from einvoice_notifier import db
from sqlalchemy import select

from einvoice_core.catalogue import ITEMS
from tests.notifier.console.test_console_browser import LAUNCH_ARGS
from tests.notifier.console.test_console_browser_forms import _logged_in
from tests.support.procs import require_binary

pytestmark = pytest.mark.xdist_group("console")
SHANGHAI = ZoneInfo("Asia/Shanghai")
LINK = re.compile(r"\]\((http://[^)]+/console/link/\d+\?[^)]+)\)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = require_binary("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def test_an_operator_reports_escalates_and_closes_a_problem(stack, browser):
    context, page = _logged_in(stack, browser)
    page.click("#nav-report")
    page.wait_for_url("**/console/report")
    # Missing channel, class and reporter: every error at once, the summary still typed.
    page.fill("#summary", "南宁分局无法开具数电票")
    page.click("#submit-report")
    page.wait_for_selector("#errors")
    errors = page.locator("#errors li").all_inner_texts()
    assert errors == ["请选择报告渠道", "请选择问题级别", "请填写报告人"]
    assert page.input_value("#summary") == "南宁分局无法开具数电票"

    page.select_option("#channel", "phone")
    page.select_option("#severity-class", "urgent")
    page.fill("#reporter", "南宁分局 黄科长 13812345678")
    page.select_option("#item", "05")
    page.click("#submit-report")
    page.wait_for_selector("text=问题已登记，已通知值班人员")
    ticket_id = int(page.url.split("/tickets/")[1].split("?")[0])
    assert page.locator("#source").inner_text() == "人工报告（电话）"
    assert page.locator("#reporter").inner_text() == "南宁分局 黄科长 13812345678"  # logged in: as typed
    ticket = stack.notifier.service.get_ticket(ticket_id)
    assert ticket.response_deadline - ticket.starts_at == timedelta(minutes=10)
    assert ticket.substantive_deadline - ticket.starts_at == timedelta(hours=2)

    # The card queued for the robot (what leaves; the shared robot may still be pacing it) names the
    # channel and hides the reporter's mobile.
    with stack.notifier.engine.connect() as conn:
        card = conn.execute(select(db.outbox.c.content).where(
            db.outbox.c.ticket_id == ticket_id, db.outbox.c.event == "reported",
            db.outbox.c.format == "markdown")).scalar_one()
    assert "【报告问题】" in card and "电话" in card
    assert "13812345678" not in card and "黄科长" in card
    # The card's signed link, opened without a login, shows the reporter redacted too.
    link = LINK.search(card).group(1).replace("&amp;", "&")
    anonymous = browser.new_context(locale="zh-CN")
    public = anonymous.new_page()
    public.goto(link)
    assert public.locator("#reporter").inner_text() == "南宁分局 黄科长 〔电话已隐藏〕"
    anonymous.close()

    # Escalating without a target or a note: both errors; then to the bureau.
    page.click("#escalate")
    page.wait_for_selector("#errors")
    assert page.locator("#errors li").all_inner_texts() == ["请选择升级去向：转二线或提交税务局系统管理员",
                                                           "请填写升级说明"]
    page.check("#target-bureau")
    page.fill("#escalate-note", "需税务局核实开票权限")
    page.click("#escalate")
    page.wait_for_selector("text=已提交税务局系统管理员核实处理")
    assert page.locator("#escalated-to").inner_text().startswith("税务局系统管理员")

    page.fill("#major-note", "全区开票受影响")
    page.click("#major")
    page.wait_for_selector("#major")
    assert "已呼叫二线专家会诊" in page.locator("dd#major").inner_text()
    actions = page.locator("#timeline tbody tr td:nth-child(3)").all_inner_texts()
    assert actions[:3] == ["报告问题", "提交税务局系统管理员核实处理", "宣布重大事件"]

    # Resolve (no alert is firing for a reported problem), close, mark typical, find it.
    page.fill("#resolve-note", "已协调税务局调整权限")
    page.click("#resolve")
    page.wait_for_selector("text=已标记为已解决")
    page.fill("#cause-input", "数电票开票权限未同步")
    page.fill("#solution-input", "税务局重新下发权限后恢复")
    page.check("#escalated")
    page.click("#close")
    page.wait_for_selector("text=工单已关闭")
    page.click("#mark-typical")
    page.wait_for_selector("#typical")
    page.click("#nav-knowledge")
    page.fill("#q", "权限未同步")
    page.check("#typical-only")
    page.click("#search")
    page.wait_for_selector("#result-count")
    rows = page.locator("#knowledge tbody tr")
    assert rows.count() == 1 and f"#{ticket_id}" in rows.first.inner_text()
    context.close()


def test_roster_handover_and_inspection_pages(stack, browser):
    context, page = _logged_in(stack, browser)
    page.click("#nav-roster")
    page.wait_for_url("**/console/roster")
    now = datetime.now(SHANGHAI).replace(second=0, microsecond=0)
    # A shift that ends before it starts: the error, the name kept.
    page.fill("#person", "覃工")
    page.fill("#mobile", "13822223333")
    page.fill("#shift-start", (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#shift-end", (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.click("#add-shift")
    page.wait_for_selector("#errors")
    assert page.locator("#errors").inner_text().strip() == "班次的结束时间需要晚于开始时间"
    assert page.input_value("#person") == "覃工"
    page.fill("#shift-start", (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#shift-end", (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.click("#add-shift")
    page.wait_for_selector("text=班次已保存")
    assert "覃工" in page.locator("#on-duty-first_line").inner_text()
    assert "无人值班" in page.locator("#on-duty-second_line").inner_text()

    page.click("#nav-handovers")
    page.fill("#from-person", "覃工")
    page.fill("#to-person", "韦工")
    page.fill("#handover-notes", "3 号机磁盘使用率 85%，请关注")
    page.click("#handover")
    page.wait_for_selector("text=交接班已记录，已通知值班人员")
    first_row = page.locator("#handovers tbody tr").first.inner_text()
    assert "覃工" in first_row and "韦工" in first_row and "85%" in first_row

    page.click("#nav-inspection")
    page.wait_for_selector("#prefill-source")
    assert "未配置 Prometheus" in page.locator("#prefill-source").inner_text()
    # Nothing confirmed: the page lists every item, and keeps what was typed.
    page.fill("#finding-13", "消费组落后 2 分钟")
    page.click("#sign")
    page.wait_for_selector("#errors")
    assert len(page.locator("#errors li").all_inner_texts()) == len(ITEMS)
    assert page.input_value("#finding-13") == "消费组落后 2 分钟"
    for item in ITEMS:
        page.check(f"#{'abnormal' if item.id == '13' else 'normal'}-{item.id}")
    page.click("#sign")
    page.wait_for_selector("#signed")
    assert page.locator("#signed").inner_text().startswith("已由 oper 于")
    assert "消费组落后 2 分钟" in page.locator("#checklist").inner_text()
    summary = page.locator("#month-summary").inner_text()
    assert "已完成 1 天" in summary and "缺失" in summary  # today: on time or late by the clock
    context.close()

    # A viewer reads the pages but gets no forms.
    context, page = _logged_in(stack, browser, "watcher")
    page.goto(f"{stack.url}/console/roster")
    assert page.locator("#shift-form").count() == 0 and "覃工" in page.locator("#shifts").inner_text()
    page.goto(f"{stack.url}/console/report")
    assert page.locator("#report-form").count() == 0
    context.close()
    for shifts in stack.notifier.service.on_duty().values():
        for shift in shifts:
            stack.notifier.service.delete_shift(shift.id, "test-cleanup")
