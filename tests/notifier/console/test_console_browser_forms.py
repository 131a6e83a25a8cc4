"""The forms in a real headless browser (Debian chromium driven by playwright): every error at once
with what was typed kept, the warning before resolving a firing alert, the time left to deadlines,
the display name in the header, and an error page that still offers logout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.notifier.console.conftest import PASSWORDS
from tests.notifier.console.test_console_browser import LAUNCH_ARGS
from tests.support.procs import require_binary

pytestmark = pytest.mark.xdist_group("console")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = require_binary("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def _logged_in(stack, browser, user: str = "oper"):
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(f"{stack.url}/console/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url("**/console/tickets")
    return context, page


def test_an_operator_works_the_forms_and_loses_nothing_typed(stack, browser):
    ticket = stack.ticket_of(stack.fire(route="second_line"))
    context, page = _logged_in(stack, browser)
    assert page.locator("#who").inner_text().startswith("值班员张工（操作员）")
    page.goto(f"{stack.url}/console/tickets/{ticket.id}")
    left = page.locator("#response-left").inner_text()
    assert left.startswith(("还剩", "已超时"))

    # Resolving while the alert fires: a warning, nothing changed, the note still in its box.
    assert page.locator("#firing-hint").is_visible()
    page.fill("#resolve-note", "已切换备用节点")
    page.click("#resolve")
    page.wait_for_selector("#resolve-warning")
    assert page.input_value("#resolve-note") == "已切换备用节点"
    assert stack.notifier.service.get_ticket(ticket.id).state == "open"
    page.check("#confirm-firing")
    page.click("#resolve")
    page.wait_for_selector("text=已标记为已解决")

    # Closing with a missing cause, an over-long solution and no choice: all three errors at once.
    page.fill("#solution-input", "")
    page.evaluate("document.querySelector('#solution-input').removeAttribute('maxlength')")
    page.fill("#solution-input", "扩" * 10001)
    page.click("#close")
    page.wait_for_selector("#errors")
    errors = page.locator("#errors li").all_inner_texts()
    assert errors == ["请填写原因", "解决方案最多 10000 字，当前 10001 字，请精简后再提交",
                      "请选择“本级解决”或“升级处理”"]
    assert page.input_value("#solution-input") == "扩" * 10001
    page.fill("#cause-input", "证书过期导致握手失败")
    page.fill("#solution-input", "更换证书并重启")
    page.check("#escalated")
    page.click("#close")
    page.wait_for_selector("text=工单已关闭")
    assert page.locator("#cause").inner_text() == "证书过期导致握手失败"

    # A ticket that does not exist: a Chinese page, and the header still lets the person log out.
    page.goto(f"{stack.url}/console/tickets/12345678901234567890")
    assert "不存在" in page.content()
    page.click("header button[type=submit]")
    page.wait_for_url("**/console/login")
    context.close()
