"""The params kind against real sources: redis-server, MariaDB, files and this host's /proc/sys, and
a local server answering as Elasticsearch's _cluster/settings (conftest names the documentation)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from einvoice_exporter.collectors import build_check
from einvoice_exporter.config import ConfigError, parse_config
from einvoice_exporter.outcome import Outcome, Reason

from tests.redis.conftest import StartRedis, start_redis  # noqa: F401 - the fixture
from tests.sql.conftest import MariaDB, new_mariadb
from tests.support.procs import free_port

from .conftest import FakeES

ROOT = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, module: str, target: str, baseline: str, timeout: float = 10) -> Outcome:
    (tmp_path / "baseline.yml").write_text(baseline, encoding="utf-8")
    config = parse_config(
        f"modules:\n  p:\n    kind: params\n    params: {{{module}, baseline: {tmp_path / 'baseline.yml'}}}\n"
        f"checks:\n  - {{name: params, item: '12', module: p, target: '{target}'}}\n", "x.yml")
    check = build_check(config.modules["p"])
    try:
        return check.run(target, timeout)
    finally:
        check.close()


def infos(outcome: Outcome) -> dict[str, tuple[str, str]]:
    """param -> (observed value label, expected value label)."""
    for name, _, _, samples in outcome.metrics.items():
        if name == "einvoice_param_info":
            return {labels["param"]: (labels["value"], labels["expected"]) for labels, _ in samples}
    return {}


def drift(outcome: Outcome, param: str) -> float | None:
    return outcome.metrics.value("einvoice_param_drift", {"param": param})


def exposition(outcome: Outcome) -> str:
    return repr(list(outcome.metrics.items()))


# --- Redis ------------------------------------------------------------------------------------

REDIS_BASELINE = """\
s:
  maxmemory: 104857600
  maxmemory-policy: allkeys-lru
  appendonly: "no"
  requirepass: (set)
  masterauth: (unset)
  not-a-parameter: (unset)
"""


def test_redis_config_get_against_the_baseline_and_a_change_clears_the_drift(start_redis, tmp_path):  # noqa: F811
    server = start_redis("--requirepass", "Secr3t-pw", "--maxmemory", "100mb",
                         "--maxmemory-policy", "noeviction")
    module = 'source: redis, section: s, redis: {password: "Secr3t-pw"}'
    outcome = run(tmp_path, module, server.address, REDIS_BASELINE)
    assert outcome.success, outcome.failure
    assert drift(outcome, "maxmemory") == 0
    assert outcome.metrics.value("einvoice_param_value", {"param": "maxmemory"}) == 104857600
    assert drift(outcome, "maxmemory-policy") == 1
    assert infos(outcome)["maxmemory-policy"] == ("noeviction", "allkeys-lru")
    assert drift(outcome, "appendonly") == 0
    assert infos(outcome)["requirepass"] == ("(set)", "(set)") and drift(outcome, "requirepass") == 0
    assert infos(outcome)["masterauth"] == ("(unset)", "(unset)")
    assert drift(outcome, "not-a-parameter") == 0
    assert outcome.metrics.value("einvoice_params_drifted") == 1
    assert outcome.metrics.value("einvoice_params_declared") == 6
    assert "Secr3t-pw" not in exposition(outcome)

    server.client(password="Secr3t-pw").config_set("maxmemory-policy", "allkeys-lru")
    after = run(tmp_path, module, server.address, REDIS_BASELINE)
    assert drift(after, "maxmemory-policy") == 0 and after.metrics.value("einvoice_params_drifted") == 0


def test_redis_wrong_password_and_refused_become_reasons(start_redis, tmp_path):  # noqa: F811
    server = start_redis("--requirepass", "right")
    wrong = run(tmp_path, 'source: redis, section: s, redis: {password: "wrong"}', server.address,
                REDIS_BASELINE)
    assert wrong.failure is not None and wrong.failure.reason == Reason.AUTH
    refused = run(tmp_path, "source: redis, section: s", f"127.0.0.1:{free_port()}", REDIS_BASELINE)
    assert refused.failure is not None and refused.failure.reason == Reason.REFUSED
    assert refused.metrics.value("einvoice_param_drift", {"param": "maxmemory"}) is None


# --- Elasticsearch ----------------------------------------------------------------------------

ES_BASELINE = """\
es:
  cluster.routing.allocation.enable: all
  indices.recovery.max_bytes_per_sec: 40mb
  action.destructive_requires_name: true
  cluster.routing.allocation.disk.watermark.low: 85%
  discovery.seed_hosts: [es-1, es-2, es-3]
  xpack.security.authc.token.enabled: (set)
  cluster.max_shards_per_node: (unset)
