"""The group robot channel against the fake WeCom server: errcodes, pacing, backoff, secrecy."""

from __future__ import annotations

import logging

import pytest
import requests
from einvoice_notifier.messaging.base import Message, Outcome
from einvoice_notifier.messaging.config import ChannelConfig, build_channel, parse_channels
from pydantic import TypeAdapter, ValidationError

ADAPTER = TypeAdapter(ChannelConfig)


def robot(wecom, clock, key="robot-key-1", **extra):
    cfg = ADAPTER.validate_python({"type": "wechat_robot", "name": "oncall", "key": key,
                                   "base_url": wecom.base_url, **extra})
    return build_channel(cfg, clock=clock)


def test_markdown_and_mention_are_accepted(wecom, clock):
    channel = robot(wecom, clock)
    assert channel.send(Message("markdown", "## 告警\n> 第10项")).outcome is Outcome.SENT
    result = channel.send(Message("text", "请值班人员响应", mentioned_mobiles=("13800138000",)))
    assert result.outcome is Outcome.SENT
    assert [a.msgtype for a in wecom.accepted] == ["markdown", "text"]
    assert wecom.accepted[1].mentioned_mobile_list == ["13800138000"]


def test_invalid_key_is_permanent_and_the_key_is_never_logged(wecom, clock, caplog):
    caplog.set_level(logging.DEBUG)
    channel = robot(wecom, clock, key="secret-wrong-key-123")
    result = channel.send(Message("markdown", "x"))
    assert result.outcome is Outcome.PERMANENT and result.reason == "invalid_key"
    assert wecom.errcodes == [93000]
    wecom.down("refused")
    assert channel.send(Message("markdown", "x")).outcome is Outcome.RETRY
    assert "secret-wrong-key-123" not in caplog.text
    assert "secret-wrong-key-123" not in repr(channel)


def test_too_long_content_is_refused_permanently_by_the_server(wecom, clock):
    # The renderer never produces this; the channel must still not retry it forever.
    result = robot(wecom, clock).send(Message("markdown", "告" * 1366))  # 4098 bytes
    assert result.outcome is Outcome.PERMANENT and result.reason == "content_rejected"
    assert wecom.errcodes == [40058]


def test_paces_twenty_a_minute_without_sending_or_dropping(wecom, clock):
    channel = robot(wecom, clock)
    results = []
    for i in range(25):
        clock.advance(0.5)
        results.append(channel.send(Message("markdown", f"消息 {i}")))
    sent = [r for r in results if r.outcome is Outcome.SENT]
    paced = [r for r in results if r.outcome is Outcome.RETRY]
    assert len(sent) == 20 and len(paced) == 5
    assert all(r.reason == "paced" and not r.count_attempt for r in paced)
    # The first send was at t+0.5; at t+12.5 the window frees in 48 s.
    assert paced[0].retry_after == pytest.approx(60 - 10.0)
    assert wecom.requests == 20 and 45009 not in wecom.errcodes
    clock.advance(paced[-1].retry_after)
    assert channel.send(Message("markdown", "消息 20")).outcome is Outcome.SENT


def test_server_rate_limit_backs_off_the_whole_channel(wecom, clock):
    # Another system shares the robot: it already used the minute's 20 messages.
    for i in range(20):
        answer = requests.post(wecom.robot_url("robot-key-1"), timeout=5,
                               json={"msgtype": "text", "text": {"content": f"other {i}"}})
        assert answer.json()["errcode"] == 0
    channel = robot(wecom, clock)
    result = channel.send(Message("markdown", "ours"))
    assert result.outcome is Outcome.RETRY and result.reason == "rate_limited"
    assert result.retry_after == 60 and result.count_attempt
    clock.advance(30)
    held = channel.send(Message("markdown", "ours"))
    assert held.reason == "paced" and not held.count_attempt and held.retry_after == pytest.approx(30)
    assert wecom.errcodes.count(45009) == 1
    clock.advance(30)
    assert channel.send(Message("markdown", "ours")).outcome is Outcome.SENT


