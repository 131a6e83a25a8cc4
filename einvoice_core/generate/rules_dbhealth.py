"""Database-health alerts (issue 20): the file `einvoice-dbhealth.rules.yml` and its promtool tests
`tests/dbhealth.test.yml`, from the series of the sql kind's templates in config/example.yml
(`oracle_health`, `mysql_health`, `mysql_replica`; a column becomes `einvoice_sql_<column>`, named
after the oracledb_exporter / mysqld_exporter metric where one exists) and the `dbhealth` section of
thresholds.yaml.

Kept apart from rules.py, which adds the two files with one line each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from einvoice_core.catalogue import Severity
from einvoice_core.thresholds import Thresholds, duration_seconds

FILE_NAME = "einvoice-dbhealth.rules.yml"
TEST_FILE_NAME = "tests/dbhealth.test.yml"
P = "einvoice_sql_"
WHO = "【{{ $labels.item }}】数据库 {{ $labels.target }} "
VALUE0 = '{{ printf "%.0f" $value }}'
ORA_T = "{{ $labels.target }}"
SESSIONS = {"resource_name": "sessions"}


@dataclass(frozen=True)
class Case:
    """The promtool case of one alert: series (metric suffix, extra labels, healthy value, bad value)."""

    query: str
    series: tuple[tuple[str, dict[str, str], float, float], ...]
    value: str = ""
    """How `{{ printf "%.0f" $value }}` renders at the firing evaluation."""


def _alerts(th: Thresholds) -> list[tuple[dict[str, Any], Case]]:
    from einvoice_core.generate.rules import _alert, _num, _zh

    h = th.dbhealth
    age = duration_seconds(h.backup_max_age)
    out: list[tuple[dict[str, Any], Case]] = []

    def add(name: str, expr: str, severity: Severity, summary: str, description: str, for_: str,
            case: Case) -> None:
        out.append((_alert(th, name, expr, severity, WHO + summary, description, for_=for_), case))

    add("EinvoiceMysqlReplicationStopped", f"{P}mysql_global_status_slave_running == 0", Severity.CRITICAL,
        "复制已停止",
        f"MySQL/MariaDB 从库 {{{{ $labels.target }}}} 的复制线程未在运行（Slave_running=OFF），已持续 "
        f"{_zh(h.replication_stopped_for)}。从库数据不再更新，读从库的查询与统计会过时。"
        "请在从库执行 SHOW SLAVE STATUS 查看 Last_IO_Error / Last_SQL_Error。",
        h.replication_stopped_for,
        Case("replication", (("mysql_global_status_slave_running", {}, 1, 0),)))
    add("EinvoiceMysqlReplicationLag",
        f"{P}mysql_heartbeat_now_timestamp_seconds - {P}mysql_heartbeat_stored_timestamp_seconds"
        f" > {_num(h.replication_lag_seconds)}", Severity.WARNING, "复制延迟",
        f"从库 {{{{ $labels.target }}}} 的心跳表（pt-heartbeat）落后主库 {VALUE0} 秒，超过 "
        f"{_num(h.replication_lag_seconds)} 秒，已持续 {_zh(h.replication_lag_for)}。"
        "请检查从库负载、大事务与复制线程状态。",
        h.replication_lag_for,
        Case("heartbeat", (("mysql_heartbeat_now_timestamp_seconds", {}, 100000, 100000),
                           ("mysql_heartbeat_stored_timestamp_seconds", {}, 99990,
                            100000 - 2 * h.replication_lag_seconds)),
             f"{2 * h.replication_lag_seconds:.0f}"))
    add("EinvoiceMysqlConnectionsHigh",
        f"{P}mysql_global_status_threads_connected / {P}mysql_global_variables_max_connections"
        f" > {_num(h.connections_ratio_warning)}", Severity.WARNING, "连接数接近上限",
        f"MySQL/MariaDB {{{{ $labels.target }}}} 的连接数超过 max_connections 的 "
        f"{h.connections_ratio_warning:.0%}，已持续 {_zh(h.connections_for)}。"
        "连接用尽后应用将无法连接数据库；"
        "请检查连接池配置与连接泄漏（SHOW PROCESSLIST）。",
        h.connections_for,
        Case("global_status", (("mysql_global_status_threads_connected", {}, 10, 95),
                               ("mysql_global_variables_max_connections", {}, 100, 100))))
    add("EinvoiceMysqlLongTransaction",
        f"{P}innodb_trx_oldest_seconds > {_num(h.long_transaction_seconds)}", Severity.WARNING, "长事务",
        f"MySQL/MariaDB {{{{ $labels.target }}}} 最老的未提交 InnoDB 事务已运行 {VALUE0} 秒（阈值 "
        f"{_num(h.long_transaction_seconds)} 秒）。长事务持有锁并阻止 undo 清理；"
        "请在 information_schema.innodb_trx 找到该事务的线程，确认后提交或终止。",
        h.long_transaction_for,
        Case("innodb_trx", (("innodb_trx_oldest_seconds", {}, 5, 2 * h.long_transaction_seconds),),
             f"{2 * h.long_transaction_seconds:.0f}"))
    add("EinvoiceDatabaseBackupTooOld",
        f"time() - {P}backup_last_success_timestamp_seconds > {age:.0f}\n"
        f"or {P}rman_backup_age_seconds > {age:.0f}",
        Severity.WARNING, "备份过旧：{{ $labels.backup_type }}",
        f"数据库 {{{{ $labels.target }}}} 类型 {{{{ $labels.backup_type }}}} 的最近一次成功备份已超过 "
        f"{_zh(h.backup_max_age)}（MySQL 读备份日志表，Oracle 读 V$RMAN_BACKUP_JOB_DETAILS）。"
        "请检查备份任务是否执行、是否失败，以及备份介质空间。",
        "0s",
        Case("rman_backup", (("rman_backup_age_seconds", {"backup_type": "DB FULL"}, 3600, 2 * age),)))
    add("EinvoiceDatabaseBackupFailed",
        f"{P}backup_last_failed == 1 or {P}rman_backup_last_failed == 1", Severity.WARNING,
        "最近一次备份失败：{{ $labels.backup_type }}",
        "数据库 {{ $labels.target }} 类型 {{ $labels.backup_type }} 的最近一次备份失败。"
        "请查看备份日志（RMAN 输出或备份脚本日志），修复后重新执行备份。",
        h.backup_failed_for,
        Case("backup_log", (("backup_last_failed", {"backup_type": "full"}, 0, 1),)))
    for severity, limit in ((Severity.WARNING, h.tablespace_used_percent_warning),
                            (Severity.CRITICAL, h.tablespace_used_percent_critical)):
        upper = (f" <= {_num(h.tablespace_used_percent_critical)}" if severity == Severity.WARNING else "")
        bad = (h.tablespace_used_percent_warning + h.tablespace_used_percent_critical) / 2 \
            if severity == Severity.WARNING else (h.tablespace_used_percent_critical + 100) / 2
        add("EinvoiceOracleTablespaceFull",
            f"{P}oracledb_tablespace_used_percent > {_num(limit)}{upper}", severity,
            "表空间 {{ $labels.tablespace }} 使用率高",
            f"Oracle {ORA_T} 表空间 {{{{ $labels.tablespace }}}} 已使用 {VALUE0}%"
            f"（含可自动扩展的上限，阈值 {_num(limit)}%），已持续 {_zh(h.tablespace_for)}。"
            "表空间用尽后写入失败；请清理或增加数据文件。",
            h.tablespace_for,
            Case("tablespace", (("oracledb_tablespace_used_percent",
                                 {"tablespace": "EINV_DATA", "type": "PERMANENT"}, 50, bad),), f"{bad:.0f}"))
    for severity, limit in ((Severity.WARNING, h.fra_used_percent_warning),
                            (Severity.CRITICAL, h.fra_used_percent_critical)):
        upper = f" <= {_num(h.fra_used_percent_critical)}" if severity == Severity.WARNING else ""
        bad = (h.fra_used_percent_warning + h.fra_used_percent_critical) / 2 \
            if severity == Severity.WARNING else (h.fra_used_percent_critical + 100) / 2
        add("EinvoiceOracleFraFull", f"{P}fra_used_percent > {_num(limit)}{upper}", severity,
            "快速恢复区使用率高",
            f"Oracle {ORA_T} 快速恢复区（FRA，归档日志与备份）已使用 {VALUE0}%（扣除可回收部分，"
            f"阈值 {_num(limit)}%），已持续 {_zh(h.fra_for)}。写满后归档停止、数据库挂起；"
            "请备份并删除已备份的归档日志（RMAN DELETE ARCHIVELOG）或扩大 DB_RECOVERY_FILE_DEST_SIZE。",
            h.fra_for, Case("fra", (("fra_used_percent", {}, 40, bad),), f"{bad:.0f}"))
    add("EinvoiceOracleBlockingSessions", f"{P}blocked_sessions > 0", Severity.WARNING, "会话被阻塞",
        f"Oracle {ORA_T} 有 {VALUE0} 个会话在等待其他会话持有的锁，已持续 {_zh(h.blocking_for)}。"
        "请用 V$SESSION 的 BLOCKING_SESSION 找到阻塞源，确认后提交、回滚或终止该会话。",
        h.blocking_for, Case("sessions", (("blocked_sessions", {}, 0, 3),), "3"))
    add("EinvoiceOracleLongRunningSql", f"{P}long_running_sql > 0", Severity.WARNING, "长时间运行的 SQL",
        f"Oracle {ORA_T} 有 {VALUE0} 个用户调用运行超过 10 分钟，"
        f"已持续 {_zh(h.long_running_sql_for)}。"
        "请用 V$SESSION（SQL_ID、LAST_CALL_ET）与 V$SQL 查看语句与执行计划。",
        h.long_running_sql_for, Case("sessions", (("long_running_sql", {}, 0, 2),), "2"))
    add("EinvoiceOracleSessionsHigh",
        f"{P}oracledb_resource_current_utilization / ({P}oracledb_resource_limit_value > 0)"
        f" > {_num(h.sessions_ratio_warning)}", Severity.WARNING, "{{ $labels.resource_name }} 接近上限",
        f"Oracle {{{{ $labels.target }}}} 的 {{{{ $labels.resource_name }}}} 超过上限的 "
        f"{h.sessions_ratio_warning:.0%}，已持续 {_zh(h.sessions_for)}（V$RESOURCE_LIMIT）。"
        "达到上限后新连接被拒绝（ORA-00018 / ORA-00020）；请检查连接池与空闲会话。",
        h.sessions_for,
        Case("resource_limit", (("oracledb_resource_current_utilization", SESSIONS, 100, 950),
                                ("oracledb_resource_limit_value", SESSIONS, 1000, 1000))))
    add("EinvoiceOracleDataGuardLag", f"{P}dataguard_lag_seconds > {_num(h.dataguard_lag_seconds)}",
        Severity.WARNING, "Data Guard 延迟（{{ $labels.lag_type }}）",
        f"Oracle 备库 {{{{ $labels.target }}}} 的 {{{{ $labels.lag_type }}}} 为 {VALUE0} 秒，超过 "
        f"{_num(h.dataguard_lag_seconds)} 秒，已持续 {_zh(h.dataguard_lag_for)}（V$DATAGUARD_STATS）。"
        "请检查主备网络、备库 MRP 进程与归档传输。",
        h.dataguard_lag_for,
        Case("dataguard", (("dataguard_lag_seconds", {"lag_type": "apply_lag"}, 3,
                            2 * h.dataguard_lag_seconds),),
             f"{2 * h.dataguard_lag_seconds:.0f}"))
    add("EinvoiceOracleInvalidObjects", f"{P}invalid_objects > 0", Severity.WARNING,
        "模式 {{ $labels.schema_name }} 有无效对象",
        f"Oracle {ORA_T} 模式 {{{{ $labels.schema_name }}}} 有 {VALUE0} 个无效对象（DBA_OBJECTS "
        f"STATUS=INVALID），已持续 {_zh(h.invalid_objects_for)}，多见于补丁或发布之后。"
        "请执行 utlrp.sql 或 DBMS_UTILITY.COMPILE_SCHEMA 重新编译并查看编译错误。",
        h.invalid_objects_for,
        Case("invalid_objects", (("invalid_objects", {"schema_name": "EINV"}, 0, 4),), "4"))
    return out


def groups(th: Thresholds) -> list[dict[str, Any]]:
    return [{"name": "einvoice-dbhealth", "interval": th.evaluation_interval,
             "rules": [rule for rule, _ in _alerts(th)]}]


def rule_file(th: Thresholds) -> dict[str, str]:
    from einvoice_core.generate.rules import HEADER, dump

    return {FILE_NAME: HEADER + dump({"groups": groups(th)})}


# --------------------------------------------------------------------------------------------
# promtool tests: every alert quiet before its `for:` has run out, firing after

CHANGE = 6
BASE = {"item": "10", "zone": "intranet", "check": "db-health", "target": "db.int.example.gov.cn:1521/EINV"}


def _render(text: str, labels: dict[str, str], value: str) -> str:
    text = re.sub(r"\{\{ \$labels\.([a-z_]+) \}\}", lambda m: labels[m.group(1)], text)
    return text.replace(VALUE0, value)


def tests(th: Thresholds) -> list[dict[str, Any]]:
    cases = []
    for rule, case in _alerts(th):
        for_m = int(duration_seconds(rule.get("for", "0s")) // 60)
        labels = {**BASE, "query": case.query}
        series, alert_labels = [], dict(labels)
        for suffix, extra, ok, bad in case.series:
            alert_labels.update(extra)
            series.append({"series": P + suffix + "{" + ",".join(f'{k}="{v}"' for k, v in
                                                                 {**labels, **extra}.items()) + "}",
                           "values": f"{ok:g}x{CHANGE - 1} {bad:g}x{for_m + 10}"})
        exp_labels = {**alert_labels, **rule["labels"]}
        annotations = {k: _render(v, exp_labels, case.value) for k, v in rule["annotations"].items()}
        cases.append({
            "interval": "1m",
            "name": f"{rule['alert']} {rule['labels']['severity']}",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": f"{CHANGE - 1 + max(for_m, 1) - 1}m" if for_m else f"{CHANGE - 1}m",
                 "alertname": rule["alert"], "exp_alerts": []},
                {"eval_time": f"{CHANGE + for_m + 1}m", "alertname": rule["alert"],
                 "exp_alerts": [{"exp_labels": exp_labels, "exp_annotations": annotations}]},
            ],
        })
    return cases


def test_file(th: Thresholds) -> dict[str, str]:
    from einvoice_core.generate.rules import HEADER, dump

    doc = {"rule_files": [f"../{FILE_NAME}"], "evaluation_interval": "1m", "tests": tests(th)}
    return {TEST_FILE_NAME: HEADER + dump(doc)}
