"""What the dashboards query, and which series the bundle can produce: read from the files themselves.

Queries come from the committed JSON (panel targets and template-variable queries). The series the
bundle produces are read statically from its code and rule files, not listed by hand: metric names
passed to `MetricSet.gauge/counter`, the runtime's `Builtin` table and prometheus_client metric
constructors in the exporter and notifier packages, and every `record:` in alert_rules/*.yml.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "grafana_dashboards"

PROMETHEUS_BUILTIN = frozenset({
    "ALERTS", "ALERTS_FOR_STATE", "up", "scrape_duration_seconds", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added",
})
"""Series Prometheus writes itself (alerting rules' state and the per-target scrape series)."""

# -- PromQL -------------------------------------------------------------------------------------------

_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                       "or", "unless", "offset", "inf", "nan", "atan2"})
_GRAFANA_RANGES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "30s"}


def substitute(expr: str, all_values: dict[str, str] | None = None) -> str:
    """Grafana's macros and template variables replaced as Grafana would with "All" selected
    (the variable's `allValue`, `.*` when it has none)."""
    for macro, value in _GRAFANA_RANGES.items():
        expr = expr.replace(macro, value)
    values = all_values or {}
    return re.sub(r"\$\{?([A-Za-z_]\w*)\}?", lambda m: values.get(m.group(1), ".*"), expr)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (a small lexer: enough for our expressions).

    Strings, label matchers, ranges and grouping clauses are removed; what remains as a bare
    identifier that is not a function call or a keyword is a metric name.
    """
    text = substitute(expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', text)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", text):
        name = match.group()
        if name in _KEYWORDS or re.match(r"\s*\(", text[match.end():]):
            continue
        names.add(name)
    return names


def variable_expr(definition: str) -> str:
    """The PromQL inside a Grafana Prometheus variable query."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", definition, re.S)
    if match:
        return match.group(1)
    match = re.fullmatch(r"\s*query_result\((.*)\)\s*", definition, re.S)
    if match:
        return match.group(1)
    raise ValueError(f"unsupported variable query: {definition}")


# -- dashboards ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    dashboard: str
    """uid of the dashboard."""
    panel: str
    """Panel title, or `$name` for a template variable."""
    ref: str
    expr: str
    all_values: tuple[tuple[str, str], ...] = ()
    """The dashboard's variables and the value "All" stands for."""

    @property
    def resolved(self) -> str:
        """The expression as Grafana sends it with every variable on "All"."""
        return substitute(self.expr, dict(self.all_values))

    @property
    def key(self) -> str:
        return f"{self.dashboard}/{self.panel}/{self.ref}"


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(directory.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries(boards: dict[str, dict[str, Any]]) -> list[Query]:
    result = []
    for board in boards.values():
        variables = board["templating"]["list"]
        all_values = tuple((var["name"], var.get("allValue") or ".*") for var in variables)
        for panel in panels(board):
            for target in panel.get("targets", []):
                result.append(Query(board["uid"], panel["title"], target["refId"], target["expr"],
                                    all_values))
        for var in variables:
            if var["type"] == "query":
                # the Prometheus datasource's query object; the SDK's variable model has no
                # `definition` (Grafana's display copy of the same text)
                definition = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                result.append(Query(board["uid"], f"${var['name']}", "var", variable_expr(definition),
                                    all_values))
    return result


# -- what the bundle produces -------------------------------------------------------------------------

_DECLARING_CALLS = {"gauge", "counter", "histogram", "Builtin", "GaugeMetricFamily", "CounterMetricFamily",
                    "HistogramMetricFamily", "SummaryMetricFamily", "InfoMetricFamily", "Gauge", "Counter",
                    "Histogram", "Summary", "Info", "Enum"}
_HISTOGRAMS = {"histogram", "Histogram", "HistogramMetricFamily", "Summary", "SummaryMetricFamily"}
_COUNTERS = {"Counter", "CounterMetricFamily"}


def declared_metrics(package: Path, prefixes: tuple[str, ...]) -> set[str]:
    """Names a package declares: the first string argument (or `name=`) of a metric-declaring call,
    with the suffixes prometheus_client adds (`_total` for counters, `_bucket/_sum/_count`), and
    string constants that are a whole metric name with one of `prefixes` (collectors keep tables
    of INFO field -> metric name), and `f"<prefix>{key}"` names over the module's snake_case
    constants (a static over-approximation: the live test checks what really appears)."""
    names: set[str] = set()
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        words = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                 and isinstance(node.value, str) and re.fullmatch(r"[a-z][a-z0-9_]{0,40}", node.value)}
        for node in ast.walk(tree):
            head = node.values[0] if isinstance(node, ast.JoinedStr) and len(node.values) == 2 else None
            if isinstance(head, ast.Constant) and str(head.value).startswith(prefixes):
                # f"elasticsearch_cluster_health_{key}" over a table of keys in the same module
                names.update(f"{head.value}{word}" for word in words)
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value.startswith(prefixes) and re.fullmatch(r"[a-z_][a-z0-9_]*", node.value)):
                names.add(node.value)
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called not in _DECLARING_CALLS:
                continue
            arg = node.args[0] if node.args else next(
                (kw.value for kw in node.keywords if kw.arg == "name"), None)
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                continue
            name = arg.value
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                continue
            names.add(name)
            if called in _COUNTERS:
                names.add(name.removesuffix("_total") + "_total")
            if called in _HISTOGRAMS:
                names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return names


def recorded_series(rules_dir: Path = REPO / "alert_rules") -> set[str]:
    names = set()
    for path in sorted(rules_dir.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for group in doc.get("groups", []) if isinstance(doc, dict) else []:
            for rule in group.get("rules", []):
                if "record" in rule:
                    names.add(rule["record"])
    return names


def rule_files(rules_dir: Path = REPO / "alert_rules") -> list[Path]:
    return sorted(rules_dir.glob("*.rules.yml"))


def exporter_metrics() -> set[str]:
    declared = declared_metrics(REPO / "exporters" / "einvoice_exporter",
                                ("probe_", "redis_", "elasticsearch_", "kafka_", "einvoice_", "wls_",
                                 "container_"))
    return declared | sql_template_metrics()


def sql_template_metrics() -> set[str]:
    """`einvoice_sql_<column>` of the value columns of config/example.yml's SQL checks: the `sql` kind
    names its series after the configured columns, so the ready-made checks are what produce them."""
    config = yaml.safe_load((REPO / "config" / "example.yml").read_text(encoding="utf-8"))
    return {f"einvoice_sql_{column}" for module in config["modules"].values() if module["kind"] == "sql"
            for query in module["sql"]["queries"] for column in query["values"]}


def notifier_metrics() -> set[str]:
    return declared_metrics(REPO / "notifier" / "einvoice_notifier",
                            ("einvoice_notifier_", "einvoice_change_", "einvoice_vulnerabilit"))