"""


def test_elasticsearch_effective_settings_transient_over_persistent_over_defaults(fake_es: FakeES, tmp_path):
    outcome = run(tmp_path, "source: elasticsearch, section: es", fake_es.url, ES_BASELINE)
    assert outcome.success, outcome.failure
    assert fake_es.paths == ["/_cluster/settings?include_defaults=true&flat_settings=true"]
    assert drift(outcome, "cluster.routing.allocation.enable") == 0  # transient "all" beats persistent
    assert drift(outcome, "action.destructive_requires_name") == 1  # default false, baseline true
    assert infos(outcome)["action.destructive_requires_name"] == ("false", "true")
    assert drift(outcome, "discovery.seed_hosts") == 0
    assert infos(outcome)["xpack.security.authc.token.enabled"] == ("(set)", "(set)")
    assert drift(outcome, "cluster.max_shards_per_node") == 0
    assert outcome.metrics.value("einvoice_params_drifted") == 1

    fake_es.body["transient"] = {}
    after = run(tmp_path, "source: elasticsearch, section: es", fake_es.url, ES_BASELINE)
    assert infos(after)["cluster.routing.allocation.enable"] == ("primaries", "all")
    assert drift(after, "cluster.routing.allocation.enable") == 1


def test_elasticsearch_credentials_refused_is_auth(fake_es: FakeES, tmp_path):
    fake_es.credentials = ("monitor", "right")
    module = 'source: elasticsearch, section: es, elasticsearch: {username: monitor, password: "wrong"}'
    outcome = run(tmp_path, module, fake_es.url, ES_BASELINE)
    assert outcome.failure is not None and outcome.failure.reason == Reason.AUTH
    ok = run(tmp_path, module.replace('"wrong"', '"right"'), fake_es.url, ES_BASELINE)
    assert ok.success, ok.failure


# --- MariaDB ----------------------------------------------------------------------------------

DB_BASELINE = """\
db:
  max_connections: 400
  character_set_server: utf8mb4
  long_query_time: 2
  slow_query_log: "OFF"
