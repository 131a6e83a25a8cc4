"""Rendering: Chinese card from the template, times in Asia/Shanghai, byte limits, split parts that
all keep the link, redaction of everything that leaves, and operator template overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from einvoice_notifier.messaging.redact import MARK_PHONE, MARK_TAX_ID
from einvoice_notifier.messaging.render import check_templates, fit, render_ticket_messages
from hypothesis import given, settings
from hypothesis import strategies as st

from einvoice_core.contract import TICKET_CLASS_ZH, TicketClass

URL = "https://notifier.example/console/link/7?action=view&exp=1764300000&sig=" + "ab" * 32


@dataclass(frozen=True)
class Ticket:  # the fields of the core's TicketView the renderer reads
    id: int = 7
    alertname: str = "EinvoiceCheckDown"
    item: str = "10"
    zone: str = "intranet"
    target: str = "10.45.1.7:7001"
    severity_class: str = "urgent"
    state: str = "open"
    summary: str = "处理服务健康检查失败"
    description: str = "连续 3 次探测失败，原因 refused。"
    labels: dict = field(default_factory=dict)
    starts_at: datetime = datetime(2026, 11, 27, 2, 15, 30, tzinfo=UTC)
    ends_at: datetime | None = None
    response_deadline: datetime | None = datetime(2026, 11, 27, 4, 15, 30, tzinfo=UTC)
    resolution_deadline: datetime | None = None
    escalated: bool = False
    recurrence_of: int | None = None
    response_breached: bool = False
    resolution_breached: bool = False


def size(text):
    return len(text.encode("utf-8"))


def test_firing_card_in_chinese_with_local_times_and_link():
    [card] = render_ticket_messages(Ticket(), "firing", URL, 4096)
    assert card.format == "markdown" and card.ticket_url == URL
    assert "【告警】" in card.content and "第10项 内网处理服务运行健康检查" in card.content
    assert TICKET_CLASS_ZH[TicketClass.URGENT] in card.content and "区域：内网" in card.content
    assert "开始：2026-11-27 10:15:30" in card.content  # 02:15 UTC is 10:15 in Shanghai
    assert "响应时限：2026-11-27 12:15:30" in card.content
    assert card.content.endswith(f"[查看并确认工单]({URL})")


def test_resolved_and_escalation_cards():
    ended = Ticket(ends_at=datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC), state="resolved")
    [card] = render_ticket_messages(ended, "resolved", URL, 4096)
    assert "【已恢复】" in card.content and "持续 44分30秒" in card.content
    late = Ticket(response_breached=True, escalated=True, recurrence_of=3)
    [card] = render_ticket_messages(late, "escalation", URL, 4096)
    assert "【超时升级】" in card.content and "已超过响应时限" in card.content
    assert "复发自 #3" in card.content
    with pytest.raises(ValueError, match="event"):
        render_ticket_messages(Ticket(), "exploded", URL, 4096)


def test_mention_text_message_carries_the_mobiles_not_in_its_text():
    _card, text = render_ticket_messages(Ticket(), "firing", URL, 4096, mentions=("13800138000",))
    assert text.format == "text" and text.mentioned_mobiles == ("13800138000",)
    assert "请值班人员尽快响应" in text.content and text.content.endswith(URL)
    assert "13800138000" not in text.content


def test_everything_is_redacted_except_the_at_list():
    ticket = Ticket(summary="纳税人 91450103198765432P 开票失败",
                    description="来电 13907712345，值班 13800138000")
    messages = render_ticket_messages(ticket, "firing", URL, 4096, mentions=("13800138000",))
    joined = "\n".join(m.content for m in messages)
    assert "91450103198765432P" not in joined and MARK_TAX_ID in joined
    assert "13907712345" not in joined and MARK_PHONE in joined
    assert "13800138000" in joined


@pytest.mark.parametrize("max_bytes", [4096, 2048, 1000])
def test_long_chinese_description_is_split_within_the_limit_and_keeps_the_link(max_bytes):
    long = "\n".join(f"第{i}行：内网处理服务节点 node-{i} 健康检查超时，线程池已满，JDBC 连接耗尽。"
                     for i in range(60))
    messages = render_ticket_messages(Ticket(description=long), "firing", URL, max_bytes,
                                      mentions=("13800138000",))
    cards = [m for m in messages if m.format == "markdown"]
    assert 1 < len(cards) <= 3
    for i, card in enumerate(cards, 1):
        assert size(card.content) <= max_bytes
        assert card.content.endswith(f"({URL})")
        assert f"（{i}/{len(cards)}）" in card.content.splitlines()[0]
        card.content.encode("utf-8").decode("utf-8")
    assert "第0行" in cards[0].content
    everything = all(f"第{i}行" in "".join(c.content for c in cards) for i in range(60))
    assert everything != ("内容过长已截断" in cards[-1].content)
    assert everything == (max_bytes == 4096)


def test_one_huge_line_is_cut_on_character_boundaries():
    parts = fit("标题\n" + "税" * 5000, "[链接](http://x/)", 1000)
    assert all(size(p) <= 1000 and p.endswith("[链接](http://x/)") for p in parts)
    assert all("\ufffd" not in p for p in parts)


def test_text_message_respects_the_2048_byte_text_limit():
    ticket = Ticket(summary="摘要" * 2000)
    messages = render_ticket_messages(ticket, "firing", URL, 4096, mentions=("13800138000",))
    assert size(messages[-1].content) <= 2048 and messages[-1].content.endswith(URL)


def test_operator_template_override(tmp_path):
    (tmp_path / "alert_card.md.j2").write_text(
        "# 自定义 {{ item_name }} 税号 91450103198765432P\n{{ link_line }}\n", encoding="utf-8")
    [card] = render_ticket_messages(Ticket(), "firing", URL, 4096, template_dir=tmp_path)
    assert card.content.startswith("# 自定义 内网处理服务运行健康检查")
    assert "91450103198765432P" not in card.content and card.content.endswith(f"({URL})")
    check_templates(tmp_path)
    (tmp_path / "alert_card.md.j2").write_text("{{ no_such_field }}", encoding="utf-8")
    with pytest.raises(Exception, match="no_such_field"):
        check_templates(tmp_path)


def test_unknown_item_still_renders():
    [card] = render_ticket_messages(Ticket(item="99", zone="mars"), "firing", URL, 4096)
    assert "未归属检查项" in card.content


@settings(max_examples=60, deadline=None)
@given(description=st.text(min_size=0, max_size=6000), summary=st.text(max_size=300),
       max_bytes=st.sampled_from([600, 2048, 4096]))
def test_any_text_fits_and_keeps_the_link(description, summary, max_bytes):
    messages = render_ticket_messages(Ticket(description=description, summary=summary), "firing", URL,
                                      max_bytes, mentions=("13800138000",))
    assert 2 <= len(messages) <= 4
    for message in messages:
        assert size(message.content) <= min(max_bytes, 2048 if message.format == "text" else max_bytes)
        assert URL in message.content


def test_service_outage_without_item_is_named_by_its_summary():
    ticket = Ticket(item=None, zone=None, alertname="EinvoiceServiceOutage", summary="受理服务宕机",
                    severity_class="outage")
    card, text = render_ticket_messages(ticket, "firing", URL, 4096, mentions=("13800138000",))
    outage = TICKET_CLASS_ZH[TicketClass.OUTAGE]
    assert card.content.splitlines()[0] == f'## <font color="warning">【告警】</font>{outage} · 受理服务宕机'
    assert "未归属" not in card.content and "区域" not in card.content
    assert text.content.splitlines()[0] == f"【{outage}】工单 #7 受理服务宕机。请值班人员尽快响应。"
