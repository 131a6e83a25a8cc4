"""The local page of the last matching line per pattern class (`/logs`), in Simplified Chinese.

Served only by the exporter on the host itself (behind its web-config auth like every route). Lines
are redacted as the notifier redacts (taxpayer IDs, invoice numbers, phone and ID-card numbers)
when the page is rendered, and HTML-escaped; they never leave the host otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from html import escape

_BEIJING = dt.timezone(dt.timedelta(hours=8))


def render(matches: Mapping[str, Mapping[str, Mapping[str, tuple[float, str]]]]) -> str:
    """module -> target -> class -> (time, redacted line)."""
    rows = []
    for module, targets in sorted(matches.items()):
        for target, classes in sorted(targets.items()):
            for klass, (when, line) in sorted(classes.items()):
                stamp = dt.datetime.fromtimestamp(when, _BEIJING).strftime("%Y-%m-%d %H:%M:%S")
                shown = escape(line) or "（重启前的匹配，内容未保存）"
                rows.append(f"<tr><td>{escape(module)}</td><td>{escape(target)}</td><td>{escape(klass)}</td>"
                            f"<td>{stamp}</td><td><code>{shown}</code></td></tr>")
    body = "\n".join(rows) or '<tr><td colspan="5">尚无匹配的日志行。</td></tr>'
    return ("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head><meta charset=\"utf-8\">"
            "<title>日志规则最近匹配</title></head>\n<body>\n<h1>日志规则最近匹配（每个类别最近一行，已脱敏）</h1>\n"
            "<table border=\"1\" cellpadding=\"4\">\n<thead><tr><th>模块</th><th>日志源</th><th>类别</th>"
            f"<th>时间（北京时间）</th><th>内容</th></tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n"
            "</body>\n</html>\n")
