"""The landing page: the configured checks and their last results, in Simplified Chinese.

Rendered from state only (it never runs a check), and every value is HTML-escaped: targets and
failure details come from configuration and from remote systems.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

from einvoice_core.catalogue import ZONE_NAMES_ZH, Zone, get_item
from einvoice_core.contract import REASON_ZH

from .runtime import CheckRow

_BEIJING = dt.timezone(dt.timedelta(hours=8))

_STYLE = """
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.up { color: #1a7f37; font-weight: bold; }
.down { color: #cf222e; font-weight: bold; }
.pending { color: #777; }
.detail { color: #555; font-size: 12px; }
"""


def _time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, _BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return "每次抓取"
    return f"{value:g} 秒"


def _row(row: CheckRow) -> str:
    item = get_item(row.item)
    zone = ZONE_NAMES_ZH.get(Zone(row.zone), row.zone)
    last = row.last
    if last is None:
        result, reason, detail, when, took = '<span class="pending">尚未运行</span>', "", "", "", ""
    else:
        result = '<span class="up">正常</span>' if last.up else '<span class="down">异常</span>'
        failure = last.outcome.failure
        reason = escape(REASON_ZH.get(failure.reason, failure.reason.value)) if failure else ""
        detail = escape(failure.detail) if failure else ""
        when = _time(last.started)
        took = f"{last.duration:.3f} 秒"
    cells = [
        escape(row.name),
        f"{escape(item.id)} {escape(item.name_zh)}",
        escape(zone),
        f"{escape(row.module)}（{escape(row.kind)}）",
        escape(row.target),
        _seconds(row.interval),
        result,
        f'{reason}<div class="detail">{detail}</div>' if detail else reason,
        escape(when),
        escape(took),
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def render(rows: Sequence[CheckRow], version: str, reload_ok: bool, reload_error: str) -> str:
    """The whole page as one HTML string."""
    up = sum(1 for row in rows if row.last is not None and row.last.up)
    down = sum(1 for row in rows if row.last is not None and not row.last.up)
    body_rows = "\n".join(_row(row) for row in rows) or '<tr><td colspan="10">未配置任何检查</td></tr>'
    reload_note = "" if reload_ok else (
        '<p class="down">最近一次重新加载配置失败，仍在使用旧配置：</p>'
        f'<pre class="detail">{escape(reload_error)}</pre>')
    headers = ["检查名称", "监控项", "区域", "模块（类型）", "目标", "运行间隔", "最近结果", "原因",
               "最近运行（北京时间）", "耗时"]
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>广西增值税电子发票公共服务平台 监控采集器</title>
<style>{_STYLE}</style></head>
<body>
<h1>广西增值税电子发票公共服务平台 监控采集器</h1>
<p>版本 {escape(version)} · 共 {len(rows)} 项检查，正常 {up} 项，异常 {down} 项，
尚未运行 {len(rows) - up - down} 项。结果来自最近一次抓取；本页不会触发检查。</p>
<p><a href="metrics">指标（/metrics）</a> · <a href="-/healthy">健康状态（/-/healthy）</a> ·
多目标探测：<code>/probe?module=模块名&amp;target=目标</code></p>
{reload_note}
<table>
<thead><tr>{"".join(f"<th>{h}</th>" for h in headers)}</tr></thead>
<tbody>
{body_rows}
</tbody>
</table>
</body>
</html>
"""
