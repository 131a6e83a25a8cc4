"""Host panels from node_exporter (issue 20): a row on the hosts dashboard and the wall's host-health
figure per item. Every series carries the `item` label of its scrape target (deploy/prometheus/
nodes/), so a full disk on an intake server is shown under item 05.

Kept apart from dashboards.py so the hooks there are one line each; built with its helpers, with the
thresholds of the `hosts` section of thresholds.yaml (the same numbers the alerts use).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import QueryVariable

from einvoice_core.generate import dashboards as d
from einvoice_core.generate import rules_hosts as r
from einvoice_core.thresholds import Hosts, load_thresholds

HOST_ALERTS = 'alertstate="firing", alertname=~"EinvoiceHost.+"'


def _hosts() -> Hosts:
    return load_thresholds().hosts


def host_var() -> QueryVariable:
    job = _hosts().job_regex
    return d.query_var("host", "主机", f'label_values(up{{job=~"{job}", zone=~"$zone"}}, instance)')


def wall_status_expr(job_regex: str) -> str:
    """Per item with node_exporter targets: 2 a critical host alert, 1 a warning, 0 all hosts fine;
    a single -1 ("no host list configured") when no node_exporter target exists at all."""
    worst = (f'max by (item) (2 * ALERTS{{{HOST_ALERTS}, severity="critical"}}'
             f' or ALERTS{{{HOST_ALERTS}, severity="warning"}}'
             f' or 0 * up{{job=~"{job_regex}"}})')
    named = f"({worst} * on (item) group_left (name) max by (item, name) (einvoice_item_info)) or {worst}"
    return f'{named} or on () label_replace(vector(-1), "name", "未配置主机清单", "", "")'



def wall_panels(obj: d.Objectives) -> list[d.Panel]:
    link = [("查看主机资源", "/d/einvoice-hosts?var-zone=All&${datasource:queryparam}")]
    return [d.stat(
        "主机健康（按监控项）",
        "各监控项所在服务器（node_exporter）的主机告警：绿色正常，橙色有警告（磁盘、inode、内存、交换分区、负载、"
        "时钟），红色有严重告警（磁盘将满或只读、内存将耗尽、时钟严重偏差）。只显示配置了主机清单的监控项；"
        "点击进入主机与日志看板。",
        [d.query(wall_status_expr(_hosts().job_regex), "{{item}} {{name}}", instant=True)],
        w=24, h=5, text_mode="value_and_name", value_size=24, title_size=16, links=link,
        mappings=[d.value_map({"-1": "未配置", "0": "正常", "1": "警告", "2": "严重"},
                              {"-1": d.GREY, "0": d.GREEN, "1": d.AMBER, "2": d.RED})],
        thresholds=d.steps((None, d.GREY), (0, d.GREEN), (1, d.AMBER), (2, d.RED)))]


def node_panels() -> list[d.Panel]:
    """The `主机资源` row of the hosts dashboard, filtered by its zone and host variables."""
    h = _hosts()
    sel = f'job=~"{h.job_regex}", zone=~"$zone", instance=~"$host"'
    free_steps = d.steps((None, d.RED), (h.filesystem_free_critical, d.AMBER),
                         (h.filesystem_free_warning, d.GREEN))
    memory_steps = d.steps((None, d.RED), (h.memory_available_critical, d.AMBER),
                           (h.memory_available_warning, d.GREEN))
    fs_columns = {"item": "监控项", "zone": "区域", "instance": "主机", "mountpoint": "挂载点",
                  "fstype": "类型"}
    readonly = (f'node_filesystem_readonly{{{sel}, fstype!~"{h.fstypes_exclude}", '
                f'mountpoint!~"{h.mountpoints_exclude}", mountpoint!~"{h.readonly_ok_mountpoints}"}}')
    low = ("lastNotNull", "min")
    return [
        d.row("主机资源（node_exporter，全部服务器）"),
        d.stat("在线主机", "Prometheus 能抓取其 node_exporter 的主机数（任务 node-<区域>）。",
               [d.query(f"count(up{{{sel}}} == 1) or vector(0)", "在线", instant=True)], w=8, h=5,
               color_mode="value"),
        d.stat("无法抓取的主机", "node_exporter 无法抓取的主机数；这些主机的磁盘、内存、时钟告警不会出现。",
               [d.query(f"count(up{{{sel}}} == 0) or vector(0)", "无法抓取", instant=True)], w=8, h=5,
               thresholds=d.steps((None, d.GREEN), (1, d.RED))),
        d.stat("只读文件系统",
               "处于只读状态的文件系统数（不含设计上只读的挂载点）；大于 0 多为磁盘错误后被重新挂载为只读。",
               [d.query(f"count({readonly} == 1) or vector(0)", "只读", instant=True)],
               w=8, h=5, thresholds=d.steps((None, d.GREEN), (1, d.RED))),
        d.table("文件系统可用空间", f"每个文件系统对普通用户可用的空间比例（{r.FREE}）；低于 "
                f"{h.filesystem_free_warning:.0%} 告警，低于 {h.filesystem_free_critical:.0%} 严重。"
                "按可用比例升序；监控项列是该主机承载的监控项。",
                [d.query(f"{r.FREE}{{{sel}}}", table=True)], w=12, h=8, columns=fs_columns,
                unit="percentunit", thresholds=free_steps, sort_by="Value"),
        d.table("预计写满时间", f"按最近 {h.fill_window} 的写入速度，7 天内会写满的文件系统（{r.TO_FULL}）；"
                "不在表中即不会很快写满。",
                [d.query(f"{r.TO_FULL}{{{sel}}} < 7 * 86400", table=True)], w=12, h=8, columns=fs_columns,
                unit="s", thresholds=d.steps((None, d.RED), (h.fill_critical_seconds, d.AMBER),
                                             (h.fill_warning_seconds, d.GREEN)), sort_by="Value"),
        d.timeseries("磁盘空间与 inode 可用比例",
                     f"各文件系统的可用空间比例（低于 {h.filesystem_free_warning:.0%} 告警）与可用 inode 比例"
                     f"（低于 {h.inodes_free_warning:.0%} 告警）。",
                     [d.query(f"{r.FREE}{{{sel}}}", "{{instance}} {{mountpoint}} 空间"),
                      d.query(f"{r.INODES}{{{sel}}}", "{{instance}} {{mountpoint}} inode", ref="B")],
                     unit="percentunit", minimum=0, maximum=1, thresholds=free_steps, threshold_lines=True,
                     legend_calcs=low),
        d.timeseries("可用内存与交换分区",
                     f"可用内存比例 MemAvailable / MemTotal（低于 {h.memory_available_warning:.0%} 告警）与"
                     f"交换分区已用比例（超过 {h.swap_used_warning:.0%} 告警，只含配置了交换分区的主机）。",
                     [d.query(f"{r.MEMORY}{{{sel}}}", "{{instance}} 可用内存"),
                      d.query(f"{r.SWAP}{{{sel}}}", "{{instance}} 交换分区已用", ref="B")],
                     unit="percentunit", minimum=0, maximum=1, thresholds=memory_steps, threshold_lines=True,
                     legend_calcs=low),
        d.timeseries("每核负载（15 分钟）",
                     f"node_load15 / CPU 核数（{r.LOAD}）；超过 {h.load_per_core_warning:g} 告警。",
                     [d.query(f"{r.LOAD}{{{sel}}}", "{{instance}}")],
                     thresholds=d.steps((None, d.GREEN), (h.load_per_core_warning, d.AMBER)),
                     threshold_lines=True),
        d.timeseries("时钟偏差（秒）",
                     f"node_timex_offset_seconds；超过 {h.clock_offset_warning_seconds:g} 秒告警，"
                     f"超过 {h.clock_offset_critical_seconds:g} 秒严重；未同步（node_timex_sync_status 为 0）"
                     "另有告警。",
                     [d.query(f"node_timex_offset_seconds{{{sel}}}", "{{instance}}")], unit="s",
                     thresholds=d.steps((None, d.GREEN), (h.clock_offset_warning_seconds, d.AMBER),
                                        (h.clock_offset_critical_seconds, d.RED))),
    ]
