"""The console in a real headless browser (Debian chromium driven by playwright): the person on duty
opens the link from the WeChat card and acknowledges; an operator logs in and closes with a cause."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.notifier.console.conftest import DUTY_MOBILE, PASSWORDS
from tests.support.procs import require_binary, wait_until

pytestmark = pytest.mark.xdist_group("console")

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = require_binary("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def test_acknowledge_from_the_message_link_then_close_with_a_cause(stack, browser):
    fingerprint = stack.fire(description="纳税人 91450103198765432P 推送失败，来电 13907712345")
    ticket = stack.ticket_of(fingerprint)
    link = stack.delivered_link(ticket.id)

    # What left for WeChat: redacted, with the duty person @-ed in a text message after the card.
    def ours() -> list:
        return [a for a in stack.wecom.accepted if f"/link/{ticket.id}?" in a.content]

    wait_until(lambda: any(a.msgtype == "text" for a in ours()), what="the @ message")
    cards = ours()
    assert all("91450103198765432P" not in a.content and "13907712345" not in a.content for a in cards)
    mentions = [a for a in cards if a.msgtype == "text"]
    assert mentions and mentions[0].mentioned_mobile_list == [DUTY_MOBILE]

    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(link)
    assert page.locator("#state").inner_text() == "新建"
    assert "91450103198765432P" not in page.content()  # no login: the page shows what the card showed
    assert stack.notifier.service.get_ticket(ticket.id).state == "open"  # opening is not acknowledging
    page.click("#ack")
    page.wait_for_selector("text=已确认响应")
    assert page.locator("#state").inner_text() == "已响应"
    acknowledged = stack.notifier.service.get_ticket(ticket.id)
    assert acknowledged.state == "acknowledged" and acknowledged.acknowledged_at is not None
    entries = stack.notifier.service.timeline(ticket.id)
    assert [(e.actor, e.action) for e in entries][-1] == ("duty-link", "acknowledge")

    # An operator logs in from the link page and works the ticket to closed.
    page.click("text=登录控制台")
    page.fill("input[name=username]", "oper")
    page.fill("input[name=password]", PASSWORDS["oper"])
    page.click("button[type=submit]")
    page.wait_for_url(f"**/console/tickets/{ticket.id}")
    cookie = next(c for c in context.cookies() if c["name"] == "einvoice_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert "91450103198765432P" in page.content()  # logged in: the full record

    page.click("#progress")
    page.wait_for_selector("text=已开始处理")
    page.fill("#note-input", "已重启受理节点 node-3，观察中")
    page.click("#note")
    page.wait_for_selector("text=备注已添加")
    page.fill("#resolve-note", "健康检查恢复")
    page.click("#resolve")
    page.wait_for_selector("#resolve-warning")  # the alert still fires: asked to confirm, text kept
    assert page.input_value("#resolve-note") == "健康检查恢复"
    page.check("#confirm-firing")
    page.click("#resolve")
    page.wait_for_selector("#close-form")
    page.fill("#cause-input", "JDBC 连接池耗尽导致健康检查超时")
    page.fill("#solution-input", "扩大连接池至 200 并重启 node-3")
    page.check("#local")
    page.click("#close")
    page.wait_for_selector("text=工单已关闭")
    assert page.locator("#state").inner_text() == "已关闭"
    assert page.locator("#cause").inner_text() == "JDBC 连接池耗尽导致健康检查超时"
    assert page.locator("#resolved-locally").inner_text() == "本级解决"

    closed = stack.notifier.service.get_ticket(ticket.id)
    assert closed.state == "closed" and closed.resolved_locally is True
    assert closed.solution == "扩大连接池至 200 并重启 node-3"
    actions = [(e.actor, e.action) for e in stack.notifier.service.timeline(ticket.id)]
    assert actions[-4:] == [("oper", "start_progress"), ("oper", "add_note"), ("oper", "resolve"),
                            ("oper", "close")]
    timeline = page.locator("#timeline").inner_text()
    assert "值班人员（消息链接）" in timeline and "JDBC 连接池耗尽" in timeline
    context.close()


def test_list_filters_and_viewer_is_read_only(stack, browser):
    urgent = stack.ticket_of(stack.fire(summary="紧急告警一"))
    general = stack.ticket_of(stack.fire(summary="一般告警二", severity="warning", item="13"))
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{stack.url}/console/tickets")
    assert "/console/login" in page.url
    page.fill("input[name=username]", "watcher")
    page.fill("input[name=password]", PASSWORDS["watcher"])
    page.click("button[type=submit]")
    page.wait_for_selector("#tickets")

    page.select_option("select[name=severity_class]", "general")
    page.select_option("select[name=item]", "13")
    page.click("text=筛选")
    page.wait_for_url("**severity_class=general**")
    rows = page.locator("#tickets tbody").inner_text()
    assert f"#{general.id}" in rows and f"#{urgent.id}" not in rows

    page.goto(f"{stack.url}/console/tickets/{urgent.id}")
    assert "只读账号，不能操作工单" in page.content()
    assert page.locator("#ack").count() == 0
    context.close()
