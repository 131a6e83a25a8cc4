"""Parameter-drift alert (issue 14): the file `einvoice-params.rules.yml` and its promtool tests
`tests/params.test.yml`, from the series of the `params` kind (exporters/einvoice_exporter/collectors/
params.py): `einvoice_param_drift{param}` is 1 while a declared parameter differs from
config/baseline/params.yml, and `einvoice_param_info{param,value,expected}` carries the two values
(secrets as `(set)`/`(unset)`), which the description quotes.

Kept apart from rules.py, which adds the two files with one line each.
"""

from __future__ import annotations

from typing import Any

from einvoice_core.catalogue import Severity
from einvoice_core.thresholds import Thresholds, duration_seconds

FILE_NAME = "einvoice-params.rules.yml"
TEST_FILE_NAME = "tests/params.test.yml"
ALERT = "EinvoiceParameterDrift"
DRIFT_FOR = "5m"
"""Long enough for a restart that re-reads a file to settle; short enough that a change is seen the
same hour. Declared here only: the report reads the series, not this rule."""
BASELINE = "config/baseline/params.yml"
INFO_QUERY = ('printf "einvoice_param_info{check=%q,target=%q,param=%q}" '
              "$labels.check $labels.target $labels.param")
VALUES = (f"{{{{ with {INFO_QUERY} | query }}}}{{{{ with first . }}}}当前值 {{{{ .Labels.value }}}}，"
          "基线值 {{ .Labels.expected }}。{{ end }}{{ end }}")


def _rule(th: Thresholds) -> dict[str, Any]:
    from einvoice_core.generate.rules import _alert

    return _alert(
        th, ALERT, "einvoice_param_drift == 1", Severity.WARNING,
        "【{{ $labels.item }}】参数 {{ $labels.param }} 与基线不一致",
        "检查 {{ $labels.check }}（{{ $labels.target }}）读到的参数 {{ $labels.param }} 与已提交的基线 "
        f"{BASELINE} 不一致，已持续 {DRIFT_FOR.replace('m', ' 分钟')}。{VALUES}"
        "如为经过评审的有意变更，请更新基线并提交；否则请恢复该参数。变更记录见《参数配置报告》。",
        for_=DRIFT_FOR)


def groups(th: Thresholds) -> list[dict[str, Any]]:
    return [{"name": "einvoice-params", "interval": th.evaluation_interval, "rules": [_rule(th)]}]


def rule_file(th: Thresholds) -> dict[str, str]:
    from einvoice_core.generate.rules import HEADER, dump

    return {FILE_NAME: HEADER + dump({"groups": groups(th)})}


# --------------------------------------------------------------------------------------------
# promtool tests: quiet before `for:` has run out, firing after with both values quoted, and
# quiet again once the parameter is put back

CHANGE = 6
BASE = {"item": "12", "zone": "intranet", "check": "session-redis-params", "target": "10.1.3.1:6379"}


def tests(th: Thresholds) -> list[dict[str, Any]]:
    rule = _rule(th)
    for_m = int(duration_seconds(DRIFT_FOR) // 60)
    back = CHANGE + for_m + 10
    labels = {**BASE, "param": "maxmemory-policy"}

    def series(name: str, extra: dict[str, str], values: str) -> dict[str, str]:
        rendered = ",".join(f'{k}="{v}"' for k, v in {**labels, **extra}.items())
        return {"series": f"{name}{{{rendered}}}", "values": values}

    exp_labels = {**labels, **rule["labels"]}
    description = (
        f"检查 {BASE['check']}（{BASE['target']}）读到的参数 maxmemory-policy "
        f"与已提交的基线 {BASELINE} 不一致，"
        f"已持续 {for_m} 分钟。当前值 noeviction，基线值 allkeys-lru。"
        "如为经过评审的有意变更，请更新基线并提交；否则请恢复该参数。变更记录见《参数配置报告》。")
    return [{
        "interval": "1m",
        "name": f"{ALERT} fires after {DRIFT_FOR} of drift and clears when the parameter is restored",
        "input_series": [
            series("einvoice_param_drift", {}, f"0x{CHANGE - 1} 1x{back - CHANGE} 0x10"),
            series("einvoice_param_info", {"value": "allkeys-lru", "expected": "allkeys-lru"},
                   f"1x{CHANGE - 1} _x{back - CHANGE} 1x10"),
            series("einvoice_param_info", {"value": "noeviction", "expected": "allkeys-lru"},
                   f"_x{CHANGE - 1} 1x{back - CHANGE}"),
        ],
        "alert_rule_test": [
            {"eval_time": f"{CHANGE + for_m - 1}m", "alertname": ALERT, "exp_alerts": []},
            {"eval_time": f"{CHANGE + for_m + 1}m", "alertname": ALERT,
             "exp_alerts": [{"exp_labels": exp_labels, "exp_annotations": {
                 "summary": f"【{BASE['item']}】参数 maxmemory-policy 与基线不一致",
                 "description": description,
                 "runbook_url": rule["annotations"]["runbook_url"]}}]},
            {"eval_time": f"{back + 2}m", "alertname": ALERT, "exp_alerts": []},
        ],
    }]


def test_file(th: Thresholds) -> dict[str, str]:
    from einvoice_core.generate.rules import HEADER, dump

    doc = {"rule_files": [f"../{FILE_NAME}"], "evaluation_interval": "1m", "tests": tests(th)}
    return {TEST_FILE_NAME: HEADER + dump(doc)}
