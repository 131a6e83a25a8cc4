"""Remove taxpayer data from text before it leaves for WeChat Work (a public cloud, SPEC §5).

Two kinds of evidence decide what is replaced:

- context: a keyword such as 纳税人识别号, 发票号码 or 手机 right before a value redacts the value
  whatever its shape (an 8-digit 发票号码 looks like any other number without its label);
- a name ending like a registered business (…有限公司, …商行) is a taxpayer's name; after a label
  such as 购买方名称 the value up to the next delimiter is one whatever its ending;
- shape with a check digit: a 统一社会信用代码 (GB 32100-2015), an ID card number (GB 11643), an old
  15-character 纳税人识别号 (region code + organisation code of GB 11714), a 20-digit 全电发票号码
  (no int64 has 20 digits, so no metric value or offset looks like one), a 12-digit 发票代码 with its
  leading 0, a mainland mobile or a landline written with its area code.

Timestamps, durations, ports, IPs, metric values, ticket ids, version strings and Kafka offsets have
none of these shapes, and the corpus in tests/notifier/messaging/redaction_corpus.yml keeps it so.
Standard library only: the notifier (messages, links) and the exporter (SQL checks) share these detectors.
A redacted value becomes a short Chinese marker that says what was there, never part of the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date

MARK_TAX_ID = "〔税号已隐藏〕"
MARK_INVOICE = "〔发票号已隐藏〕"
MARK_PHONE = "〔电话已隐藏〕"
MARK_ID_CARD = "〔证件号已隐藏〕"
MARK_NAME = "〔纳税人名称已隐藏〕"

_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
    "71", "81", "82",
})


def uscc_valid(code: str) -> bool:
    """统一社会信用代码 check character, GB 32100-2015: weights 3^i mod 31 over a 31-character set."""
    if len(code) != 18 or any(ch not in _USCC_CHARSET for ch in code):
        return False
    if code[0] not in "123456789ABCDEFGY" or not code[2:8].isdigit():
        return False
    total = sum(_USCC_CHARSET.index(ch) * w for ch, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    return _USCC_CHARSET[(31 - total % 31) % 31] == code[17]


def org_code_valid(code: str) -> bool:
    """组织机构代码 (GB 11714) check character over 8 digits/letters: 11 - sum mod 11, 10 -> X."""
    if len(code) != 9 or not code[:8].isalnum() or not code[:8].isascii():
        return False
    values = [int(ch) if ch.isdigit() else ord(ch) - 55 for ch in code[:8]]
    remainder = 11 - sum(v * w for v, w in zip(values, _ORG_WEIGHTS, strict=True)) % 11
    expected = "X" if remainder == 10 else "0" if remainder == 11 else str(remainder)
    return code[8] == expected


def _date_ok(year: int, month: int, day: int) -> bool:
    try:
        born = date(year, month, day)
    except ValueError:
        return False
    return date(1900, 1, 1) <= born <= date(2100, 1, 1)


def id_card_valid(number: str) -> bool:
    """18-character ID number (GB 11643): province, a real birth date and the ISO 7064 check."""
    if len(number) != 18 or not number[:17].isdigit() or number[:2] not in _PROVINCES:
        return False
    if not _date_ok(int(number[6:10]), int(number[10:12]), int(number[12:14])):
        return False
    total = sum(int(ch) * w for ch, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def old_id_card_valid(number: str) -> bool:
    """15-digit ID number of the first generation: province and a birth date 19YYMMDD."""
    return (len(number) == 15 and number.isdigit() and number[:2] in _PROVINCES
            and _date_ok(1900 + int(number[6:8]), int(number[8:10]), int(number[10:12])))


def old_taxpayer_id_valid(code: str) -> bool:
    """15-character 纳税人识别号 before 2015: 6-digit region code + 9-character organisation code."""
    return (len(code) == 15 and code[:6].isdigit() and code[:2] in _PROVINCES
            and org_code_valid(code[6:]))


# A value stands alone: no letter or digit touches it, and no "1." or ".5" glues it into a number.
_BEFORE = r"(?<![0-9A-Za-z])(?<![0-9]\.)"
_AFTER = r"(?![0-9A-Za-z])(?!\.[0-9])"
_SEP = r"[\s:：=\"'是为]{0,4}"

_TAX_KEYS = (r"纳税人识别号|纳税识别号|统一社会信用代码|社会信用代码|信用代码|税务登记号|税号|识别号"
             r"|nsrsbh|taxpayer[_ -]?id|tax[_ -]?(?:id|no|number)|credit[_ -]?code|uscc")
_INVOICE_KEYS = (r"全电发票号码|数电发票号码|数电票号码|发票号码|发票代码|发票号|票号"
                 r"|fphm|fpdm|invoice[_ -]?(?:no|number|num|code|id)")
_ID_KEYS = r"公民身份号码|身份证号码|身份证号|身份证|证件号码|证件号|sfzh|id[_ -]?card(?:[_ -]?no)?"
_PHONE_KEYS = r"手机号码|手机号|手机|联系电话|电话号码|电话|联系方式|mobile|phone|tel"

_TAX_VALUE = r"[0-9A-Za-z]{15,20}"
_INVOICE_VALUE = r"[0-9]{8,20}"
_ID_VALUE = r"[0-9]{17}[0-9Xx]|[0-9]{15}"
_PHONE_VALUE = r"(?:\+?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}|0[0-9]{2,3}[ -]?[0-9]{7,8}|[0-9]{7,8}"
_LIST = r"(?:\s*[、,，;；/]\s*{tok})*"

_MOBILE = re.compile(_BEFORE + r"(?:\+?86[ -]?)?1[3-9][0-9](?:[ -]?[0-9]{4}){2}" + _AFTER)
_LANDLINE = re.compile(_BEFORE + r"0[0-9]{2,3}-[0-9]{7,8}" + _AFTER)
_ALNUM_RUN = re.compile(_BEFORE + r"[0-9A-Za-z]{15,20}" + _AFTER)
_INVOICE_CODE_12 = re.compile(_BEFORE + r"0[0-9]{11}" + _AFTER)
_NAME_KEYS = (r"纳税人名称|企业名称|单位名称|公司名称|购买方名称|销售方名称|购方名称|销方名称|购买方|销售方"
              r"|nsrmc|gfmc|xfmc|taxpayer[_ -]?name|company[_ -]?name")
_NAME_IN_CONTEXT = re.compile(rf"(?P<key>(?<![A-Za-z])(?:{_NAME_KEYS})(?:[\s:：=\"']{{1,4}}|为|是))"
                              r"(?P<value>[^\s,，;；。、\"'|&=<>()（）\[\]]{2,60})", re.IGNORECASE)
_BUSINESS_NAME = re.compile(r"[\u4e00-\u9fff（）()]{2,40}?"
                            r"(?:有限责任公司|股份有限公司|有限公司|分公司|合伙企业|个体工商户|经营部|门市部|商行)")
_COUNTER_BEFORE = re.compile(
    r"(?:offset|lag|end|偏移量?|积压|bytes|字节|耗时|次数|count|total)\s*[:：=]?\s*$", re.IGNORECASE)
_UNIT_AFTER = re.compile(r"^\s*(?:bytes|[KMGT]i?B|B|字节|ms|s)(?![A-Za-z])"
                         r"|^\s*[条张次](?:(?![\u4e00-\u9fff])|(?:发票|记录|消息|请求|告警|数据|失败|成功|重试))")
"""A number before a unit is a count. 条/张/次 are units only when no other ideograph follows them or
when a noun of counted things does: in `…5808 张先生`, `…9445 张伟` and `…1488次日` they start a name or
a word, and the digits before them are an identifier."""


def _contextual(keys: str, token: str) -> re.Pattern[str]:
    return re.compile(rf"(?P<key>(?<![A-Za-z])(?:{keys}){_SEP})(?P<value>{_BEFORE}(?:{token}){_AFTER}"
                      rf"{_LIST.format(tok=f'(?:{token}){_AFTER}')})", re.IGNORECASE)


_CONTEXTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (_contextual(_INVOICE_KEYS, _INVOICE_VALUE), MARK_INVOICE),
    (_contextual(_ID_KEYS, _ID_VALUE), MARK_ID_CARD),
    (_contextual(_TAX_KEYS, _TAX_VALUE), MARK_TAX_ID),
    (_contextual(_PHONE_KEYS, _PHONE_VALUE), MARK_PHONE),
)


_ANY_KEY = re.compile("|".join((_TAX_KEYS, _INVOICE_KEYS, _ID_KEYS, _PHONE_KEYS, _NAME_KEYS)), re.IGNORECASE)
_BUSINESS_SUFFIXES = ("公司", "合伙企业", "个体工商户", "经营部", "门市部", "商行")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _normalise_mobile(text: str) -> str:
    digits = _digits(text)
    return digits[-11:] if len(digits) >= 11 else digits


def _classify_run(run: str) -> str | None:
    """What a standalone 15-20 character run of digits and letters is, if it is taxpayer data (case
    does not matter: a lowercase `x` or a credit code typed in lower case is still one)."""
    run = run.upper()
    if len(run) == 20 and run.isdigit():
        return MARK_TAX_ID if id_card_valid(run[:18]) else MARK_INVOICE
    if len(run) == 18:
        if uscc_valid(run):
            return MARK_TAX_ID
        if id_card_valid(run):
            return MARK_ID_CARD
    if len(run) == 15:
        if run.isdigit() and old_id_card_valid(run):
            return MARK_ID_CARD
        if old_taxpayer_id_valid(run):
            return MARK_TAX_ID
    return None


def redact(text: str, keep: Iterable[str] = ()) -> str:
    """Replace taxpayer IDs and names, invoice numbers, phone numbers (except those in `keep`, the @
    list) and ID card numbers in `text` with markers; everything else is returned unchanged."""
    kept = {_normalise_mobile(k) for k in keep if _digits(k)}

    def phone_or_keep(value: str) -> str:
        return value if _normalise_mobile(value) in kept else MARK_PHONE

    labelled = _ANY_KEY.search(text) is not None  # most alert texts have no label: skip five passes
    for pattern, mark in _CONTEXTS if labelled else ():
        def replace(match: re.Match[str], mark: str = mark) -> str:
            value = match.group("value")
            if mark == MARK_PHONE:
                parts = re.split(r"(\s*[、,，;；/]\s*)", value)
                value = "".join(p if i % 2 else phone_or_keep(p) for i, p in enumerate(parts))
                return match.group("key") + value
            return match.group("key") + mark

        text = pattern.sub(replace, text)

    if labelled:
        text = _NAME_IN_CONTEXT.sub(lambda m: m.group("key") + MARK_NAME, text)
    if any(suffix in text for suffix in _BUSINESS_SUFFIXES):
        text = _BUSINESS_NAME.sub(MARK_NAME, text)
    text = _ALNUM_RUN.sub(_run_replacement(text), text)
    text = _sub_unless_counted(_INVOICE_CODE_12, text, lambda _value: MARK_INVOICE)
    text = _sub_unless_counted(_MOBILE, text, phone_or_keep)
    return _LANDLINE.sub(lambda m: phone_or_keep(m.group(0)), text)


def _sub_unless_counted(pattern: re.Pattern[str], text: str, replace: Callable[[str], str]) -> str:
    """Shape-only matches after a counter's name (offset, lag ...) or before a unit are numbers."""
    def one(match: re.Match[str]) -> str:
        if (_COUNTER_BEFORE.search(text[max(0, match.start() - 16):match.start()])
                or _UNIT_AFTER.match(text[match.end():match.end() + 8])):
            return match.group(0)
        return replace(match.group(0))

    return pattern.sub(one, text)


def _run_replacement(text: str) -> Callable[[re.Match[str]], str]:
    """A run whose check character holds is an identifier even before a unit; a 20-digit number (no
    check character) is one unless it is a counted quantity, like the other shape-only values."""
    def one(match: re.Match[str]) -> str:
        run = match.group(0)
        mark = _classify_run(run)
        if mark is None:
            return run
        if _COUNTER_BEFORE.search(text[max(0, match.start() - 16):match.start()]):
            return run
        checked = not (len(run) == 20 and mark == MARK_INVOICE)
        if not checked and _UNIT_AFTER.match(text[match.end():match.end() + 8]):
            return run
        return mark

    return one
