"""The console pages of the registers (issue 19) over real HTTP: an operator records a fault's owner
on the ticket page (which links the evidence pack), registers a change and links the ticket it
caused from the suggested candidates, registers a vulnerability and a complaint; a viewer reads only;
a form without the session's CSRF token changes nothing; form errors come back all at once with what
was typed kept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.notifier.test_registers_api import TAX_ID, Api, alert, outage_alert, served_api
from tests.notifier.test_webhook import _settings

SHANGHAI_OFFSET = timedelta(hours=8)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "form without a CSRF token"
    return match.group(1)


def _login(url: str, user: str, password: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    form = session.get(f"{url}/console/login", timeout=10)
    answer = session.post(
        f"{url}/console/login",
        allow_redirects=False,
        timeout=10,
        data={"username": user, "password": password, "csrf": _csrf(form.text), "next": "/console/tickets"},
    )
    assert answer.status_code == 303, answer.text
    return session, _csrf(session.get(f"{url}/console/tickets", timeout=10).text)


def _local(moment: datetime) -> str:
    """A datetime-local form value (Beijing wall clock)."""
    return (moment.astimezone(UTC) + SHANGHAI_OFFSET).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = _settings(reports_url="https://reports.example/archive/")
    with served_api(settings, f"sqlite:///{tmp_path / 'n.db'}") as served:
        yield served


def test_fault_ownership_on_the_ticket_page(api: Api) -> None:
    url = api.served.url
    now = datetime.now(UTC).replace(microsecond=0)
    api.webhook(outage_alert("outage", now - timedelta(minutes=20)))
    ticket = api.tickets("outage")["outage"]["id"]
    operator, csrf = _login(url, "alice", "alice-pw")
    viewer, viewer_csrf = _login(url, "victor", "victor-pw")
    page = operator.get(f"{url}/console/tickets/{ticket}", timeout=10).text
    assert "尚未定责" in page and 'id="fault-form"' in page
    assert "https://reports.example/archive/evidence/ticket-" in page
    assert f"einvoice-report evidence --ticket {ticket}" in page
    assert 'id="fault-form"' not in viewer.get(f"{url}/console/tickets/{ticket}", timeout=10).text

    form = {"owner": "network", "system": "public_service", "evidence": f"电信光缆中断，税号 {TAX_ID}"}
    target = f"{url}/console/tickets/{ticket}/fault"
    assert operator.post(target, data=form, timeout=10).status_code == 403  # no token
    assert viewer.post(target, data={**form, "csrf": viewer_csrf}, timeout=10).status_code == 403
    bad = operator.post(target, data={**form, "csrf": csrf, "owner": "weather", "evidence": ""}, timeout=10)
    assert bad.status_code == 422 and "请选择故障主体" in bad.text and "请填写证据说明" in bad.text
    done = operator.post(target, data={**form, "csrf": csrf}, timeout=10, allow_redirects=False)
    assert done.status_code == 303
    page = operator.get(f"{url}/console/tickets/{ticket}", timeout=10).text
    assert "网络（不计入运维厂商故障率" in page and TAX_ID not in page
    assert "故障定责" in re.search(r'<table id="timeline">.*?</table>', page, re.S).group(0)


def test_change_vulnerability_and_complaint_pages(api: Api) -> None:
    url = api.served.url
    now = datetime.now(UTC).replace(microsecond=0)
    operator, csrf = _login(url, "alice", "alice-pw")
    viewer, viewer_csrf = _login(url, "victor", "victor-pw")
    change = {
        "kind": "patch",
        "system": "invoice_mgmt",
        "title": "同步补丁",
        "version_before": "2.0.1",
        "version_after": "2.0.2",
        "window_start": _local(now - timedelta(hours=2)),
        "window_end": _local(now - timedelta(hours=1)),
        "performed_by": "王工",
    }
    missing = operator.post(
        f"{url}/console/changes", timeout=10, data={**change, "csrf": csrf, "window_start": "", "title": ""}
    )
    assert missing.status_code == 422 and "请填写变更窗口开始时间" in missing.text
    assert 'value="2.0.2"' in missing.text  # what was typed is kept
    wrong = operator.post(f"{url}/console/changes", timeout=10, data={**change, "csrf": csrf, "title": ""})
    assert wrong.status_code == 422 and "请填写变更内容" in wrong.text
    assert (
        viewer.post(f"{url}/console/changes", data={**change, "csrf": viewer_csrf}, timeout=10).status_code
        == 403
    )
    made = operator.post(
        f"{url}/console/changes", data={**change, "csrf": csrf}, timeout=10, allow_redirects=False
    )
    assert made.status_code == 303
    page_url = url + made.headers["location"].split("?")[0]

    api.webhook(alert("caused", now - timedelta(minutes=30), item="19"))
    ticket = api.tickets("caused")["caused"]["id"]
    page = operator.get(page_url, timeout=10).text
    candidates = re.search(r'<table id="candidates">.*?</table>', page, re.S).group(0)
    assert f"#{ticket}" in candidates
    linked = operator.post(f"{page_url}/tickets", data={"csrf": csrf, "ticket_id": str(ticket)}, timeout=10)
    assert linked.status_code == 200 and "已关联工单" in linked.text
    assert f'href="/console/tickets/{ticket}">#{ticket}</a>' in re.search(
        r'<dd id="linked">.*?</dd>', linked.text, re.S
    ).group(0)
    outcome = operator.post(page_url, data={"csrf": csrf, "outcome": "new_problem"}, timeout=10)
    assert outcome.status_code == 422 and "未解决问题或引发新问题时请填写结果说明" in outcome.text
    outcome = operator.post(
        page_url,
        data={"csrf": csrf, "outcome": "new_problem", "outcome_note": "同步超时", "post_check_ok": "yes"},
        timeout=10,
    )
    assert outcome.status_code == 200 and "引发新问题" in outcome.text
    assert "同步补丁" in operator.get(f"{url}/console/changes", timeout=10).text

    vuln = {
        "title": "Redis 未授权访问",
        "system": "invoice_mgmt",
        "severity": "high",
        "found_by": "vendor",
        "found_on": (now.date() - timedelta(days=3)).isoformat(),
        "reported_on": (now.date() - timedelta(days=2)).isoformat(),
        "deadline": _local(now - timedelta(hours=1)),
    }
    bad = operator.post(
        f"{url}/console/vulnerabilities",
        data={**vuln, "csrf": csrf, "found_on": "", "severity": ""},
        timeout=10,
    )
    assert bad.status_code == 422 and "请填写发现日期" in bad.text
    listed = operator.post(f"{url}/console/vulnerabilities", data={**vuln, "csrf": csrf}, timeout=10)
    assert (
        listed.status_code == 200
        and "免扣（先于局方扫描报告）" in listed.text
        and "（已逾期）" in listed.text
    )
    vuln_id = re.search(r'<tr id="vuln-(\d+)">', listed.text).group(1)
    hardened = operator.post(
        f"{url}/console/vulnerabilities/{vuln_id}",
        timeout=10,
        data={"csrf": csrf, "hardened_at": _local(now), "hardening_record": "已设置 requirepass"},
    )
    assert (
        hardened.status_code == 200
        and "已设置 requirepass" in hardened.text
        and "（已逾期）" not in hardened.text
    )

    complaint = {
        "received_on": now.date().isoformat(),
        "system": "public_service",
        "summary": f"纳税人 {TAX_ID} 投诉无法开票",
        "ticket_id": str(ticket),
    }
    added = operator.post(f"{url}/console/complaints", data={**complaint, "csrf": csrf}, timeout=10)
    assert added.status_code == 200 and "投诉无法开票" in added.text and TAX_ID not in added.text
    complaint_id = re.search(r'<tr id="complaint-(\d+)">', added.text).group(1)
    verified = operator.post(
        f"{url}/console/complaints/{complaint_id}/verify",
        timeout=10,
        data={"csrf": csrf, "verification": "substantiated", "note": "属实"},
    )
    assert verified.status_code == 200 and "核实结果已保存" in verified.text
    assert "<td>属实<pre>属实</pre></td>" in verified.text

    # A viewer reads every register page, with no form to change anything; no login, no page.
    for path, form in (("changes", "change-form"), ("vulnerabilities", "vuln-form"),
                       ("complaints", "complaint-form")):
        page = viewer.get(f"{url}/console/{path}", timeout=10)
        assert page.status_code == 200 and f'id="{form}"' not in page.text and 'name="csrf"' in page.text
        assert f'id="{form}"' in operator.get(f"{url}/console/{path}", timeout=10).text
        anonymous = requests.get(f"{url}/console/{path}", timeout=10, allow_redirects=False)
        assert anonymous.status_code == 303 and "/console/login" in anonymous.headers["location"]
    assert "Redis 未授权访问" in viewer.get(f"{url}/console/vulnerabilities", timeout=10).text
