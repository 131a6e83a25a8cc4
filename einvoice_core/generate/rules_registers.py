"""Alert rules about the scorecard's records (issue 19), kept apart from rules.py: the bureau's
deadline for hardening a vulnerability (seed §二.10; scorecard line 12).

The notifier exports the deadline of every vulnerability not yet hardened as
`einvoice_vulnerability_deadline_timestamp_seconds{vulnerability,system,level}` (registers.py);
hardening it removes the series, which ends the alert.
"""

from __future__ import annotations

from typing import Any

from einvoice_core.thresholds import Thresholds, duration_seconds

DEADLINE_METRIC = "einvoice_vulnerability_deadline_timestamp_seconds"
LEVEL_ZH = ('{{ if eq $labels.level "high" }}高危{{ else if eq $labels.level "medium" }}中危'
            '{{ else if eq $labels.level "low" }}低危{{ else }}{{ $labels.level }}{{ end }}')


def register_rules(th: Thresholds) -> list[dict[str, Any]]:
    """Alert rules appended to the monitoring group (einvoice-monitoring.rules.yml)."""
    warn_days = duration_seconds(th.monitoring.vulnerability_due_warning) / 86400
    runbook = f"{th.runbook_url}#einvoicevulnerabilityhardening"
    which = f"系统 {{{{ $labels.system }}}} 的漏洞 {{{{ $labels.vulnerability }}}}（{LEVEL_ZH}）"
    return [
        {
            "alert": "EinvoiceVulnerabilityHardeningDue",
            "expr": f"({DEADLINE_METRIC} - time()) / 86400 < {warn_days:g} > 0",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"漏洞 {{{{ $labels.vulnerability }}}}（{LEVEL_ZH}）加固期限将至",
                "description": (which + "距税务局要求的加固期限还剩 {{ printf \"%.1f\" $value }} 天，"
                                "尚未登记加固。请按计划加固并在工单控制台“漏洞登记”页填写加固时间与加固留档记录。"),
                "runbook_url": runbook,
            },
        },
        {
            "alert": "EinvoiceVulnerabilityHardeningOverdue",
            "expr": f"(time() - {DEADLINE_METRIC}) / 3600 > 0",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"漏洞 {{{{ $labels.vulnerability }}}}（{LEVEL_ZH}）已超过加固期限",
                "description": (which + "已超过税务局要求的加固期限 {{ printf \"%.1f\" $value }} 小时，"
                                "仍未登记加固。请立即加固或向税务局说明，并在“漏洞登记”页补记加固留档记录。"),
                "runbook_url": runbook,
            },
        },
    ]
