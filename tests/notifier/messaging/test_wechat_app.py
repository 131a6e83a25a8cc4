"""The application message channel: token cache, refresh on 42001/40014, credentials, limits."""

from __future__ import annotations

from einvoice_notifier.messaging.base import Message, Outcome
from einvoice_notifier.messaging.config import ChannelConfig, build_channel
from pydantic import TypeAdapter


def app(wecom, clock, secret="app-secret", **extra):
    cfg = TypeAdapter(ChannelConfig).validate_python({
        "type": "wechat_app", "name": "app", "corp_id": "ww-corp", "agent_id": 1000002,
        "secret": secret, "to_user": ["zhangsan", "lisi"], "to_party": ["2"],
        "base_url": wecom.base_url, **extra})
    return build_channel(cfg, clock=clock)


def test_token_is_cached_until_it_nearly_expires(wecom, clock):
    channel = app(wecom, clock)
    for i in range(3):
        assert channel.send(Message("markdown", f"卡片 {i}")).outcome is Outcome.SENT
    assert wecom.tokens_issued == 1
    assert wecom.accepted[0].recipients == {"touser": "zhangsan|lisi", "toparty": "2"}
    clock.advance(7200 - 300)  # within the margin: fetch a fresh one before WeCom expires it
    assert channel.send(Message("text", "x")).outcome is Outcome.SENT
    assert wecom.tokens_issued == 2 and 42001 not in wecom.errcodes


def test_expired_or_revoked_token_is_refreshed_once(wecom, clock):
    channel = app(wecom, clock)
    assert channel.send(Message("text", "a")).outcome is Outcome.SENT
    wecom.expire_tokens()  # WeCom ends the token early: 42001
    assert channel.send(Message("text", "b")).outcome is Outcome.SENT
    wecom.expire_tokens(revoke=True)  # the secret was reset: 40014
    assert channel.send(Message("text", "c")).outcome is Outcome.SENT
    assert 42001 in wecom.errcodes and 40014 in wecom.errcodes
    assert wecom.tokens_issued == 3 and len(wecom.accepted) == 3


def test_wrong_secret_is_permanent(wecom, clock):
    result = app(wecom, clock, secret="nope").send(Message("text", "a"))
    assert result.outcome is Outcome.PERMANENT and result.reason == "invalid_credentials"
    assert wecom.accepted == []


def test_down_then_up(wecom, clock):
    channel = app(wecom, clock)
    wecom.down("502")
    assert channel.send(Message("text", "a")).outcome is Outcome.RETRY
    wecom.up()
    assert channel.send(Message("text", "a")).outcome is Outcome.SENT


def test_application_content_limit_is_2048_bytes(wecom, clock):
    channel = app(wecom, clock)
    assert channel.max_bytes == 2048
    assert channel.send(Message("text", "告" * 683)).outcome is Outcome.PERMANENT  # 2049 bytes
    assert channel.send(Message("text", "告" * 682)).outcome is Outcome.SENT


def test_a_resent_message_reaches_people_once(wecom, clock):
    """A notifier that dies between WeCom's answer and recording it has the message sent again (by
    another replica): WeCom's duplicate check drops the repeat within the interval."""
    channel = app(wecom, clock)
    card = Message("markdown", "工单 #7 受理服务健康检查失败")
    assert channel.send(card).outcome is Outcome.SENT
    assert channel.send(card).outcome is Outcome.SENT  # the re-send: answered ok, not delivered
    assert len(wecom.accepted) == 1 and wecom.duplicates_dropped == 1
    clock.advance(1800)
    assert channel.send(card).outcome is Outcome.SENT  # the interval has passed: a new message
    assert len(wecom.accepted) == 2


def test_the_duplicate_check_can_be_switched_off(wecom, clock):
    channel = app(wecom, clock, duplicate_check_interval=0)
    card = Message("markdown", "工单 #8")
    for _ in range(2):
        assert channel.send(card).outcome is Outcome.SENT
    assert len(wecom.accepted) == 2 and wecom.duplicates_dropped == 0
