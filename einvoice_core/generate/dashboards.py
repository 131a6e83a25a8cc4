"""Generator of the Grafana dashboards (`grafana_dashboards/*.json`) from the catalogue.

Panels, queries, variables and dashboards are built with Grafana's typed SDK
(`grafana-foundation-sdk`, the build for the Grafana version of docker-compose.yml), so a misspelt
option or a wrong enum value is a type error, not a panel Grafana silently ignores. The 20 items,
their zones and Chinese names come from `einvoice_core.catalogue`, the SLA objectives from the
thresholds file, and a test regenerates the committed JSON and fails on any difference. Where the
SDK's model lacks a field the old files had, it is left out on purpose: `style` (gone from Grafana's
dashboard schema; the theme is the viewer's) and a query variable's `definition` (Grafana's display
copy of `query.query`). Every panel
queries `${datasource}` (a template variable of type prometheus), never a named datasource, so the
files import into any Grafana. Output is deterministic: sorted keys, ids assigned in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias, TypeVar

from grafana_foundation_sdk.builders import bargauge as sdk_bargauge
from grafana_foundation_sdk.builders import common as sdk_common
from grafana_foundation_sdk.builders import dashboard as sdk_dashboard
from grafana_foundation_sdk.builders import gauge as sdk_gauge
from grafana_foundation_sdk.builders import prometheus as sdk_prometheus
from grafana_foundation_sdk.builders import stat as sdk_stat
from grafana_foundation_sdk.builders import table as sdk_table
from grafana_foundation_sdk.builders import text as sdk_text
from grafana_foundation_sdk.builders import timeseries as sdk_timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm
from grafana_foundation_sdk.models import text as tm

from einvoice_core.catalogue import ITEMS, ZONE_NAMES_ZH, Item, Zone
from einvoice_core.contract import FAILURE_CLASS_ZH, TICKET_CLASS_ZH, FailureClass, TicketClass
from einvoice_core.generate import dashboards_data, dashboards_systems

Panel: TypeAlias = ("sdk_stat.Panel | sdk_gauge.Panel | sdk_bargauge.Panel | sdk_timeseries.Panel | "
                    "sdk_table.Panel | sdk_text.Panel | sdk_dashboard.Row")
"""A panel as Grafana's typed SDK builds it (a row is a panel of its own type)."""
Dashboard = dict[str, Any]
"""A dashboard as the JSON Grafana imports (the SDK's model, encoded)."""

DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
DATASOURCE_REF = dm.DataSourceRef(type_val=DATASOURCE["type"], uid=DATASOURCE["uid"])
TIMEZONE = "Asia/Shanghai"
TAG = "einvoice"
OUTPUT_DIR = "grafana_dashboards"

GREEN, AMBER, RED, GREY, BLUE = "green", "orange", "red", "#808080", "blue"

SERVICE_NAMES_ZH: dict[str, str] = {"intake": "受理服务", "processing": "处理服务", "pipeline": "数据管道"}
SEVERITY_NAMES_ZH: dict[str, str] = {"critical": "严重", "warning": "警告"}
SEVERITY_CLASS_NAMES_ZH: dict[str, str] = {cls.value: TICKET_CLASS_ZH[cls] for cls in TicketClass}
"""The notifier's ticket classes (label severity_class) by their contract names."""
TICKET_STATE_NAMES_ZH: dict[str, str] = {"open": "新建", "acknowledged": "已响应", "in_progress": "处理中",
                                         "resolved": "已解决", "closed": "已关闭"}
DEADLINE_NAMES_ZH: dict[str, str] = {"response": "响应时限", "resolution": "解决时限"}
CHANNEL_DOC = "消息通道（企业微信机器人、企业微信应用、控制台文件）"

NETWORK_ITEMS = ("01", "02", "05", "07", "08", "10", "19", "20")
PIPELINE_ITEMS = ("13", "14", "16", "17", "18", "19")
HOST_LOG_ITEMS = ("03", "04", "09")


@dataclass(frozen=True, slots=True)
class Objectives:
    """The SLA numbers the panels compare against (SPEC §3), read from the thresholds file.

    The defaults are the contract's own numbers; load_objectives() reads every one of them from the
    thresholds file, the same numbers the rules and the collectors' defaults use.
    """

    availability: float = 0.99863
    outage_budget_seconds: float = 12 * 3600
    max_single_outage_seconds: float = 2 * 3600
    restore_seconds: float = 30 * 60
    continuous_running_days: float = 182
    continuous_run: str = "182d"
    """thresholds.yaml continuity.continuous_run as written: the suffix of the recorded 6-month series."""
    local_resolution_ratio: float = 0.80
    one_time_resolution_ratio: float = 0.90
    cert_warning_days: float = 30
    cert_critical_days: float = 7
    probe_latency_seconds: float = 1.0
    redis_memory_ratio: float = 0.90
    es_heap_ratio: float = 0.85
    es_disk_ratio: float = 0.85
    kafka_lag_seconds: float = 300
    budget_remaining_warning_ratio: float = 0.25
    service_names: dict[str, str] = field(default_factory=lambda: dict(SERVICE_NAMES_ZH))
    service_items: dict[str, tuple[str, ...]] = field(default_factory=dict)


def load_objectives(path: Path | None = None) -> Objectives:
    """The objectives of `einvoice_core/thresholds.yaml` (the file the rules are generated from too)."""
    from einvoice_core import thresholds

    cfg = thresholds.load_thresholds(path or thresholds.DEFAULT_PATH)
    seconds = thresholds.duration_seconds
    kafka_lag = cfg.kafka.lag_seconds_warning
    return Objectives(
        availability=cfg.sla.objective,
        outage_budget_seconds=seconds(cfg.sla.yearly_outage_budget),
        max_single_outage_seconds=seconds(cfg.sla.max_single_outage),
        restore_seconds=seconds(cfg.sla.restore_within),
        budget_remaining_warning_ratio=cfg.sla.budget_remaining_warning_ratio,
        continuous_running_days=seconds(cfg.continuity.continuous_run) / 86400,
        continuous_run=cfg.continuity.continuous_run,
        cert_warning_days=cfg.certificates.warning_days,
        cert_critical_days=cfg.certificates.critical_days,
        probe_latency_seconds=cfg.latency.good_seconds,
        redis_memory_ratio=cfg.redis.memory_ratio_warning,
        es_heap_ratio=cfg.elasticsearch.heap_ratio_max,
        es_disk_ratio=cfg.elasticsearch.disk_ratio_max,
        local_resolution_ratio=cfg.tickets.local_resolution_min,
        one_time_resolution_ratio=cfg.tickets.one_time_resolution_min,
        kafka_lag_seconds=kafka_lag,
        service_names={key: cfg.services[key].name_zh for key in SERVICE_NAMES_ZH},
        service_items={key: tuple(cfg.services[key].items) for key in SERVICE_NAMES_ZH},
    )


# -- small builders (Grafana's typed SDK, grafana-foundation-sdk) ---------------------------------


class Override(NamedTuple):
    """A field override: which fields (matcher) get which properties."""

    matcher: dm.MatcherConfig
    properties: list[dm.DynamicConfigValue]


Thresholds: TypeAlias = sdk_dashboard.ThresholdsConfig
Mapping: TypeAlias = "dm.ValueMap | dm.RangeMap"


def steps(*pairs: tuple[float | None, str]) -> Thresholds:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return (sdk_dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=value, color=color) for value, color in pairs]))


def value_map(mapping: dict[str, str], colors: dict[str, str] | None = None) -> dm.ValueMap:
    colors = colors or {}
    return dm.ValueMap(options={key: dm.ValueMappingResult(text=text, color=colors.get(key), index=index)
                                for index, (key, text) in enumerate(mapping.items())})


def range_map(low: float, high: float, text: str, color: str, index: int) -> dm.RangeMap:
    return dm.RangeMap(options=dm.DashboardRangeMapOptions(
        from_val=low, to=high, result=dm.ValueMappingResult(text=text, color=color, index=index)))


def override(matcher: str, options: str, **properties: object) -> Override:
    """An override; property ids with dots are written with `__` (custom__cellOptions)."""
    return Override(dm.MatcherConfig(id_val=matcher, options=options),
                    [dm.DynamicConfigValue(id_val=key.replace("__", "."), value=value)
                     for key, value in properties.items()])


def rename(name: str, display: str) -> Override:
    return override("byName", name, displayName=display)


def service_overrides(obj: Objectives) -> list[Override]:
    """Series are legended by the `service` label; show the service's Chinese name instead."""
    return [rename(key, text) for key, text in obj.service_names.items()]


def query(expr: str, legend: str = "", *, instant: bool = False, table: bool = False,
          ref: str = "A") -> sdk_prometheus.Dataquery:
    target = (sdk_prometheus.Dataquery().expr(expr).ref_id(ref).legend_format(legend or "__auto")
              .datasource(DATASOURCE_REF))
    if table:
        return target.format(pm.PromQueryFormat.TABLE).instant()
    return target.instant() if instant else target.range()


PanelBuilder = TypeVar("PanelBuilder", sdk_stat.Panel, sdk_gauge.Panel, sdk_bargauge.Panel,
                       sdk_timeseries.Panel, sdk_table.Panel)


def _panel(panel: PanelBuilder, title: str, description: str, targets: Sequence[sdk_prometheus.Dataquery],
           w: int, h: int, *, unit: str | None = "none", thresholds: Thresholds | None = None,
           mappings: Sequence[Mapping] | None = None, decimals: int | None = None,
           minimum: float | None = None, maximum: float | None = None,
           overrides: Sequence[Override] = (), time_from: str | None = None) -> PanelBuilder:
    """What every query panel shares: text, the datasource variable, size, queries and field defaults."""
    panel.title(title).description(description).datasource(DATASOURCE_REF).span(w).height(h)
    panel.targets(list(targets))
    if unit is not None:
        panel.unit(unit).thresholds(thresholds or steps((None, GREEN))).mappings(list(mappings or []))
    if decimals is not None:
        panel.decimals(decimals)
    if minimum is not None:
        panel.min(minimum)
    if maximum is not None:
        panel.max(maximum)
    for matcher, properties in overrides:
        panel.with_override(matcher, properties)
    if time_from:
        panel.time_from(time_from)
    return panel


