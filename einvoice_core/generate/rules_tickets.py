"""Alert rules about the ticket work itself (issue 18), kept apart from rules.py: the duty roster.

An important period is staffed around the clock (on-site 7×24, second line always): a stretch of it
that the roster leaves empty means an alert at night would reach nobody, so it is an alert itself,
raised while there is still time to find someone. The notifier computes the gaps from its roster and
calendar and exports `einvoice_notifier_roster_uncovered_shifts{line}` (the stretches, from now to a
day ahead, with a gap).
"""

from __future__ import annotations

from typing import Any

from einvoice_core.contract import ROUTE_ZH, Route
from einvoice_core.thresholds import Thresholds

ROSTER_METRIC = "einvoice_notifier_roster_uncovered_shifts"


def ticket_rules(th: Thresholds) -> list[dict[str, Any]]:
    """Alert rules appended to the monitoring group (einvoice-monitoring.rules.yml)."""
    first, second = ROUTE_ZH[Route.FIRST_LINE], ROUTE_ZH[Route.SECOND_LINE]
    line_zh = (f'{{{{ if eq $labels.line "{Route.FIRST_LINE.value}" }}}}{first}'
               f'{{{{ else if eq $labels.line "{Route.SECOND_LINE.value}" }}}}{second}'
               "{{ else }}{{ $labels.line }}{{ end }}")
    for_ = th.monitoring.roster_uncovered_for
    return [{
        "alert": "EinvoiceRosterUncoveredShift",
        "expr": f"{ROSTER_METRIC} > 0",
        "for": for_,
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": f"重要时期{line_zh}有 {{{{ $value }}}} 个班次无人值班",
            "description": (f"值班表中，未来 24 小时内重要时期的{line_zh}有 {{{{ $value }}}} "
                            "个班次无人或未排满（重要时期需 7×24 值守）。"
                            "请在工单控制台“值班表”页补排值班人员，否则该时段的告警消息无人接收。"),
            "runbook_url": f"{th.runbook_url}#einvoicerosteruncoveredshift",
        },
    }]