def test_channels_on_the_same_robot_share_its_twenty(wecom, clock):
    first_line = robot(wecom, clock)
    second_line = TypeAdapter(ChannelConfig).validate_python(
        {"type": "wechat_robot", "name": "second", "webhook_url": wecom.robot_url("robot-key-1")})
    second = build_channel(second_line, clock=clock)
    other_robot = robot(wecom, clock, key="robot-key-2")
    outcomes = [ch.send(Message("text", "x")).outcome for _ in range(10) for ch in (first_line, second)]
    assert outcomes.count(Outcome.SENT) == 20
    assert first_line.send(Message("text", "x")).reason == "paced"
    assert second.send(Message("text", "x")).reason == "paced"
    assert other_robot.send(Message("text", "x")).outcome is Outcome.SENT
    assert 45009 not in wecom.errcodes


@pytest.mark.parametrize("how", ["refused", "502"])
def test_wecom_down_is_retryable_then_recovers(wecom, clock, how):
    channel = robot(wecom, clock)
    wecom.down(how)
    result = channel.send(Message("markdown", "x"))
    assert result.outcome is Outcome.RETRY
    assert result.reason == ("network" if how == "refused" else "http_5xx")
    wecom.up()
    assert channel.send(Message("markdown", "x")).outcome is Outcome.SENT
    assert len(wecom.accepted) == 1


def test_webhook_url_form_and_file(wecom, clock, tmp_path):
    path = tmp_path / "robot.url"
    path.write_text(wecom.robot_url("robot-key-2") + "\n")
    cfg = ADAPTER.validate_python({"type": "wechat_robot", "name": "b", "webhook_url_file": str(path)})
    assert build_channel(cfg, clock=clock).send(Message("text", "hi")).outcome is Outcome.SENT
    assert wecom.accepted[0].via == "robot:robot-key-2"


def test_env_reference_for_the_key(wecom, clock, monkeypatch):
    monkeypatch.setenv("WECOM_ROBOT_KEY", "robot-key-1")
    assert robot(wecom, clock, key="${WECOM_ROBOT_KEY}").send(Message("text", "x")).outcome is Outcome.SENT


@pytest.mark.parametrize(("cfg", "words"), [
    ({"type": "wechat_robot", "name": "a"}, "exactly one of webhook_url"),
    ({"type": "wechat_robot", "name": "a", "key": "k", "webhook_url": "u"}, "exactly one"),
    ({"type": "wechat_robot", "name": "a", "key": "k", "max_per_minute": 30}, "max_per_minute"),
    ({"type": "wechat_robot", "name": "a", "webhook_url": "k"}, "whole URL"),
    ({"type": "wechat_robot", "name": "a", "key": "k", "colour": "red"}, "colour"),
    ({"type": "wechat_robot", "name": "a b", "key": "k"}, "name"),
    ({"type": "pager", "name": "a"}, "type"),
    ({"type": "wechat_app", "name": "a", "corp_id": "c", "agent_id": 1, "secret": "s"}, "recipient"),
])
def test_bad_config_names_the_key(cfg, words):
    with pytest.raises(ValidationError) as info:
        parse_channels([cfg])
    assert words in str(info.value)
    assert "'k'" not in str(info.value)


def test_console_channel_appends_to_its_file(tmp_path, capsys):
    cfg = ADAPTER.validate_python({"type": "console", "name": "demo", "path": str(tmp_path / "m" / "x.log")})
    channel = build_channel(cfg)
    assert channel.send(Message("markdown", "## 告警一")).outcome is Outcome.SENT
    assert channel.send(Message("text", "请响应", mentioned_mobiles=("13800138000",))).outcome is Outcome.SENT
    written = (tmp_path / "m" / "x.log").read_text(encoding="utf-8")
    assert written.index("## 告警一") < written.index("请响应") and "[text] @1" in written
    assert "13800138000" not in written
    assert "## 告警一" in capsys.readouterr().out