def _reduce_last() -> sdk_common.ReduceDataOptions:
    return sdk_common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def stat(title: str, description: str, targets: Sequence[sdk_prometheus.Dataquery], *, w: int = 6,
         h: int = 4, unit: str = "none", thresholds: Thresholds | None = None,
         mappings: Sequence[Mapping] | None = None, decimals: int | None = None,
         text_mode: str = "auto", value_size: int | None = None, title_size: int | None = None,
         graph: bool = False, overrides: Sequence[Override] = (),
         time_from: str | None = None, links: Sequence[tuple[str, str]] = (),
         color_mode: str = "background", orientation: str = "auto") -> Panel:
    """A big-number panel; `links` are (title, url) data links opened in the same tab."""
    panel = _panel(sdk_stat.Panel(), title, description, targets, w, h, unit=unit, thresholds=thresholds,
                   mappings=mappings, decimals=decimals, overrides=overrides, time_from=time_from)
    panel.color_scheme(sdk_dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    if links:
        panel.data_links([sdk_dashboard.DashboardLink(text).type(dm.DashboardLinkType.LINK).url(url)
                          .target_blank(False) for text, url in links])
    text = sdk_common.VizTextDisplayOptions()
    if value_size:
        text.value_size(value_size)
    if title_size:
        text.title_size(title_size)
    return (panel.reduce_options(_reduce_last()).color_mode(cm.BigValueColorMode(color_mode))
            .graph_mode(cm.BigValueGraphMode.AREA if graph else cm.BigValueGraphMode.NONE)
            .justify_mode(cm.BigValueJustifyMode.CENTER).text_mode(cm.BigValueTextMode(text_mode))
            .orientation(cm.VizOrientation(orientation)).wide_layout(True).show_percent_change(False)
            .text(text))


def gauge(title: str, description: str, targets: Sequence[sdk_prometheus.Dataquery], *, w: int = 6,
          h: int = 6, unit: str = "none", thresholds: Thresholds | None = None, minimum: float = 0,
          maximum: float = 1, decimals: int | None = None, overrides: Sequence[Override] = (),
          time_from: str | None = None) -> Panel:
    panel = _panel(sdk_gauge.Panel(), title, description, targets, w, h, unit=unit, thresholds=thresholds,
                   decimals=decimals, minimum=minimum, maximum=maximum, overrides=overrides,
                   time_from=time_from)
    return (panel.color_scheme(sdk_dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .reduce_options(_reduce_last()).show_threshold_labels(False).show_threshold_markers(True)
            .orientation(cm.VizOrientation.AUTO).min_viz_height(75).min_viz_width(75))


def bargauge(title: str, description: str, targets: Sequence[sdk_prometheus.Dataquery], *, w: int = 12,
             h: int = 6, unit: str = "none", thresholds: Thresholds | None = None, minimum: float = 0,
             maximum: float | None = None, overrides: Sequence[Override] = (),
             time_from: str | None = None) -> Panel:
    panel = _panel(sdk_bargauge.Panel(), title, description, targets, w, h, unit=unit,
                   thresholds=thresholds, minimum=minimum, maximum=maximum, overrides=overrides,
                   time_from=time_from)
    return (panel.color_scheme(sdk_dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .reduce_options(_reduce_last()).display_mode(cm.BarGaugeDisplayMode.GRADIENT)
            .orientation(cm.VizOrientation.HORIZONTAL).show_unfilled(True)
            .value_mode(cm.BarGaugeValueMode.COLOR).name_placement(cm.BarGaugeNamePlacement.AUTO)
            .sizing(cm.BarGaugeSizing.AUTO).min_viz_height(16).min_viz_width(8).max_viz_height(300))


def timeseries(title: str, description: str, targets: Sequence[sdk_prometheus.Dataquery], *, w: int = 12,
               h: int = 8, unit: str = "none", thresholds: Thresholds | None = None, stack: bool = False,
               minimum: float | None = None, maximum: float | None = None, bars: bool = False,
               overrides: Sequence[Override] = (), threshold_lines: bool = False,
               legend_calcs: Sequence[str] = ("lastNotNull", "max")) -> Panel:
    panel = _panel(sdk_timeseries.Panel(), title, description, targets, w, h, unit=unit,
                   thresholds=thresholds, minimum=minimum, maximum=maximum, overrides=overrides)
    return (panel.color_scheme(sdk_dashboard.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
            .draw_style(cm.GraphDrawStyle.BARS if bars else cm.GraphDrawStyle.LINE).line_width(1)
            .fill_opacity(80 if bars else 10).show_points(cm.VisibilityMode.NEVER).span_nulls(False)
            .axis_soft_min(0)
            .stacking(sdk_common.StackingConfig().group("A")
                      .mode(cm.StackingMode.NORMAL if stack else cm.StackingMode.NONE))
            .thresholds_style(sdk_common.GraphThresholdsStyleConfig().mode(
                cm.GraphThresholdsStyleMode.DASHED if threshold_lines else cm.GraphThresholdsStyleMode.OFF))
            .legend(sdk_common.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                    .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(list(legend_calcs)))
            .tooltip(sdk_common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI)
                     .sort(cm.SortOrder.DESCENDING)))


def table(title: str, description: str, targets: Sequence[sdk_prometheus.Dataquery], *, w: int = 24,
          h: int = 8, columns: dict[str, str], value_column: str = "Value", unit: str = "none",
          thresholds: Thresholds | None = None, mappings: dict[str, Sequence[Mapping]] | None = None,
          sort_by: str | None = None, descending: bool = False, color_cells: bool = True,
          value_mappings: Sequence[Mapping] | None = None) -> Panel:
    """A table of instant-query rows: `columns` maps label -> Chinese header (order kept), every other
    label is hidden, and the value column gets unit, thresholds and a coloured cell."""
    cells: object = (cm.TableColoredBackgroundCellOptions(mode=cm.TableCellBackgroundDisplayMode.BASIC)
                     if color_cells else cm.TableAutoCellOptions())
    value_properties: dict[str, object] = {"unit": unit, "custom__cellOptions": cells}
    if thresholds:
        value_properties["thresholds"] = thresholds.build()
    if value_mappings:
        value_properties["mappings"] = list(value_mappings)
    overrides = [override("byName", value_column, **value_properties)]
    overrides += [override("byName", label, mappings=column_mappings)
                  for label, column_mappings in (mappings or {}).items()]
    panel = _panel(sdk_table.Panel(), title, description, targets, w, h, unit=None, overrides=overrides)
    keep = [*columns, value_column]
    panel.thresholds(steps((None, GREEN))).mappings([])
    panel.align(cm.FieldTextAlignment.AUTO).filterable(True).cell_options(cm.TableAutoCellOptions())
    panel.show_header(True).cell_height(cm.TableCellHeight.SM)
    panel.footer(sdk_common.TableFooterOptions().show(False).reducer(["sum"]).fields([]))
    if sort_by:
        panel.sort_by([sdk_common.TableSortByFieldState().display_name(sort_by).desc(descending)])
    panel.with_transformation(dm.DataTransformerConfig(
        id_val="filterFieldsByName", options={"include": {"names": keep}}))
    panel.with_transformation(dm.DataTransformerConfig(id_val="organize", options={
        "excludeByName": {}, "indexByName": {name: index for index, name in enumerate(keep)},
        "renameByName": dict(columns)}))
    return panel


def text_panel(title: str, content: str, *, w: int = 24, h: int = 3) -> Panel:
    return (sdk_text.Panel().title(title).description("").span(w).height(h).mode(tm.TextMode.MARKDOWN)
            .content(content).code(sdk_text.CodeOptions().language(tm.CodeLanguage.PLAINTEXT)
                                   .show_line_numbers(False).show_mini_map(False)))


def row(title: str) -> Panel:
    return sdk_dashboard.Row(title).collapsed(False)


def _grid(panel: Panel) -> dm.GridPos:
    model = panel.build()
    if model.grid_pos is None:
        model.grid_pos = dm.GridPos(h=1, w=24) if isinstance(panel, sdk_dashboard.Row) else dm.GridPos()
    return model.grid_pos


def layout(panels: Iterable[Panel]) -> list[Panel]:
    """Flow panels left to right on Grafana's 24-column grid; a row starts a new line. Ids in order.

    The SDK's own flow (Dashboard.with_panel) places a panel that overflows the line before wrapping;
    positions are set here and the SDK keeps them."""
    placed: list[Panel] = []
    x = y = line_height = 0
    for index, panel in enumerate(panels, start=1):
        grid = _grid(panel)
        is_row = isinstance(panel, sdk_dashboard.Row)
        if is_row or x + grid.w > 24:
            y += line_height
            x = line_height = 0
        grid.x, grid.y = x, y
        panel.id(index)
        x += grid.w
        line_height = max(line_height, grid.h)
        if is_row:
            y += 1
            x = line_height = 0
        placed.append(panel)
    return placed


# -- template variables -------------------------------------------------------------------------------

Variable: TypeAlias = "cogbuilder.Builder[dm.VariableModel]"


def datasource_var(hide: int = 0) -> sdk_dashboard.DatasourceVariable:
    return (sdk_dashboard.DatasourceVariable("datasource").label("数据源").type("prometheus")
            .hide(dm.VariableHide(hide)).multi(False).include_all(False).regex(""))


def zone_var() -> sdk_dashboard.CustomVariable:
    options = [dm.VariableOption(text="全部", value="$__all", selected=True)]
    options += [dm.VariableOption(text=ZONE_NAMES_ZH[zone], value=zone.value, selected=False)
                for zone in Zone]
    return (sdk_dashboard.CustomVariable("zone").label("网络区域")
            .values(",".join(f"{ZONE_NAMES_ZH[zone]} : {zone.value}" for zone in Zone))
            .current(dm.VariableOption(text=["全部"], value=["$__all"], selected=True))
            .options(options).include_all(True).multi(True).all_value(".*").hide(dm.VariableHide.DONT_HIDE))


def query_var(name: str, label: str, definition: str, *, regex: str = "", include_all: bool = True,
              multi: bool = True, hide: int = 0) -> sdk_dashboard.QueryVariable:
    """A Prometheus query variable; the query object is the Prometheus datasource's own
    (qryType 1 = label values, 3 = classic query such as query_result)."""
    kind = 1 if definition.startswith("label_values") else 3
    return (sdk_dashboard.QueryVariable(name).label(label).datasource(DATASOURCE_REF)
            .query({"query": definition, "refId": f"var-{name}", "qryType": kind})
            .regex(regex).refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .include_all(include_all).multi(multi).all_value(".*").hide(dm.VariableHide(hide)))


def item_var(items: Sequence[str] | None = None) -> sdk_dashboard.QueryVariable:
    """The item picker shows the Chinese name and passes the two-digit number."""
    selector = 'zone=~"$zone"' + (f', item=~"{"|".join(items)}"' if items else "")
    definition = f"query_result(max by (item, name, zone) (einvoice_item_info{{{selector}}}))"
    var = query_var("item", "监控项", definition, regex='/item="(?<value>[^"]+)".*name="(?<text>[^"]+)"/')
    if items:
        var.all_value("|".join(items))  # "All" means this dashboard's items, not every item
    return var


def check_var(metric: str = "einvoice_check_up") -> sdk_dashboard.QueryVariable:
    return query_var("check", "检查", f'label_values({metric}{{zone=~"$zone", item=~"$item"}}, check)')


def target_var(metric: str = "einvoice_check_up") -> sdk_dashboard.QueryVariable:
    return query_var("target", "目标",
                     f'label_values({metric}{{zone=~"$zone", item=~"$item", check=~"$check"}}, target)')


SEL = 'zone=~"$zone", item=~"$item", check=~"$check", target=~"$target"'
"""The label selector of the detail dashboards' variables."""


def dashboard(uid: str, title: str, description: str, panels: Iterable[Panel], *,
              variables: Sequence[Variable] = (), refresh: str = "1m", time_from: str = "now-6h",
              extra_tags: Sequence[str] = (), hide_datasource: bool = False,
              kiosk: bool = False, annotations: Sequence[dict[str, Any]] = ()) -> Dashboard:
    board = (sdk_dashboard.Dashboard(title).uid(uid).description(description).tags([TAG, *extra_tags])
             .timezone(TIMEZONE).week_start("monday").version(1)
             .tooltip(dm.DashboardCursorSync.CROSSHAIR).live_now(False).refresh(refresh)
             .fiscal_year_start_month(0).time(time_from, "now")
             .timepicker(sdk_dashboard.TimePicker().refresh_intervals(["30s", "1m", "5m", "15m", "1h"]))
             .link(sdk_dashboard.DashboardLink("电子发票监控").type(dm.DashboardLinkType.DASHBOARDS).tags([TAG])
                   .as_dropdown(True).include_vars(False).keep_time(True).target_blank(False)
                   .icon("external link").tooltip("").url(""))
             .variables([datasource_var(hide=2 if hide_datasource else 0), *variables]))
    board.readonly() if kiosk else board.editable()
    for panel in layout(panels):
        if isinstance(panel, sdk_dashboard.Row):
            board.with_row(panel)
        else:
            board.with_panel(panel)
    encoded: Dashboard = json.loads(json.dumps(board.build(), cls=JSONEncoder, ensure_ascii=False))
    if annotations:
        # The SDK's AnnotationQuery has no fields for a Prometheus annotation's title/text/tag formats
        # or "series value as timestamp"; they are Grafana's documented annotation JSON, added here.
        encoded.setdefault("annotations", {}).setdefault("list", []).extend(annotations)
    return encoded


def change_annotations() -> list[dict[str, Any]]:
    """Registered changes (the notifier's change register, issue 19) drawn at their approved window's
    start and at the end of their watch period (升级后的运行跟踪); docs/runbook.md#change-annotations."""
    def one(name: str, metric: str, colour: str, title: str) -> dict[str, Any]:
        return {"name": name, "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "enable": True, "hide": False, "iconColor": colour,
                "expr": f"max by (change, system, kind) ({metric}) * 1000", "step": "1h",
                "useValueForTime": True, "titleFormat": title,
                "textFormat": "系统 {{system}} · 类型 {{kind}} · 详情：/console/changes/{{change}}",
                "tagKeys": "system,kind"}
    return [one("变更窗口开始", "einvoice_change_window_start_timestamp_seconds", "purple",
                "变更 #{{change}} 开始"),
            one("变更跟踪截止", "einvoice_change_watch_end_timestamp_seconds", "blue",
                "变更 #{{change}} 跟踪截止")]


# -- shared expressions -------------------------------------------------------------------------------

ITEM_INFO = "max by (item, name, zone) (einvoice_item_info)"

ITEM_STATUS = (
    "min by (item, zone) ("
    ' label_replace(avg by (item, zone) (einvoice_check_up), "source", "checks", "", "")'
    ' or label_replace(0.5 * max by (item, zone) (ALERTS{alertstate="firing", severity="warning", item!=""}),'
    ' "source", "warning", "", "")'
    ' or label_replace(0 * max by (item, zone) (ALERTS{alertstate="firing", severity="critical", item!=""}),'
    ' "source", "critical", "", "")'
    ")"
)
"""Per item: 1 all checks up and no alert; between 0 and 1 some checks failing or a warning firing
(amber); 0 every check failing or a critical alert firing (red)."""


def item_status_expr(zone: Zone) -> str:
    """The status of the zone's items joined with their Chinese names; items declared monitored
    outside the bundle (monitored_elsewhere) show -3, unconfigured items -1."""
    info = f'max by (item, name, zone) (einvoice_item_info{{zone="{zone.value}"}})'
    return (f"({ITEM_STATUS} * on (item, zone) group_left (name) {info})"
            f" or on (item) (({info} - 4) * on (item) group_left max by (item)"
            " (einvoice_item_monitored_elsewhere))"
            f" or on (item) ({info} - 2)")


STATUS_MAPPINGS = [
    range_map(-3.5, -2.5, "外部监控", BLUE, 0),
    range_map(-1.5, -0.5, "未配置", GREY, 0),
    range_map(-0.1, 0.0001, "故障", RED, 1),
    range_map(0.0001, 0.9999, "部分异常", AMBER, 2),
    range_map(0.9999, 1.1, "正常", GREEN, 3),
]
STATUS_STEPS = steps((None, GREY), (-0.5, RED), (0.0001, AMBER), (0.9999, GREEN))
UP_MAPPINGS = [value_map({"0": "故障", "1": "正常"}, {"0": RED, "1": GREEN})]
UP_STEPS = steps((None, RED), (1, GREEN))
SEVERITY_MAPPINGS = [value_map(SEVERITY_NAMES_ZH, {"critical": RED, "warning": AMBER})]
ZONE_MAPPINGS = [value_map({zone.value: ZONE_NAMES_ZH[zone] for zone in Zone})]
SERVICE_MAPPINGS = [value_map(SERVICE_NAMES_ZH)]
CLASS_MAPPINGS = [value_map(SEVERITY_CLASS_NAMES_ZH)]
STATE_MAPPINGS = [value_map(TICKET_STATE_NAMES_ZH)]
DEADLINE_MAPPINGS = [value_map(DEADLINE_NAMES_ZH)]


def ratio_steps(objective: float) -> Thresholds:
    return steps((None, RED), (objective, GREEN))


def _services_text(obj: Objectives) -> str:
    """Markdown naming each SLA service's items, so a reader knows what an outage counts."""
    lines = ["业务服务的宕机定义（见运行手册 `docs/runbook.md#outage-definition`）：服务所含任一监控项的检"
             "查失败即计为"
             "宕机，宕机时间计入年度预算。"]
    for key, name in obj.service_names.items():
        items = [item for item in ITEMS if item.id in obj.service_items.get(key, ())]
        if items:
            lines.append(f"- **{name}**（{key}）：{_items_text(items)}")
    return "\n".join(lines)


def _items_text(items: Iterable[Item]) -> str:
    return "、".join(f"{item.id} {item.name_zh}" for item in items)


# -- the dashboards -----------------------------------------------------------------------------------


def ops_wall(obj: Objectives) -> Dashboard:
    item_link = [("查看该监控项详情",
                  "/d/einvoice-item-detail?var-item=${__field.labels.item}&${datasource:queryparam}")]
    panels: list[Panel] = []
    for zone in Zone:
        count = sum(1 for item in ITEMS if item.zone == zone)
        panels.append(stat(
            f"{ZONE_NAMES_ZH[zone]}（{count} 项）",
            f"{ZONE_NAMES_ZH[zone]}监控项状态：绿色正常，橙色部分检查失败或有警告告警，红色全部检查失败或有严重告警，"
            f"灰色为尚未配置检查。包含：{_items_text(i for i in ITEMS if i.zone == zone)}。"
            "点击方块查看详情。",
            [query(item_status_expr(zone), "{{item}} {{name}}", instant=True)],
            w=24 if zone == Zone.INTRANET else (6 if zone == Zone.INTERNET else 18),
            h=9 if zone == Zone.INTRANET else 7,
            mappings=STATUS_MAPPINGS, thresholds=STATUS_STEPS, text_mode="value_and_name",
            value_size=28, title_size=16, links=item_link))
    from einvoice_core.generate.dashboards_hosts_node import wall_panels  # host health per item
    panels += wall_panels(obj)
    panels.append(row("业务服务与告警"))
    panels.append(stat(
        "业务服务状态", "受理服务、处理服务、数据管道当前是否宕机或卡顿（定义见运行手册）："
        "宕机 = 有成员不可用；卡顿 = 有成员应答缓慢或积压、没有成员不可用。",
        [query("einvoice:service_up - on (service) 0.5 * einvoice:service_stalled", "{{service}}",
               instant=True)], w=8, h=6,
        mappings=[value_map({"0": FAILURE_CLASS_ZH[FailureClass.DOWN],
                             "0.5": FAILURE_CLASS_ZH[FailureClass.DEGRADED], "1": "正常"},
                            {"0": RED, "0.5": AMBER, "1": GREEN})],
        thresholds=UP_STEPS, text_mode="value_and_name", value_size=36, overrides=service_overrides(obj)))
    panels.append(stat(
        "卡顿/宕机已持续",
        f"各服务本次卡顿或宕机（从上一次正常算起）已持续的时间；超过 {obj.restore_seconds / 60:.0f} 分钟"
        f"即违反“卡顿、宕机 {obj.restore_seconds / 60:.0f} 分钟内恢复”，"
        f"单次宕机不得超过 {obj.max_single_outage_seconds / 3600:.0f} 小时。",
        [query("einvoice:service_impaired_current_seconds", "{{service}}", instant=True)], w=8, h=6,
        unit="dthms", thresholds=steps((None, GREEN), (1, AMBER), (obj.restore_seconds, RED)),
        text_mode="value_and_name", value_size=36, overrides=service_overrides(obj)))
    panels.append(stat(
        "告警数量", "正在触发（firing）的告警数，按级别。",
        [query('count(ALERTS{alertstate="firing", severity="critical"}) or vector(0)', "严重", instant=True),
         query('count(ALERTS{alertstate="firing", severity="warning"}) or vector(0)', "警告", instant=True,
               ref="B")],
        w=4, h=6, thresholds=steps((None, GREEN), (1, RED)), text_mode="value_and_name", value_size=40))
    panels.append(stat(
        "未响应工单", "状态为“新建”的工单数（尚未有人响应）。",
        [query('sum(einvoice_notifier_tickets{state="open"}) or vector(0)', "新建工单", instant=True)],
        w=4, h=6, thresholds=steps((None, GREEN), (1, AMBER)), text_mode="value", value_size=40))
    panels.append(table(
        "正在触发的告警", "所有正在触发的告警，严重级别在前。",
        [query('sort_desc(ALERTS{alertstate="firing"} * on (severity) group_left ()'
               ' (label_replace(vector(2), "severity", "critical", "", "")'
               ' or label_replace(vector(1), "severity", "warning", "", "")))', table=True)],
        h=10, columns={"severity": "级别", "alertname": "告警", "item": "监控项", "zone": "区域",
                       "check": "检查", "target": "目标"},
        mappings={"severity": SEVERITY_MAPPINGS, "zone": ZONE_MAPPINGS},
        value_mappings=[value_map({"2": "严重", "1": "警告"}, {"2": RED, "1": AMBER})],
        thresholds=steps((None, AMBER), (2, RED)), sort_by="Value", descending=True))
    return dashboard(
        "einvoice-ops-wall", "电子发票 运维大屏",
        "广西增值税电子发票公共服务平台运行监控大屏：20 个监控项按网络区域的状态、业务服务宕机情况、"
        "正在触发的告警。"
        "适合电视墙，可用 ?kiosk 全屏显示。",
        panels, refresh="30s", time_from="now-1h", extra_tags=["大屏"], hide_datasource=True, kiosk=True)


def _severity_class_names() -> list[Override]:
    """Show the notifier's severity classes (urgent, general, outage) by their Chinese names."""
    return [rename(key, name) for key, name in SEVERITY_CLASS_NAMES_ZH.items()]


def _monthly_mean_by_class(title: str, description: str, histogram: str, *, amber: float,
                           red: float) -> Panel:
    """This month's mean of a notifier duration histogram (MTTA, MTTR), one value per class."""
    mean = (f"sum by (severity_class) (increase({histogram}_sum[$__range])) / "
            f"sum by (severity_class) (increase({histogram}_count[$__range]))")
    return stat(title, description, [query(mean, "{{severity_class}}", instant=True)],
                w=6, h=6, unit="s", text_mode="value_and_name", color_mode="value",
                thresholds=steps((None, GREEN), (amber, AMBER), (red, RED)), time_from="now/M",
                overrides=_severity_class_names())


def sla(obj: Objectives) -> Dashboard:
    budget_h = obj.outage_budget_seconds / 3600
    objective_pct = f"{obj.availability * 100:.3f}%"
    panels: list[Panel] = [
        text_panel("服务与宕机定义", _services_text(obj), h=4),
        row("可用性"),
        gauge("本月可用性", f"本月至今各服务处于正常（非宕机）状态的时间比例（不含容灾演练时间），目标 "
              f"{objective_pct}。",
              [query("avg_over_time(einvoice:service_sla_up[$__range])", "{{service}}", instant=True)],
              w=8, unit="percentunit", decimals=3, minimum=0.99, maximum=1,
              thresholds=ratio_steps(obj.availability), overrides=service_overrides(obj), time_from="now/M"),
        gauge("本年可用性", f"本年至今各服务处于正常状态的时间比例，目标 {objective_pct}（即每年宕机不超过 "
              f"{budget_h:.0f} 小时；不含容灾演练时间）。",
              [query("avg_over_time(einvoice:service_sla_up[$__range])", "{{service}}", instant=True)],
              w=8, unit="percentunit", decimals=3, minimum=0.99, maximum=1,
              thresholds=ratio_steps(obj.availability), overrides=service_overrides(obj), time_from="now/y"),
        stat("近 30 天可用性", f"滚动 30 天可用性（记录规则 einvoice:service_availability:ratio_30d），目标 "
             f"{objective_pct}。",
             [query("einvoice:service_availability:ratio_30d", "{{service}}", instant=True)],
             w=8, h=8, unit="percentunit", decimals=3, thresholds=ratio_steps(obj.availability),
             text_mode="value_and_name", overrides=service_overrides(obj)),
        row("宕机时间预算（每年不超过 12 小时，单次不超过 2 小时）"),
        bargauge("年度已用宕机时间（近 365 天）",
                 f"近 365 天累计宕机时间（记录规则按分钟计），与每年 {budget_h:.0f} 小时的预算比较。",
                 [query("einvoice:service_outage_seconds_year", "{{service}}", instant=True)], w=8, h=7,
                 unit="s", maximum=obj.outage_budget_seconds,
                 thresholds=steps((None, GREEN), (obj.outage_budget_seconds * 0.75, AMBER),
                                  (obj.outage_budget_seconds, RED)), overrides=service_overrides(obj)),
        bargauge("年度宕机预算剩余",
                 f"近 365 天宕机时间预算剩余比例；低于 {obj.budget_remaining_warning_ratio:.0%} 时告警。",
                 [query("einvoice:service_outage_budget_remaining:ratio", "{{service}}", instant=True)],
                 w=8, h=7, unit="percentunit", maximum=1,
                 thresholds=steps((None, RED), (obj.budget_remaining_warning_ratio, AMBER), (0.5, GREEN)),
                 overrides=service_overrides(obj)),
        bargauge("年度最长单次宕机（近 365 天）",
                 f"近 365 天内最长一次宕机的时长，上限 {obj.max_single_outage_seconds / 3600:.0f} 小时。",
                 [query("einvoice:service_outage_longest_seconds_year", "{{service}}", instant=True)],
                 w=8, h=7, unit="s", maximum=obj.max_single_outage_seconds,
                 thresholds=steps((None, GREEN), (obj.restore_seconds, AMBER),
                                  (obj.max_single_outage_seconds, RED)), overrides=service_overrides(obj)),
        bargauge("距上次宕机（天）",
                 "距该服务上次宕机结束的天数。应用本身是否连续运行 6 个月见下方“应用连续运行”。",
                 [query("einvoice:service_since_last_outage_seconds / 86400", "{{service}}", instant=True)],
                 w=12, h=7, unit="d", maximum=obj.continuous_running_days,
                 thresholds=steps((None, AMBER), (obj.continuous_running_days, GREEN)),
                 overrides=service_overrides(obj)),
        timeseries("可用性趋势（1 天窗口）", "各服务滚动 1 天可用性。",
                   [query("einvoice:service_availability:ratio_1d", "{{service}}")], w=12, h=7,
                   unit="percentunit", thresholds=ratio_steps(obj.availability), threshold_lines=True,
                   overrides=service_overrides(obj), legend_calcs=("lastNotNull", "min")),
        row("宕机与卡顿：超限与恢复超时"),
        bargauge("超过 2 小时的宕机（次）",
                 f"单次宕机超过 {obj.max_single_outage_seconds / 3600:.0f} 小时的次数（恰好 "
                 f"{obj.max_single_outage_seconds / 3600:.0f} 小时不算）：近 30 天与近 365 天。",
                 [query("einvoice:service_outages_over_limit:count_30d", "{{service}} 近 30 天",
                        instant=True),
                  query("einvoice:service_outages_over_limit:count_365d", "{{service}} 近 365 天",
                        instant=True, ref="B")],
                 w=8, h=7, thresholds=steps((None, GREEN), (1, RED)),
                 overrides=[rename(f"{key} {window}", f"{name} {window}")
                            for key, name in SERVICE_NAMES_ZH.items()
                            for window in ("近 30 天", "近 365 天")]),
        bargauge(f"超过 {obj.restore_seconds / 60:.0f} 分钟才恢复（近 30 天，次）",
                 f"卡顿或宕机在 {obj.restore_seconds / 60:.0f} 分钟内未恢复的次数，宕机与卡顿分开"
                 "（按越过时限那一刻的状态归类）。",
                 [query("einvoice:service_restores_late:count_30d", "{{service}} {{severity_class}}",
                        instant=True)],
                 w=8, h=7, thresholds=steps((None, GREEN), (1, RED)),
                 overrides=[rename(f"{key} {cls.value}",
                                   f"{name} {TICKET_CLASS_ZH[cls]}超过 {obj.restore_seconds / 60:.0f} 分钟")
                            for key, name in SERVICE_NAMES_ZH.items()
                            for cls in (TicketClass.OUTAGE, TicketClass.STALL)]),
        bargauge("年度卡顿时间（近 365 天，不计入宕机）",
                 "近 365 天累计卡顿时间。卡顿不消耗每年 12 小时的宕机预算，但同样须 30 分钟内恢复。",
                 [query("einvoice:service_stall_seconds_year", "{{service}}", instant=True)], w=8, h=7,
                 unit="s", thresholds=steps((None, GREEN), (obj.restore_seconds, AMBER)),
                 overrides=service_overrides(obj)),
        *dashboards_systems.panels(obj),  # issue 19: per-system availability, drills (dashboards_systems.py)
        row("应用连续运行（至少连续 6 个月不停）"),
        bargauge("已连续运行（天）",
                 f"各应用实例本次启动以来的天数（process_start_time_seconds）；合同要求至少连续 "
                 f"{obj.continuous_running_days:.0f} 天（6 个月）不停。",
                 [query("einvoice:app_uptime_seconds / 86400", "{{instance}}", instant=True)],
                 w=8, h=7, unit="d", maximum=obj.continuous_running_days,
                 thresholds=steps((None, AMBER), (obj.continuous_running_days, GREEN))),
        bargauge("近 6 个月重启次数",
                 f"各应用实例近 {obj.continuous_running_days:.0f} 天的重启次数（含变更窗口内的计划重启）；"
                 "0 次且已连续运行满 6 个月即达标。",
                 [query(f"einvoice:app_restarts:count_{obj.continuous_run}", "{{instance}}",
                        instant=True)],
                 w=8, h=7, thresholds=steps((None, GREEN), (1, AMBER))),
        bargauge("近 6 个月最长连续运行（天）",
                 f"各应用实例近 {obj.continuous_running_days:.0f} 天内见到的最长一次连续运行。",
                 [query(f"einvoice:app_uptime_longest_seconds_{obj.continuous_run} / 86400",
                        "{{instance}}", instant=True)],
                 w=8, h=7, unit="d", maximum=obj.continuous_running_days,
                 thresholds=steps((None, AMBER), (obj.continuous_running_days, GREEN))),
        row("工单时效（响应与解决时限）"),
        stat("按时响应率（本月）",
             "本月已响应工单中未超出响应时限的比例（1 − 响应超时次数 / 已响应工单数）。",
             [query('clamp_min(1 - (sum(increase(einvoice_notifier_deadline_breaches_total{deadline="respon'
                    'se"}'
                    "[$__range])) or vector(0)) / sum(increase("
                    "einvoice_notifier_time_to_acknowledge_seconds_count[$__range])), 0)", "按时响应率",
                    instant=True)],
             w=6, h=6, unit="percentunit", decimals=1, thresholds=ratio_steps(1), time_from="now/M"),
        stat("按时解决率（本月）",
             "本月已解决工单中未超出解决时限的比例（1 − 解决超时次数 / 已解决工单数）。",
             [query('clamp_min(1 - (sum(increase(einvoice_notifier_deadline_breaches_total{deadline="resolu'
                    'tion"}'
                    "[$__range])) or vector(0)) / sum(increase("
                    "einvoice_notifier_time_to_resolve_seconds_count[$__range])), 0)", "按时解决率",
                    instant=True)],
             w=6, h=6, unit="percentunit", decimals=1, thresholds=ratio_steps(1), time_from="now/M"),
        bargauge("本月超时次数", "本月超出响应时限、解决时限的次数，按工单级别。",
                 [query("sum by (deadline, severity_class) (increase("
                        "einvoice_notifier_deadline_breaches_total[$__range]))",
                        "{{deadline}} {{severity_class}}", instant=True)],
                 w=12, h=6, thresholds=steps((None, GREEN), (1, RED)), time_from="now/M",
                 overrides=[rename(f"{d} {c}", f"{DEADLINE_NAMES_ZH[d]} {SEVERITY_CLASS_NAMES_ZH[c]}")
                            for d in DEADLINE_NAMES_ZH for c in SEVERITY_CLASS_NAMES_ZH]),
        row("服务质量"),
        gauge("本级解决率",
              f"由驻场运维本级解决（未升级二线）的工单比例，目标 ≥ {obj.local_resolution_ratio:.0%}。",
              [query("einvoice_notifier_local_resolution_ratio", "本级解决率", instant=True)], w=6,
              unit="percentunit", thresholds=ratio_steps(obj.local_resolution_ratio)),
        gauge("一次性解决率", f"关闭后 30 天内未复发的工单比例，目标 ≥ {obj.one_time_resolution_ratio:.0%}。",
              [query("einvoice_notifier_one_time_resolution_ratio", "一次性解决率", instant=True)], w=6,
              unit="percentunit", thresholds=ratio_steps(obj.one_time_resolution_ratio)),
        _monthly_mean_by_class("平均响应时间 MTTA（本月）", "本月工单从新建到响应的平均时间，按工单级别。",
                               "einvoice_notifier_time_to_acknowledge_seconds", amber=3600, red=7200),
        _monthly_mean_by_class("平均解决时间 MTTR（本月）", "本月工单从新建到解决的平均时间，按工单级别。",
                               "einvoice_notifier_time_to_resolve_seconds", amber=7200, red=14400),
        timeseries("响应时间 P90", "90% 的工单在此时间内得到响应（按级别，1 天窗口）。",
                   [query("histogram_quantile(0.9, sum by (le, severity_class) (increase("
                          "einvoice_notifier_time_to_acknowledge_seconds_bucket[1d])))",
                          "{{severity_class}}")],
                   unit="s", overrides=_severity_class_names()),
        timeseries("解决时间 P90", "90% 的工单在此时间内解决（按级别，1 天窗口）。",
                   [query("histogram_quantile(0.9, sum by (le, severity_class) (increase("
                          "einvoice_notifier_time_to_resolve_seconds_bucket[1d])))", "{{severity_class}}")],
                   unit="s", overrides=_severity_class_names()),
    ]
    return dashboard(
        "einvoice-sla", "电子发票 SLA 管理",
        "服务水平（合同第三部分第（四）条）：可用性、每年 12 小时宕机预算、单次宕机 2 小时上限、"
        "连续运行 6 个月、"
        "工单响应与解决时限、本级解决率、一次性解决率、MTTA 与 MTTR。",
        panels, refresh="5m", time_from="now-30d", extra_tags=["SLA"], annotations=change_annotations())


def oncall(obj: Objectives) -> Dashboard:
    panels: list[Panel] = [
        stat("严重告警", "正在触发的严重（critical）告警数。",
             [query('count(ALERTS{alertstate="firing", severity="critical"}) or vector(0)', "严重",
                    instant=True)], w=4, h=5, thresholds=steps((None, GREEN), (1, RED)), value_size=48),
        stat("警告告警", "正在触发的警告（warning）告警数。",
             [query('count(ALERTS{alertstate="firing", severity="warning"}) or vector(0)', "警告",
                    instant=True)], w=4, h=5, thresholds=steps((None, GREEN), (1, AMBER)), value_size=48),
        stat("待触发告警", "条件已满足、尚在等待 for 时长的告警（pending）。",
             [query('count(ALERTS{alertstate="pending"}) or vector(0)', "待触发", instant=True)],
             w=4, h=5, thresholds=steps((None, GREEN), (1, BLUE)), value_size=48),
        stat("工单（按状态）", "未关闭工单数，按状态。",
             [query('sum by (state) (einvoice_notifier_tickets{state!="closed"})', "{{state}}",
                    instant=True)], w=12, h=5, text_mode="value_and_name", color_mode="value",
             overrides=[rename(k, v) for k, v in TICKET_STATE_NAMES_ZH.items()]),
        table("正在触发的告警（按级别）", "ALERTS 中正在触发的告警，严重在前；值为告警已持续的秒数。",
              [query('(time() - ALERTS_FOR_STATE) * ignoring (alertstate) ALERTS{alertstate="firing"}'
                     ' or ignoring (alertstate) (0 * ALERTS{alertstate="firing"})', table=True)],
              h=9, columns={"severity": "级别", "alertname": "告警", "item": "监控项", "zone": "区域",
                            "check": "检查", "target": "目标"},
              mappings={"severity": SEVERITY_MAPPINGS, "zone": ZONE_MAPPINGS},
              unit="dthms", thresholds=steps((None, AMBER), (obj.restore_seconds, RED)),
              sort_by="级别", descending=False),
        table("未关闭工单（按最近时限排序）",
              "每张未关闭工单的响应/解决时限还剩多少时间，最先到期的在最上面；负数表示已超时。",
              [query("sort(einvoice_notifier_ticket_deadline_timestamp_seconds - time())", table=True)],
              h=10, columns={"ticket_id": "工单号", "item": "监控项", "severity_class": "级别",
                             "deadline": "时限"},
              mappings={"severity_class": CLASS_MAPPINGS, "deadline": DEADLINE_MAPPINGS},
              unit="dthms", thresholds=steps((None, RED), (0, AMBER), (1800, GREEN)), sort_by="Value"),
        row("消息发送（企业微信）"),
        timeseries("待发送消息", f"发件箱中等待发送的消息数，按{CHANNEL_DOC}。",
                   [query("einvoice_notifier_outbox_depth", "{{channel}}")], w=8, h=7),
        timeseries("最早待发消息等待时长", "发件箱中最早一条待发消息已等待的时间；持续增长说明通道发送失败。",
                   [query("einvoice_notifier_outbox_oldest_age_seconds", "{{channel}}")], w=8, h=7, unit="s",
                   thresholds=steps((None, GREEN), (300, RED)), threshold_lines=True),
        stat("死信消息", "多次重试仍发送失败、进入死信状态的消息数；需在工单控制台处理。",
             [query("sum by (channel) (einvoice_notifier_outbox_dead_letters)", "{{channel}}", instant=True)],
             w=8, h=7, text_mode="value_and_name", thresholds=steps((None, GREEN), (1, RED))),
        timeseries("消息发送结果", "每分钟发送次数，按通道与结果。",
                   [query("sum by (channel, result) (rate(einvoice_notifier_sends_total[$__rate_interval]))"
                          " * 60",
                          "{{channel}} {{result}}")], w=12, h=7, unit="none", bars=True, stack=True),
        timeseries("Webhook 请求",
                   "Alertmanager 推送到通知服务的请求数（每分钟），按 HTTP 状态码；5xx 会被重试。",
                   [query("sum by (code) (rate(einvoice_notifier_webhook_requests_total[$__rate_interval]))"
                          " * 60",
                          "{{code}}")], w=12, h=7, bars=True, stack=True),
    ]
    return dashboard(
        "einvoice-oncall", "电子发票 值班",
        "值班视图：正在触发的告警（按级别）、未关闭工单按最近到期时限排序、企业微信消息发件箱健康。",
        panels, refresh="30s", time_from="now-6h", extra_tags=["值班"], annotations=change_annotations())


def network(obj: Objectives) -> Dashboard:
    items = NETWORK_ITEMS
    panels: list[Panel] = [
        stat("探测结果", "每个检查最近一次探测是否成功。",
             [query(f"probe_success{{{SEL}}}", "{{check}}", instant=True)], w=24, h=5,
             mappings=UP_MAPPINGS, thresholds=UP_STEPS, text_mode="value_and_name"),
        timeseries("探测总耗时", "一次探测的总耗时（probe_duration_seconds）。",
                   [query(f"probe_duration_seconds{{{SEL}}}", "{{check}}")], unit="s",
                   thresholds=steps((None, GREEN), (obj.probe_latency_seconds, RED)), threshold_lines=True),
        timeseries("HTTP 各阶段耗时", "HTTP 探测各阶段耗时：解析、连接、TLS、处理、传输（堆叠）。",
                   [query(f"sum by (check, phase) (probe_http_duration_seconds{{{SEL}}})",
                          "{{check}} {{phase}}")], unit="s", stack=True),
        timeseries("延迟达标率（5 分钟）",
                   f"响应时间不超过阈值（{obj.probe_latency_seconds:g} 秒）的探测比例。",
                   [query(f"einvoice:probe_latency_good:ratio_5m{{{SEL}}}", "{{check}}")],
                   unit="percentunit", maximum=1, legend_calcs=("lastNotNull", "min")),
        timeseries("DNS 解析耗时", "域名解析耗时（probe_dns_lookup_time_seconds）。",
                   [query(f"probe_dns_lookup_time_seconds{{{SEL}}}", "{{check}}")], unit="s"),
        table("HTTP 状态码", "最近一次 HTTP 探测的状态码。",
              [query(f"probe_http_status_code{{{SEL}}}", table=True)], w=12,
              columns={"check": "检查", "target": "目标", "item": "监控项"},
              thresholds=steps((None, RED), (200, GREEN), (400, RED))),
        table("证书剩余天数", f"证书链中最早到期证书的剩余天数；少于 {obj.cert_warning_days:.0f} 天警告，"
              f"少于 {obj.cert_critical_days:.0f} 天严重。",
              [query(f"(probe_ssl_earliest_cert_expiry{{{SEL}}} - time()) / 86400", table=True)], w=12,
              columns={"check": "检查", "target": "目标", "item": "监控项"}, unit="d",
              thresholds=steps((None, RED), (obj.cert_critical_days, AMBER), (obj.cert_warning_days, GREEN)),
              sort_by="Value"),
        table("TLS 版本", "探测协商出的 TLS 版本。",
              [query(f"probe_tls_version_info{{{SEL}}}", table=True)], w=12,
              columns={"check": "检查", "target": "目标", "version": "TLS 版本"}, color_cells=False),
        timeseries("失败原因",
                   "每 5 分钟失败次数，按原因（timeout 超时、refused 拒绝连接、dns、tls、auth 认证、"
                   "bad_status 状态码、bad_content 内容、threshold 超阈值……）。",
                   [query(f"sum by (check, reason) (increase(einvoice_check_failures_total{{{SEL}}}[5m])) >"
                          f" 0",
                          "{{check}} {{reason}}")], bars=True, stack=True),
    ]
    return dashboard(
        "einvoice-network", "电子发票 网络探测",
        f"网络探测（DNS、TCP、TLS、HTTP）详情：{_items_text(i for i in ITEMS if i.id in items)}。",
        panels, variables=[zone_var(), item_var(items), check_var("probe_success"),
                           target_var("probe_success")],
        extra_tags=["详情"])


def redis_dashboard(obj: Objectives) -> Dashboard:
    sel = SEL
    panels: list[Panel] = [
        stat("Redis 实例", "redis_up：能否连接并执行 INFO。",
             [query(f"redis_up{{{sel}}}", "{{check}} {{addr}}", instant=True)], w=24, h=4,
             mappings=UP_MAPPINGS, thresholds=UP_STEPS, text_mode="value_and_name"),
        timeseries("内存使用率", f"已用内存 / maxmemory；超过 {obj.redis_memory_ratio:.0%} 告警"
                   "（maxmemory 为 0 表示未设上限，不显示）。",
                   [query(f"redis_memory_used_bytes{{{sel}}} / (redis_memory_max_bytes{{{sel}}} > 0)",
                          "{{check}} {{addr}}")], unit="percentunit", maximum=1,
                   thresholds=steps((None, GREEN), (obj.redis_memory_ratio, RED)), threshold_lines=True),
        timeseries("已用内存", "Redis 已分配的内存（redis_memory_used_bytes）。",
                   [query(f"redis_memory_used_bytes{{{sel}}}", "{{check}} {{addr}}")], unit="bytes"),
        timeseries("客户端连接", "已连接与阻塞的客户端数。",
                   [query(f"redis_connected_clients{{{sel}}}", "{{check}} {{addr}} 已连接"),
                    query(f"redis_blocked_clients{{{sel}}}", "{{check}} {{addr}} 阻塞", ref="B")]),
        timeseries("每秒操作数", "每秒处理的命令数（redis_instantaneous_ops_per_sec）。",
                   [query(f"redis_instantaneous_ops_per_sec{{{sel}}}", "{{check}} {{addr}}")], unit="ops"),
        timeseries("淘汰、过期与拒绝连接", "每秒淘汰键、过期键与被拒绝的连接。",
                   [query(f"rate(redis_evicted_keys_total{{{sel}}}[$__rate_interval])",
                          "{{check}} {{addr}} 淘汰"),
                    query(f"rate(redis_expired_keys_total{{{sel}}}[$__rate_interval])",
                          "{{check}} {{addr}} 过期",
                          ref="B"),
                    query(f"rate(redis_rejected_connections_total{{{sel}}}[$__rate_interval])",
                          "{{check}} {{addr}} 拒绝连接", ref="C")]),
        timeseries("键数量", "各库的键数量。",
                   [query(f"sum by (check, db) (redis_db_keys{{{sel}}})", "{{check}} {{db}}")]),
        table("持久化与复制", "最近一次 RDB 保存、AOF 写入是否成功（1 成功），从节点数，主从链路。",
              [query(f"redis_rdb_last_bgsave_status{{{sel}}}", table=True)], w=12, h=7,
              columns={"check": "检查", "addr": "节点", "target": "目标"}, value_mappings=UP_MAPPINGS,
              thresholds=UP_STEPS),
        timeseries("复制", "已连接从节点数（主节点）与主从链路状态（从节点，1 正常）。",
                   [query(f"redis_connected_slaves{{{sel}}}", "{{check}} {{addr}} 从节点数"),
                    query(f"redis_master_link_up{{{sel}}}", "{{check}} {{addr}} 主从链路", ref="B"),
                    query(f"redis_aof_last_write_status{{{sel}}}", "{{check}} {{addr}} AOF 写入", ref="C")],
                   w=12, h=7),
        table("实例信息", "各实例的角色、版本、模式与内存淘汰策略（redis_instance_info）。",
              [query(f"redis_instance_info{{{sel}}}", table=True)], w=24, h=6,
              columns={"check": "检查", "addr": "节点", "target": "目标", "role": "角色",
                       "redis_version": "版本", "redis_mode": "模式", "maxmemory_policy": "淘汰策略"},
              color_cells=False, mappings={"role": [value_map({"master": "主", "slave": "从"})]}),
        row("Redis 集群（第 11 项）"),
        stat("集群状态", "redis_cluster_state：1 表示 cluster_state:ok。",
             [query(f"redis_cluster_state{{{sel}}}", "{{check}}", instant=True)], w=6, h=5,
             mappings=[value_map({"0": "异常", "1": "正常"}, {"0": RED, "1": GREEN})], thresholds=UP_STEPS,
             text_mode="value_and_name"),
        stat("槽位", "已分配、正常、疑似下线（pfail）与下线（fail）的槽位数。",
             [query(f"max by (check) (redis_cluster_slots_ok{{{sel}}})", "正常", instant=True),
              query(f"max by (check) (redis_cluster_slots_pfail{{{sel}}})", "疑似下线", instant=True,
                    ref="B"),
              query(f"max by (check) (redis_cluster_slots_fail{{{sel}}})", "下线", instant=True, ref="C")],
             w=10, h=5, text_mode="value_and_name", color_mode="value",
             overrides=[override("byRegexp", "疑似下线|下线",
                                 thresholds=steps((None, GREEN), (1, RED)).build())]),
        stat("节点与分片", "集群已知节点数、分片（主节点）数、缺少从节点的主节点数。",
             [query(f"max by (check) (redis_cluster_known_nodes{{{sel}}})", "节点", instant=True),
              query(f"max by (check) (redis_cluster_size{{{sel}}})", "分片", instant=True, ref="B"),
              query(f"max by (check) (einvoice_redis_cluster_masters_without_replica{{{sel}}})",
                    "无从节点的主节点", instant=True, ref="C")],
             w=8, h=5, text_mode="value_and_name", color_mode="value"),
        table("异常节点", "被标记为 fail 或 pfail 的节点。",
              [query(f"einvoice_redis_cluster_node_flag{{{sel}}} > 0", table=True)], w=24, h=6,
              columns={"check": "检查", "addr": "节点", "flag": "标记"}, thresholds=steps((None, RED))),
    ]
    return dashboard(
        "einvoice-redis", "电子发票 Redis",
        "Redis 详情：第 06 项外网日志内存数据库、第 11 项内网 Redis 集群、第 12 项 Redis 状态。",
        panels, variables=[zone_var(), item_var(("06", "11", "12")), check_var("redis_up"),
                           target_var("redis_up")], extra_tags=["详情"])


def elasticsearch_dashboard(obj: Objectives) -> Dashboard:
    sel = SEL
    color = (f'max by (check, target) (elasticsearch_cluster_health_status{{{sel}, color="green"}}) * 2'
             f' + max by (check, target) (elasticsearch_cluster_health_status{{{sel}, color="yellow"}})')
    panels: list[Panel] = [
        stat("集群健康", "集群健康状态：绿、黄（有副本分片未分配）、红（有主分片未分配）。",
             [query(color, "{{check}}", instant=True)], w=8, h=5, text_mode="value_and_name",
             mappings=[value_map({"0": "红", "1": "黄", "2": "绿"}, {"0": RED, "1": AMBER, "2": GREEN})],
             thresholds=steps((None, RED), (1, AMBER), (2, GREEN))),
        stat("节点", "节点数与数据节点数。",
             [query(f"max by (check) (elasticsearch_cluster_health_number_of_nodes{{{sel}}})", "节点",
                    instant=True),
              query(f"max by (check) (elasticsearch_cluster_health_number_of_data_nodes{{{sel}}})",
                    "数据节点",
                    instant=True, ref="B")], w=8, h=5, text_mode="value_and_name", color_mode="value"),
        stat("待处理任务", "主节点待处理的集群任务数。",
             [query(f"max by (check) (elasticsearch_cluster_health_number_of_pending_tasks{{{sel}}})",
                    "{{check}}", instant=True)], w=8, h=5, color_mode="value",
             thresholds=steps((None, GREEN), (10, AMBER))),
        timeseries("分片", "活动、主分片、迁移中、初始化中与未分配的分片数。",
                   [query(f"max by (check) (elasticsearch_cluster_health_active_shards{{{sel}}})",
                          "{{check}} 活动"),
                    query(f"max by (check) (elasticsearch_cluster_health_active_primary_shards{{{sel}}})",
                          "{{check}} 主分片", ref="B"),
                    query(f"max by (check) (elasticsearch_cluster_health_relocating_shards{{{sel}}})",
                          "{{check}} 迁移中", ref="C"),
                    query(f"max by (check) (elasticsearch_cluster_health_initializing_shards{{{sel}}})",
                          "{{check}} 初始化中", ref="D"),
                    query(f"max by (check) (elasticsearch_cluster_health_unassigned_shards{{{sel}}})",
                          "{{check}} 未分配", ref="E")], w=24),
        timeseries("JVM 堆内存使用率", f"各节点堆内存已用 / 最大；超过 {obj.es_heap_ratio:.0%} 需关注。",
                   [query(f'elasticsearch_jvm_memory_used_bytes{{{sel}, area="heap"}}'
                          f' / elasticsearch_jvm_memory_max_bytes{{{sel}, area="heap"}}',
                          "{{check}} {{name}}")],
                   unit="percentunit", maximum=1,
                   thresholds=steps((None, GREEN), (obj.es_heap_ratio, RED)), threshold_lines=True),
        timeseries("磁盘使用率",
                   f"各节点数据盘已用比例；超过 {obj.es_disk_ratio:.0%} 需关注"
                   "（ES 默认 85% 起停止分配分片）。",
                   [query(f"1 - elasticsearch_filesystem_data_available_bytes{{{sel}}}"
                          f" / elasticsearch_filesystem_data_size_bytes{{{sel}}}", "{{check}} {{name}}")],
                   unit="percentunit", maximum=1,
                   thresholds=steps((None, GREEN), (obj.es_disk_ratio, RED)), threshold_lines=True),
        timeseries("熔断器触发", "每 5 分钟熔断器触发次数，按节点和熔断器。",
                   [query(f"sum by (name, breaker) (increase(elasticsearch_breakers_tripped{{{sel}}}[5m]))",
                          "{{name}} {{breaker}}")], w=24, bars=True),
    ]
    return dashboard(
        "einvoice-elasticsearch", "电子发票 Elasticsearch",
        "第 12 项 Elasticsearch 集群健康：状态、节点、分片、堆内存、磁盘、熔断器。",
        panels, variables=[zone_var(), item_var(("12",)), check_var("elasticsearch_cluster_health_status"),
                           target_var("elasticsearch_cluster_health_status")], extra_tags=["详情"])


def kafka_dashboard(obj: Objectives) -> Dashboard:
    sel = SEL
    kvar = query_var("consumergroup", "消费组",
                     f'label_values(kafka_consumergroup_lag_sum{{{sel}}}, consumergroup)')
    ksel = f'{sel}, consumergroup=~"$consumergroup"'
    panels: list[Panel] = [
        timeseries("消费积压（条）", "每个消费组、主题的积压消息数（kafka_consumergroup_lag_sum）。",
                   [query(f"sum by (consumergroup, topic) (kafka_consumergroup_lag_sum{{{ksel}}})",
                          "{{consumergroup}} {{topic}}")], w=12),
        timeseries("消费积压（秒）",
                   f"按日志末端位点历史估算的积压时长（最大分区）；超过 {obj.kafka_lag_seconds:g} 秒告警。",
                   [query(f"max by (consumergroup) (kafka_consumergroup_group_max_lag_seconds{{{ksel}}})",
                          "{{consumergroup}}")], w=12, unit="s",
                   thresholds=steps((None, GREEN), (obj.kafka_lag_seconds, RED)), threshold_lines=True),
        timeseries("消费速率", "每秒提交的消费位点增量（消息/秒）。",
                   [query(f"sum by (consumergroup, topic) (rate(kafka_consumergroup_current_offset{{{ksel}}}"
                          "[$__rate_interval]))", "{{consumergroup}} {{topic}}")], w=12, unit="none"),
        timeseries("生产速率", "每秒写入主题的消息数（日志末端位点增量）。",
                   [query(f"sum by (topic) (rate(kafka_topic_partition_current_offset{{{sel}}}[$__rate_inte"
                          f"rval]))",
                          "{{topic}}")], w=12),
        stat("消费组成员", "每个消费组的成员数；为 0 表示没有消费者在线。",
             [query(f"max by (consumergroup) (kafka_consumergroup_members{{{ksel}}})", "{{consumergroup}}",
                    instant=True)], w=12, h=5, text_mode="value_and_name",
             thresholds=steps((None, RED), (1, GREEN))),
        stat("消费停滞", "积压不为 0 且提交位点长时间不动的消费组（1 表示停滞）。",
             [query(f"max by (consumergroup) (einvoice_kafka_consumergroup_stalled{{{ksel}}})",
                    "{{consumergroup}}", instant=True)], w=12, h=5, text_mode="value_and_name",
             mappings=[value_map({"0": "正常", "1": "停滞"}, {"0": GREEN, "1": RED})],
             thresholds=steps((None, GREEN), (1, RED))),
        table("消费组状态", "消费组的协调状态（Stable 正常；PreparingRebalance/CompletingRebalance 重平衡中；"
              "Empty 无成员；Dead 已删除）。",
              [query(f"einvoice_kafka_consumergroup_state{{{ksel}}} == 1", table=True)], w=12, h=6,
              columns={"check": "检查", "consumergroup": "消费组", "state": "状态"}, color_cells=False),
        table("分区积压时长", "每个分区按位点历史估算的积压秒数，最大的在前。",
              [query(f"sort_desc(kafka_consumergroup_group_lag_seconds{{{ksel}}})", table=True)], w=12, h=6,
              columns={"consumergroup": "消费组", "topic": "主题", "partition": "分区"}, unit="s",
              thresholds=steps((None, GREEN), (obj.kafka_lag_seconds,
                                               RED)), sort_by="Value", descending=True),
        table("分区积压", "每个分区的积压消息数，最大的在前。",
              [query(f"sort_desc(kafka_consumergroup_lag{{{ksel}}})", table=True)], h=9,
              columns={"consumergroup": "消费组", "topic": "主题", "partition": "分区"},
              thresholds=steps((None, GREEN), (1000, AMBER)), sort_by="Value", descending=True),
    ]
    return dashboard(
        "einvoice-kafka", "电子发票 Kafka 消费",
        "第 13 项 Kafka 消费状态：消费组积压（条数与秒数）、消费与生产速率、成员、停滞。",
        panels, variables=[zone_var(), item_var(("13",)), check_var("kafka_consumergroup_lag_sum"),
                           target_var("kafka_consumergroup_lag_sum"), kvar], extra_tags=["详情"])


def _item_checks_panels(items: Sequence[str], sel: str) -> list[Panel]:
    """The uniform panels every item has: status per check, duration, failures by reason."""
    return [
        table("检查状态", "每个检查最近一次运行是否成功（1 成功、0 失败）。",
              [query(f"einvoice_check_up{{{sel}}}", table=True)], w=24, h=8,
              columns={"item": "监控项", "check": "检查", "target": "目标", "zone": "区域"},
              mappings={"zone": ZONE_MAPPINGS}, value_mappings=UP_MAPPINGS, thresholds=UP_STEPS,
              sort_by="Value"),
        timeseries("检查成功", "检查结果随时间（1 成功、0 失败）。",
                   [query(f"einvoice_check_up{{{sel}}}", "{{check}}")], minimum=0, maximum=1,
                   legend_calcs=("lastNotNull", "mean")),
        timeseries("检查耗时", "每次检查的耗时（einvoice_check_duration_seconds）。",
                   [query(f"einvoice_check_duration_seconds{{{sel}}}", "{{check}}")], unit="s"),
        timeseries("失败原因", "每 5 分钟失败次数，按原因。",
                   [query(f"sum by (check, reason) (increase(einvoice_check_failures_total{{{sel}}}[5m])) >"
                          f" 0",
                          "{{check}} {{reason}}")], w=24, bars=True, stack=True),
    ]


def pipeline(obj: Objectives) -> Dashboard:
    items = PIPELINE_ITEMS
    sel = 'zone=~"$zone", item=~"$item"'
    panels: list[Panel] = [
        stat("数据管道服务", "数据管道（Kafka 消费、数据检查、数据传输、数据同步）当前是否宕机。",
             [query('einvoice:service_up{service="pipeline"}', "数据管道", instant=True)], w=6, h=5,
             mappings=[value_map({"0": "宕机", "1": "正常"}, {"0": RED, "1": GREEN})], thresholds=UP_STEPS),
        stat("近 1 天可用性", "数据管道滚动 1 天可用性。",
             [query('einvoice:service_availability:ratio_1d{service="pipeline"}', "数据管道", instant=True)],
             w=6, h=5, unit="percentunit", decimals=3, thresholds=ratio_steps(obj.availability)),
        stat("各项状态", "数据管道各监控项：1 全部检查成功，0 有检查失败。",
             [query(f"einvoice:item_up{{{sel}}} * on (item, zone) group_left (name) {ITEM_INFO}",
                    "{{item}} {{name}}", instant=True)], w=12, h=5, text_mode="value_and_name",
             mappings=UP_MAPPINGS, thresholds=UP_STEPS),
        timeseries("Kafka 消费积压（条）", "第 13 项：每个消费组的积压消息数。",
                   [query(f"sum by (consumergroup) (kafka_consumergroup_lag_sum{{{sel}}})",
                          "{{consumergroup}}")]),
        timeseries("Kafka 消费积压（秒）", "第 13 项：积压时长估算。",
                   [query(f"max by (consumergroup) (kafka_consumergroup_group_max_lag_seconds{{{sel}}})",
                          "{{consumergroup}}")],
                   unit="s", thresholds=steps((None, GREEN), (obj.kafka_lag_seconds,
                                                              RED)), threshold_lines=True),
        *dashboards_data.panels(sel),  # items 14, 16-19 (dashboards_data.py)
        *_item_checks_panels(items, 'zone=~"$zone", item=~"$item", check=~"$check"'),
    ]
    return dashboard(
        "einvoice-pipeline", "电子发票 数据管道",
        f"数据管道：{_items_text(i for i in ITEMS if i.id in items)}。",
        panels, variables=[zone_var(), item_var(items), check_var()], extra_tags=["详情"])


def hosts(obj: Objectives) -> Dashboard:
    from einvoice_core.generate.dashboards_hosts_node import host_var, node_panels
    from einvoice_core.generate.dashboards_logs import log_panels  # builds on this module's helpers

    items = HOST_LOG_ITEMS
    sel = 'zone=~"$zone", item=~"$item", check=~"$check"'
    panels: list[Panel] = [
        text_panel("说明",
                   "第 03、09 项（服务器操作系统日志检查）的结果以统一检查指标呈现：每个检查对应一类日志规则"
                   "（OOM、磁盘/IO 错误、段错误、认证失败、内核错误），失败原因 `threshold` 表示日志中"
                   "出现了超过阈值的"
                   "匹配行。全部服务器的主机资源（磁盘、inode、内存、负载、时钟）"
                   "见下方 node_exporter 一行。", h=3),
        stat("各项状态", "第 03、09 项：1 全部检查成功，0 有检查失败。",
             [query(f'einvoice:item_up{{zone=~"$zone", item=~"$item"}} * on (item, zone) group_left (name)'
                    f" {ITEM_INFO}", "{{item}} {{name}}", instant=True)], w=24, h=5,
             text_mode="value_and_name",
             mappings=UP_MAPPINGS, thresholds=UP_STEPS),
        *_item_checks_panels(items, sel),
        *log_panels(sel),
        *node_panels(),
    ]
    return dashboard(
        "einvoice-hosts", "电子发票 主机与日志",
        f"主机与系统日志：{_items_text(i for i in ITEMS if i.id in items)}。",
        panels, variables=[zone_var(), item_var(items), check_var(), host_var()], extra_tags=["详情"])


def item_detail(obj: Objectives) -> Dashboard:
    sel = 'zone=~"$zone", item=~"$item", check=~"$check", target=~"$target"'
    panels: list[Panel] = [
        stat("监控项", "所选监控项的状态：1 全部检查成功，0 有检查失败。",
             [query(f'einvoice:item_up{{zone=~"$zone", item=~"$item"}} * on (item, zone) group_left (name)'
                    f" {ITEM_INFO}", "{{item}} {{name}}", instant=True)], w=24, h=5,
             text_mode="value_and_name",
             mappings=UP_MAPPINGS, thresholds=UP_STEPS, value_size=32),
        *_item_checks_panels((), sel),
        table("相关告警", "与所选监控项相关的正在触发或待触发的告警。",
              [query('ALERTS{item=~"$item", zone=~"$zone"}', table=True)], h=7,
              columns={"alertstate": "状态", "severity": "级别", "alertname": "告警", "check": "检查",
                       "target": "目标"},
              mappings={"severity": SEVERITY_MAPPINGS,
                        "alertstate": [value_map({"firing": "触发中", "pending": "待触发"})]},
              thresholds=steps((None, RED))),
    ]
    return dashboard(
        "einvoice-item-detail", "电子发票 监控项详情",
        "任一监控项（01–20）的检查结果、耗时、失败原因与相关告警；运维大屏上点击方块进入。",
        panels, variables=[zone_var(), item_var(), check_var(), target_var()], extra_tags=["详情"])


def exporter_health(obj: Objectives) -> Dashboard:
    panels: list[Panel] = [
        stat("采集器在线", "Prometheus 能否抓取采集器（up{job=\"einvoice-exporter\"}）与通知服务。",
             [query('up{job=~"einvoice-exporter|einvoice-notifier"}', "{{job}} {{instance}}", instant=True)],
             w=8, h=5, mappings=UP_MAPPINGS, thresholds=UP_STEPS, text_mode="value_and_name"),
        stat("配置加载", "最近一次配置重新加载是否成功（失败时仍使用旧配置运行）。",
             [query("einvoice_exporter_config_last_reload_successful", "{{instance}}", instant=True)],
             w=8, h=5, mappings=[value_map({"0": "失败", "1": "成功"}, {"0": RED, "1": GREEN})],
             thresholds=UP_STEPS, text_mode="value_and_name"),
        stat("版本", "采集器版本（einvoice_exporter_build_info）。",
             [query("count by (version) (einvoice_exporter_build_info)", "{{version}}", instant=True)],
             w=8, h=5, text_mode="name", color_mode="none"),
        stat("配置的检查", "运行中配置的检查数与模块数（按类型）。",
             [query("sum(einvoice_exporter_checks_configured)", "检查", instant=True),
              query("sum by (kind) (einvoice_exporter_modules_configured)", "模块 {{kind}}", instant=True,
                    ref="B")], w=12, h=5, text_mode="value_and_name", color_mode="none"),
        stat("超时仍在运行", "超过期限仍未结束的检查（已按 timeout 上报，结束前不会重复启动）；持续大于 0 "
             "说明目标卡住或超时设置过短。",
             [query("sum(einvoice_exporter_checks_overrunning)", "超时仍在运行", instant=True)],
             w=6, h=5, thresholds=steps((None, GREEN), (1, AMBER))),
        stat("距上次成功加载配置", "距最近一次成功加载配置的时间。",
             [query("time() - max(einvoice_exporter_config_last_reload_success_timestamp_seconds)",
                    "距上次成功加载", instant=True)], w=6, h=5, unit="s", color_mode="none"),
        timeseries("采集器处理耗时", "采集器处理一次 /metrics 请求（运行或等待所有检查）的耗时。",
                   [query("einvoice_exporter_scrape_duration_seconds", "{{instance}}")], unit="s"),
        timeseries("抓取耗时", "Prometheus 抓取 /metrics 的耗时；所有检查并发执行，约等于最慢检查的耗时。",
                   [query('scrape_duration_seconds{job=~"einvoice-exporter|einvoice-notifier"}',
                          "{{job}} {{instance}}")], unit="s"),
        timeseries("样本数", "每次抓取返回的样本数。",
                   [query('scrape_samples_scraped{job=~"einvoice-exporter|einvoice-notifier"}',
                          "{{job}} {{instance}}")]),
        timeseries("检查数（按结果）", "配置的检查数，按最近一次结果。",
                   [query("count(einvoice_check_up == 1) or vector(0)", "成功"),
                    query("count(einvoice_check_up == 0) or vector(0)", "失败", ref="B")], stack=True),
        timeseries("最慢的检查", "耗时最长的 10 个检查。",
                   [query("topk(10, einvoice_check_duration_seconds)", "{{check}}")], unit="s"),
        timeseries("结果缓存时长",
                   "距检查上次实际运行的时间（设置了 interval 的检查在两次运行之间使用缓存结果）。",
                   [query("topk(10, time() - einvoice_check_last_run_timestamp_seconds)",
                          "{{check}}")], unit="s"),
        timeseries("尝试次数", "最近一次运行的尝试次数（含重试）；大于 1 表示目标不稳定。",
                   [query("topk(10, einvoice_check_attempts)", "{{check}}")]),
        timeseries("失败原因（全部检查）", "每 5 分钟失败次数，按原因。",
                   [query("sum by (reason) (increase(einvoice_check_failures_total[5m])) > 0", "{{reason}}")],
                   w=24, bars=True, stack=True),
    ]
    return dashboard(
        "einvoice-exporter", "电子发票 采集器自身健康",
        "采集器（einvoice-exporter）与通知服务能否被抓取、配置加载、抓取耗时、检查耗时与失败原因。",
        panels, extra_tags=["详情"])


def apps_dashboard(obj: Objectives) -> Dashboard:
    from einvoice_core.generate.dashboards_apps import apps

    return apps(obj)


BUILDERS: dict[str, Callable[[Objectives], Dashboard]] = {
    "ops-wall": ops_wall,
    "sla": sla,
    "oncall": oncall,
    "item-detail": item_detail,
    "network": network,
    "redis": redis_dashboard,
    "elasticsearch": elasticsearch_dashboard,
    "kafka": kafka_dashboard,
    "pipeline": pipeline,
    "hosts": hosts,
    "exporter": exporter_health,
    "apps": apps_dashboard,
}
"""File stem -> builder; the uid of each is `einvoice-<stem>`."""


def build_all(objectives: Objectives | None = None) -> dict[str, Dashboard]:
    obj = objectives or load_objectives()
    return {stem: builder(obj) for stem, builder in BUILDERS.items()}


def render(board: Dashboard) -> str:
    return json.dumps(board, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_all(root: Path) -> list[Path]:
    """Write the generated files under `root` and return their paths."""
    out = root / OUTPUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, board in build_all().items():
        path = out / f"{stem}.json"
        path.write_text(render(board), encoding="utf-8")
        written.append(path)
    return written