"""


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> MariaDB:
    db = new_mariadb(tmp_path_factory.mktemp("params-mariadb"))
    db.execute("CREATE DATABASE einv",
               "CREATE USER 'monitor'@'%' IDENTIFIED BY 'monitor-pw'",
               "CREATE USER 'writer'@'%' IDENTIFIED BY 'writer-pw'",
               "GRANT SELECT, UPDATE ON einv.* TO 'writer'@'%'")
    yield db
    db.stop()


def test_mariadb_global_variables_read_only_and_a_set_global_shows(mariadb: MariaDB, tmp_path):
    module = "source: mysql, section: db, mysql: {username: monitor, password: monitor-pw}"
    mariadb.execute("SET GLOBAL long_query_time = 10")
    # USAGE only: information_schema is readable by any account, so the target names it
    outcome = run(tmp_path, module, f"127.0.0.1:{mariadb.port}/information_schema", DB_BASELINE)
    assert outcome.success, outcome.failure
    assert drift(outcome, "max_connections") == 0  # the server runs with --max-connections=400
    assert drift(outcome, "character_set_server") == 0
    assert infos(outcome)["long_query_time"] == ("10.000000", "2")
    assert drift(outcome, "long_query_time") == 1
    assert outcome.metrics.value("einvoice_param_value", {"param": "long_query_time"}) == 10
    mariadb.execute("SET GLOBAL long_query_time = 2")
    after = run(tmp_path, module, f"127.0.0.1:{mariadb.port}/information_schema", DB_BASELINE)
    assert drift(after, "long_query_time") == 0  # 2.000000 is 2


def test_mariadb_account_that_can_write_fails_and_bad_password_is_auth(mariadb: MariaDB, tmp_path):
    writer = run(tmp_path, "source: mysql, section: db, mysql: {username: writer, password: writer-pw}",
                 f"127.0.0.1:{mariadb.port}/einv", DB_BASELINE)
    assert writer.failure is not None and writer.failure.reason == Reason.STATE
    assert "UPDATE" in writer.failure.detail
    wrong = run(tmp_path, "source: mysql, section: db, mysql: {username: monitor, password: nope}",
                f"127.0.0.1:{mariadb.port}/information_schema", DB_BASELINE)
    assert wrong.failure is not None and wrong.failure.reason == Reason.AUTH


# --- files and kernel -------------------------------------------------------------------------

NGINX_CONF = """\
user www-data;
worker_processes auto;  # one per core
events { worker_connections 10240; }
http {
    client_max_body_size 20m;
    keepalive_timeout 65;
    server_tokens off;
    server { listen 80; client_max_body_size 1m; }
    log_format main '$remote_addr - "$request"';
}
"""


def test_nginx_conf_checksum_and_directives_and_an_edit_drifts(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF, encoding="utf-8")
    digest = hashlib.sha256(NGINX_CONF.encode()).hexdigest()
    baseline = (f"n:\n  sha256: {digest}\n  worker_processes: auto\n  worker_connections: 10240\n"
                "  http.client_max_body_size: 20m\n  http.server.client_max_body_size: 1m\n"
                '  http.server_tokens: "off"\n  http.log_format: "main $remote_addr - \\"$request\\""\n')
    outcome = run(tmp_path, "source: file, format: nginx, section: n", str(conf), baseline)
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("einvoice_params_drifted") == 0, infos(outcome)
    conf.write_text(NGINX_CONF.replace("client_max_body_size 20m", "client_max_body_size 200m"),
                    encoding="utf-8")
    after = run(tmp_path, "source: file, format: nginx, section: n", str(conf), baseline)
    assert drift(after, "sha256") == 1 and drift(after, "http.client_max_body_size") == 1
    assert infos(after)["http.client_max_body_size"] == ("200m", "20m")
    assert drift(after, "http.server.client_max_body_size") == 0
    gone = run(tmp_path, "source: file, format: nginx, section: n", str(tmp_path / "absent.conf"), baseline)
    assert gone.failure is not None and gone.failure.reason == Reason.ERROR


def test_keyvalue_file_never_exports_a_secret_and_long_values_are_cut(tmp_path):
    conf = tmp_path / "redis.conf"
    long_value = "x" * 300
    conf.write_text(f"# redis\nmaxmemory 100\nmasterauth Hunter2-secret\nrename-command {long_value}\n"
                    "[mysqld]\nmax_connections = 800\n", encoding="utf-8")
    baseline = ("k:\n  maxmemory: 100\n  masterauth: (set)\n  rename-command: short\n"
                "  mysqld.max_connections: 800\n")
    outcome = run(tmp_path, "source: file, format: keyvalue, section: k", str(conf), baseline)
    assert drift(outcome, "masterauth") == 0 and infos(outcome)["masterauth"][0] == "(set)"
    assert "Hunter2" not in exposition(outcome)
    value = infos(outcome)["rename-command"][0]
    assert len(value) <= 64 and "sha256" in value and drift(outcome, "rename-command") == 1
    assert drift(outcome, "mysqld.max_connections") == 0


def test_sysctl_reads_this_hosts_proc_sys(tmp_path):
    swappiness = Path("/proc/sys/vm/swappiness").read_text().strip()
    other = str(int(swappiness) + 1)
    baseline = f"k:\n  kernel.ostype: Linux\n  vm.swappiness: {other}\n  kernel.no_such_setting: (unset)\n"
    outcome = run(tmp_path, "source: sysctl, section: k", "local", baseline)
    assert outcome.success, outcome.failure
    assert drift(outcome, "kernel.ostype") == 0
    assert infos(outcome)["vm.swappiness"] == (swappiness, other) and drift(outcome, "vm.swappiness") == 1
    assert drift(outcome, "kernel.no_such_setting") == 0
    elsewhere = run(tmp_path, "source: sysctl, section: k", "10.0.0.1", baseline)
    assert elsewhere.failure is not None and "local" in elsewhere.failure.detail


# --- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize(("module", "baseline", "message"), [
    ("source: redis, section: missing", "s: {maxmemory: 1}\n", "has no section 'missing'"),
    ("source: redis, section: s", "s: {requirepass: hunter2}\n", "looks like a secret"),
    ("source: redis, section: s", "s: {'max*': 1}\n", "the name must be a Redis parameter"),
    ("source: file, section: s", "s: {sha256: abc}\n", "format (nginx or keyvalue) is required"),
    ("source: file, format: nginx, section: s", "s: {sha256: abc}\n", "64 lower-case hex digits"),
    ("source: mysql, section: s", "s: {max_connections: 1}\n", "needs a mysql block"),
    ("source: mysql, section: s, mysql: {username: m, password: p}", "s: {\"x'; DROP\": 1}\n",
     "a global variable in lower case"),
    ("source: sysctl, section: s, redis: {}", "s: {vm.swappiness: 1}\n", "redis only applies"),
])
def test_a_bad_module_or_baseline_fails_at_start_naming_the_key(tmp_path, module, baseline, message):
    (tmp_path / "baseline.yml").write_text(baseline, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"modules\.p") as raised:
        parse_config(f"modules:\n  p:\n    kind: params\n    params: {{{module}, baseline: "
                     f"{tmp_path / 'baseline.yml'}}}\n", "x.yml")
    assert message in str(raised.value)


def test_the_committed_baseline_loads_for_every_section() -> None:
    from einvoice_exporter.collectors.params import load_baseline

    path = ROOT / "config" / "baseline" / "params.yml"
    sources = {"session_redis": "redis", "log_redis": "redis", "es_cluster": "elasticsearch",
               "intake_db": "mysql", "nginx_conf": "file", "kernel": "sysctl"}
    for section, source in sources.items():
        assert load_baseline(path, section, source)  # type: ignore[arg-type]


def test_through_the_exporter_runtime_series_carry_the_checks_identity_and_a_drift_is_not_a_failure(tmp_path):
    from einvoice_exporter.runtime import Runtime

    from tests.exporter.conftest import sample, scrape

    conf = tmp_path / "nginx.conf"
    conf.write_text("worker_processes 4;\n", encoding="utf-8")
    baseline = tmp_path / "baseline.yml"
    baseline.write_text("n: {worker_processes: auto}\nk: {kernel.ostype: Linux}\n")
    config = parse_config(
        "modules:\n"
        f"  nginx_conf: {{kind: params, params: {{source: file, format: nginx, section: n,"
        f" baseline: {baseline}}}}}\n"
        f"  kernel: {{kind: params, params: {{source: sysctl, section: k, baseline: {baseline}}}}}\n"
        "checks:\n"
        f"  - {{name: nginx-conf, item: '01', module: nginx_conf, target: {conf}}}\n"
        "  - {name: kernel-params, item: '01', module: kernel, target: local}\n", "x.yml")
    runtime = Runtime(config)
    try:
        text = scrape(runtime)
    finally:
        runtime.close()
    assert sample(text, "einvoice_param_drift", item="01", check="nginx-conf", target=str(conf),
                  param="worker_processes") == 1
    assert sample(text, "einvoice_param_info", check="nginx-conf", param="worker_processes", value="4",
                  expected="auto") == 1
    assert sample(text, "einvoice_param_drift", check="kernel-params", param="kernel.ostype") == 0
    assert sample(text, "einvoice_check_up", check="nginx-conf") == 1  # read fine: the drift alerts itself
