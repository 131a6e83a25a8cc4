"""redact() against the corpus of realistic alert texts, and the check-digit rules it relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from einvoice_notifier.messaging.redact import (
    MARK_PHONE,
    id_card_valid,
    org_code_valid,
    redact,
    uscc_valid,
)
from hypothesis import given
from hypothesis import strategies as st

CORPUS = yaml.safe_load((Path(__file__).parent / "redaction_corpus.yml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CORPUS["redacted"], ids=lambda c: c["text"][:30])
def test_corpus_redacted(case):
    assert redact(case["text"], keep=case.get("keep", ())) == case["expect"]


@pytest.mark.parametrize("text", CORPUS["unchanged"], ids=lambda t: t[:30])
def test_corpus_left_alone(text):
    assert redact(text) == text


def test_corpus_is_substantial():
    assert len(CORPUS["redacted"]) >= 25 and len(CORPUS["unchanged"]) >= 20


def test_check_digits_follow_the_standards():
    # Published example in GB 32100-2015 discussions: a one-character change breaks the check.
    assert uscc_valid("91450103198765432P")
    assert not uscc_valid("91450103198765432Q")
    assert not uscc_valid("91450103198765432I")  # I is not in the code's character set
    assert id_card_valid("11010519491231002X")  # the example printed in GB 11643-1999
    assert not id_card_valid("110105194912310021")
    assert not id_card_valid("110105194913310025")  # month 13
    assert org_code_valid("D2143569X")  # the example in GB 11714-1997
    assert not org_code_valid("D21435691")


def test_redaction_is_idempotent_and_keeps_the_at_list():
    text = "值班 13800138000，来电 13907712345，税号 91450103198765432P"
    once = redact(text, keep=["13800138000"])
    assert redact(once, keep=["13800138000"]) == once
    assert "13800138000" in once and "13907712345" not in once and once.count(MARK_PHONE) == 1


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_counter_values_after_their_name_survive(value):
    text = f"offset={value} lag {value}"
    assert redact(text) == text


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), st.text(alphabet="告警服务 ，。", max_size=8))
def test_any_mobile_in_chinese_text_is_hidden(mobile, filler):
    out = redact(f"{filler}{mobile}{filler}")
    assert mobile not in out and MARK_PHONE in out
