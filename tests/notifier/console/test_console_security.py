"""The console's defences over real HTTP against the running notifier: CSRF on every form, roles,
signed links (tampered, expired, preview-safe), login throttling, no open redirect, headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from einvoice_notifier.messaging.links import sign_ticket_link

from tests.notifier.console.conftest import PASSWORDS
from tests.notifier.sources import session_from
from tests.support.procs import wait_until

pytestmark = pytest.mark.xdist_group("console")


def csrf_in(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "form without a CSRF token"
    return match.group(1)


def login(stack, user: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    form = session.get(f"{stack.url}/console/login", timeout=10)
    response = session.post(f"{stack.url}/console/login", timeout=10, allow_redirects=False, data={
        "username": user, "password": PASSWORDS[user], "csrf": csrf_in(form.text),
        "next": "/console/tickets"})
    assert response.status_code == 303, response.text
    page = session.get(f"{stack.url}/console/tickets", timeout=10)
    return session, csrf_in(page.text)


def test_every_action_needs_the_session_csrf_token(stack):
    ticket = stack.ticket_of(stack.fire())
    session, csrf = login(stack, "oper")
    url = f"{stack.url}/console/tickets/{ticket.id}/acknowledge"
    assert session.post(url, data={}, timeout=10).status_code == 403
    assert session.post(url, data={"csrf": "0" * 64}, timeout=10).status_code == 403
    _other, other_csrf = login(stack, "oper")  # another session's token does not fit this session
    assert other_csrf != csrf
    assert session.post(url, data={"csrf": other_csrf}, timeout=10).status_code == 403
    assert stack.notifier.service.get_ticket(ticket.id).state == "open"
    response = session.post(url, data={"csrf": csrf}, timeout=10, allow_redirects=False)
    assert response.status_code == 303
    assert stack.notifier.service.get_ticket(ticket.id).state == "acknowledged"
    # The same action again is a conflict shown in Chinese, not a crash.
    again = session.post(url, data={"csrf": csrf}, timeout=10)
    assert again.status_code == 409 and "不能执行" in again.text


def test_viewer_cannot_act_even_with_a_valid_token(stack):
    ticket = stack.ticket_of(stack.fire())
    session, csrf = login(stack, "watcher")
    response = session.post(f"{stack.url}/console/tickets/{ticket.id}/acknowledge", data={"csrf": csrf},
                            timeout=10)
    assert response.status_code == 403 and "只读账号" in response.text
    assert stack.notifier.service.get_ticket(ticket.id).state == "open"


def test_anonymous_is_sent_to_login_and_changes_nothing(stack):
    ticket = stack.ticket_of(stack.fire())
    response = requests.post(f"{stack.url}/console/tickets/{ticket.id}/acknowledge", timeout=10,
                             data={"csrf": "x"}, allow_redirects=False)
    assert response.status_code == 303 and "/console/login" in response.headers["location"]
    assert stack.notifier.service.get_ticket(ticket.id).state == "open"


def test_close_needs_cause_solution_and_a_choice(stack):
    ticket = stack.ticket_of(stack.fire())
    session, csrf = login(stack, "oper")
    base = f"{stack.url}/console/tickets/{ticket.id}"
    session.post(f"{base}/resolve", data={"csrf": csrf, "note": "恢复", "confirm_firing": "yes"}, timeout=10)
    missing_choice = session.post(f"{base}/close", data={"csrf": csrf, "cause": "c", "solution": "s"},
                                  timeout=10)
    assert missing_choice.status_code == 422 and "本级解决" in missing_choice.text
    empty_cause = session.post(f"{base}/close", timeout=10, data={
        "csrf": csrf, "cause": " ", "solution": "s", "resolution": "escalated"})
    assert empty_cause.status_code == 422 and "请填写原因" in empty_cause.text
    done = session.post(f"{base}/close", timeout=10, data={
        "csrf": csrf, "cause": "上游超时", "solution": "联系厂商修复", "resolution": "escalated"})
    assert done.status_code == 200 and "工单已关闭" in done.text
    closed = stack.notifier.service.get_ticket(ticket.id)
    assert closed.state == "closed" and closed.resolved_locally is False


def test_opening_a_link_does_not_acknowledge_and_bad_links_are_refused(stack):
    ticket = stack.ticket_of(stack.fire())
    link = stack.delivered_link(ticket.id)
    secret = stack.notifier.service.link_secret
    page = requests.get(link, timeout=10)  # what a link preview does
    assert page.status_code == 200 and "确认响应" in page.text
    assert stack.notifier.service.get_ticket(ticket.id).state == "open"

    other = stack.ticket_of(stack.fire())
    tampered = link.replace(f"/link/{ticket.id}?", f"/link/{other.id}?")
    assert requests.get(tampered, timeout=10).status_code == 403
    expired = sign_ticket_link(stack.url, ticket.id, secret, datetime.now(UTC) - timedelta(seconds=1))
    refused = requests.get(expired, timeout=10)
    assert refused.status_code == 403 and "链接已过期" in refused.text

    fields = dict(re.findall(r'name="(action|exp|sig|csrf)" value="([^"]*)"', page.text))
    ack = f"{stack.url}/console/link/{ticket.id}/acknowledge"
    assert requests.post(ack, data={**fields, "csrf": "0" * 64}, timeout=10).status_code == 403
    assert requests.post(ack, data={**fields, "sig": "0" * 64}, timeout=10).status_code == 403
    # The link acknowledges only its own ticket.
    assert requests.post(f"{stack.url}/console/link/{other.id}/acknowledge", data=fields,
                         timeout=10).status_code == 403
    assert stack.notifier.service.get_ticket(ticket.id).state == "open"
    assert stack.notifier.service.get_ticket(other.id).state == "open"
    done = requests.post(ack, data=fields, timeout=10)
    assert done.status_code == 200 and stack.notifier.service.get_ticket(ticket.id).state == "acknowledged"
    # A link grants nothing else: no list, no other actions.
    anonymous = requests.get(f"{stack.url}/console/tickets", timeout=10, allow_redirects=False)
    assert anonymous.status_code == 303


def test_login_failures_are_throttled_and_unknown_users_look_the_same(stack):
    session = session_from("127.0.0.31")  # its own source address: the throttle counts per source

    def attempt(user: str, password: str) -> requests.Response:
        form = session.get(f"{stack.url}/console/login", timeout=10)
        return session.post(f"{stack.url}/console/login", timeout=10, allow_redirects=False, data={
            "username": user, "password": password, "csrf": csrf_in(form.text)})

    unknown = attempt("nobody", "x")
    wrong = attempt("ghost", "y")
    assert unknown.status_code == wrong.status_code == 401 and "用户名或密码错误" in unknown.text
    for _ in range(3):  # five failures in all are free, the sixth attempt is refused unchecked
        assert attempt("ghost", "wrong").status_code == 401
    refused = attempt("ghost", "wrong")
    assert refused.status_code == 429 and "登录失败次数过多" in refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    # A login without the form's token is refused before any password check.
    bare = requests.post(f"{stack.url}/console/login", timeout=10, allow_redirects=False,
                         data={"username": "oper", "password": PASSWORDS["oper"], "csrf": "x"})
    assert bare.status_code == 403 and "einvoice_console=" not in bare.headers.get("set-cookie", "")


def test_no_open_redirect_and_protective_headers(stack):
    session = requests.Session()
    form = session.get(f"{stack.url}/console/login?next=https://evil.example/", timeout=10)
    assert "evil.example" not in form.text
    response = session.post(f"{stack.url}/console/login", timeout=10, allow_redirects=False, data={
        "username": "oper", "password": PASSWORDS["oper"], "csrf": csrf_in(form.text),
        "next": "//evil.example/"})
    assert response.headers["location"] == "/console/tickets"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    page = session.get(f"{stack.url}/console/tickets", timeout=10)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    logout = session.post(f"{stack.url}/console/logout", data={"csrf": csrf_in(page.text)}, timeout=10,
                          allow_redirects=False)
    assert logout.status_code == 303
    assert session.get(f"{stack.url}/console/tickets", timeout=10, allow_redirects=False).status_code == 303


def test_forged_session_cookie_is_ignored(stack):
    session, _ = login(stack, "watcher")
    cookie = session.cookies.get("einvoice_console")
    payload, mac = cookie.split(".")
    import base64
    import json

    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["u"] = "oper"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode() + "." + mac
    response = requests.get(f"{stack.url}/console/tickets", cookies={"einvoice_console": forged},
                            timeout=10, allow_redirects=False)
    assert response.status_code == 303 and "/console/login" in response.headers["location"]


def test_dead_letters_are_visible(stack):
    # The second-line robot's key was revoked: WeCom answers 93000 and the message is a dead letter.
    ticket = stack.ticket_of(stack.fire(route="second_line"))
    session, _ = login(stack, "watcher")

    def listed() -> bool:
        page = session.get(f"{stack.url}/console/outbox", timeout=10)
        return f'href="/console/tickets/{ticket.id}"' in page.text

    wait_until(listed, timeout=20, what="dead letter listed")
    page = session.get(f"{stack.url}/console/outbox", timeout=10).text
    assert "backup" in page and "invalid_key" in page
    assert "console-revoked-key" not in page


def test_a_logged_in_operator_following_a_link_gets_the_full_page(stack):
    ticket = stack.ticket_of(stack.fire())
    link = stack.delivered_link(ticket.id)
    operator, _ = login(stack, "oper")
    response = operator.get(link, timeout=10, allow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/console/tickets/{ticket.id}"
    viewer, _ = login(stack, "watcher")  # a viewer keeps what the link grants: acknowledging
    page = viewer.get(link, timeout=10)
    assert page.status_code == 200 and 'action="/console/link/' in page.text
