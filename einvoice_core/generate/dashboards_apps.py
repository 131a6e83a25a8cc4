"""The detail dashboard of items 05, 10 and 15: containers, WebLogic servers, micro-service registries
(`grafana_dashboards/apps.json`, uid `einvoice-apps`). Built with the helpers of dashboards.py, which
registers it with one line."""

from __future__ import annotations

from einvoice_core.generate.dashboards import (
    AMBER,
    GREEN,
    RED,
    SEL,
    Dashboard,
    Objectives,
    Panel,
    check_var,
    dashboard,
    item_var,
    query,
    row,
    steps,
    table,
    target_var,
    timeseries,
    value_map,
    zone_var,
)
from einvoice_core.thresholds import load_thresholds

ITEMS = ("05", "10", "15")
CONTAINER_STATE_ZH = {"created": "已创建", "running": "运行中", "restarting": "重启中", "paused": "已暂停",
                      "exited": "已退出", "removing": "删除中", "dead": "已失效"}
SERVER_STATE_ZH = {"RUNNING": "运行", "ADMIN": "管理模式", "STANDBY": "待机", "STARTING": "启动中",
                   "RESUMING": "恢复中", "SUSPENDING": "挂起中", "SHUTTING_DOWN": "关闭中",
                   "FORCE_SHUTTING_DOWN": "强制关闭中", "SHUTDOWN": "已关闭", "FAILED": "失败",
                   "UNKNOWN": "未知"}


def apps(obj: Objectives) -> Dashboard:
    th = load_thresholds().apps
    sel = SEL
    panels: list[Panel] = [
        row("容器（第 15 项）"),
        table("容器状态", "每个容器当前的状态（Docker State.Status）与镜像；不导出环境变量、命令行与日志。",
              [query(f"einvoice_container_state{{{sel}}} == 1", table=True)], w=12, h=8,
              columns={"target": "Docker", "name": "容器", "image": "镜像", "state": "状态"},
              color_cells=False,
              mappings={"state": [value_map(CONTAINER_STATE_ZH,
                                            {"running": GREEN, "restarting": RED, "exited": AMBER,
                                             "dead": RED})]}),
        timeseries("容器重启次数（10 分钟）",
                   f"每个容器最近 10 分钟按重启策略重启的次数；达到 {th.container_restarts} 次为紧急告警。",
                   [query(f"increase(einvoice_container_restarts_total{{{sel}}}[10m])", "{{name}}")], w=12,
                   thresholds=steps((None, GREEN), (th.container_restarts, RED)), threshold_lines=True,
                   minimum=0),
        table("期望容器", "声明必须运行的容器（名称或名称模式）：运行中的数量与要求的最少数量。",
              [query(f"einvoice_container_expected_running{{{sel}}}", table=True)], w=12, h=6,
              columns={"target": "Docker", "expected": "名称或模式"},
              thresholds=steps((None, RED), (1, GREEN))),
        table("容器异常", "健康检查失败或最近一次运行被 OOM 终止的容器。",
              [query(f'einvoice_container_health{{{sel}, status="unhealthy"}} == 1'
                     f" or einvoice_container_oom_killed{{{sel}}} == 1", table=True)], w=12, h=6,
              columns={"target": "Docker", "name": "容器", "image": "镜像", "status": "健康"},
              thresholds=steps((None, RED))),
        row("WebLogic（第 05、10 项）"),
        table("服务器状态", "各受管服务器的状态（RUNNING 为正常；ADMIN、FAILED 等为异常）。",
              [query(f"einvoice_weblogic_server_state{{{sel}}} == 1", table=True)], w=12, h=8,
              columns={"target": "管理服务器", "server": "服务器", "state": "状态"}, color_cells=False,
              mappings={"state": [value_map(SERVER_STATE_ZH, {"RUNNING": GREEN, "ADMIN": AMBER,
                                                              "FAILED": RED})]}),
        timeseries("卡住与占用线程",
                   "每台服务器的卡住线程（stuck）与占用线程（hogging）；受理服务器出现卡住线程为紧急告警。",
                   [query(f"wls_threadpool_stuck_thread_count{{{sel}}}", "{{server}} 卡住"),
                    query(f"wls_threadpool_hogging_thread_count{{{sel}}}", "{{server}} 占用")], w=12,
                   minimum=0),
        timeseries("线程池队列", "自调优线程池的排队请求数（queueLength）。",
                   [query(f"wls_threadpool_queue_length{{{sel}}}", "{{server}}")], w=12, minimum=0),
        timeseries("数据源连接", "JDBC 数据源的活动连接数与等待连接的请求数。",
                   [query(f"wls_datasource_active_connections_current_count{{{sel}}}",
                          "{{server}} {{name}} 活动"),
                    query(f"wls_datasource_waiting_for_connection_current_count{{{sel}}}",
                          "{{server}} {{name}} 等待")], w=12, minimum=0,
                   thresholds=steps((None, GREEN), (th.datasource_waiting_warning, AMBER))),
        row("微服务（第 15 项）"),
        table("健康实例", "注册中心（Nacos、Eureka）中每个微服务的健康实例数与要求的最少实例数。",
              [query(f'einvoice_service_instances{{{sel}, state="healthy"}}', table=True)], w=24, h=8,
              columns={"target": "注册中心", "service": "微服务"},
              thresholds=steps((None, RED), (1, GREEN))),
    ]
    return dashboard(
        "einvoice-apps", "电子发票 应用、容器与微服务",
        "第 05、10 项的 WebLogic 服务器（状态、线程池、数据源），第 15 项的容器（状态、重启、健康、OOM）"
        "与微服务注册中心（健康实例）。",
        panels, variables=[zone_var(), item_var(ITEMS), check_var(), target_var()], extra_tags=["详情"])
