"""The `redis` collector against real redis-server processes (standalone, ACL, replica, TLS, Sentinel)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from einvoice_exporter.collectors import redis as redis_kind
from einvoice_exporter.collectors._redis_common import (
    IDLE_PRUNE_SECONDS,
    ConnectionSettings,
    Deadline,
    RedisConnector,
)
from einvoice_exporter.outcome import MetricSet, Outcome, Reason
from einvoice_exporter.schema import ExporterConfig
from pydantic import ValidationError

from tests.redis.conftest import RedisServer, StartRedis, established_to
from tests.support.certs import TestCA, self_signed
from tests.support.collectors import run_once
from tests.support.procs import Proc, free_port, wait_until


def run(target: str, timeout: float = 5.0, **settings: object) -> Outcome:
    return run_once(redis_kind, redis_kind.Settings.model_validate(settings), target, timeout)


def link_up(metrics: MetricSet, addr: str | None = None) -> float | None:
    """redis_master_link_up of one instance, whatever its master_host/master_port labels."""
    for name, _, _, samples in metrics.items():
        for labels, value in samples:
            if name == "redis_master_link_up" and labels.get("addr") == addr:
                assert set(labels) - {"addr"} == {"master_host", "master_port"}
                return value
    return None


def label_values(outcome: Outcome) -> set[str]:
    return {value for _, _, _, samples in outcome.metrics.items() for labels, _ in samples
            for value in labels.values()}


def test_standalone_with_password_reports_redis_exporter_series(start_redis: StartRedis) -> None:
    server = start_redis("--requirepass", "s3cret-pw", "--maxmemory", "64mb")
    client = server.client(password="s3cret-pw")
    client.set("a", 1)
    client.set("b", 2, ex=300)
    client.select(3)
    client.set("c", 3)

    outcome = run(server.address, password="s3cret-pw")

    assert outcome.success, outcome.failure
    m = outcome.metrics
    assert m.value("redis_up") == 1
    assert m.value("redis_db_keys", {"db": "db0"}) == 2
    assert m.value("redis_db_keys_expiring", {"db": "db0"}) == 1
    assert m.value("redis_db_keys", {"db": "db3"}) == 1
    assert m.value("redis_memory_max_bytes") == 64 * 1024 * 1024
    assert 0 < (m.value("redis_memory_used_bytes") or 0) < 64 * 1024 * 1024
    assert (m.value("redis_connected_clients") or 0) >= 2  # the test's client and the collector's
    assert m.value("redis_rdb_last_bgsave_status") == 1
    assert m.value("redis_aof_last_write_status") == 1
    assert m.value("redis_slowlog_length") == 0
    assert m.value("redis_master_link_up") is None  # replicas only, as redis_exporter does
    for name in ("redis_blocked_clients", "redis_rejected_connections_total", "redis_evicted_keys_total",
                 "redis_expired_keys_total", "redis_instantaneous_ops_per_sec", "redis_connected_slaves",
                 "redis_uptime_in_seconds"):
        assert m.value(name) is not None, name
    info = [labels for name, _, _, samples in m.items() if name == "redis_instance_info"
            for labels, _ in samples]
    assert info[0]["role"] == "master"
    assert info[0]["redis_version"].startswith("7.")
    assert set(info[0]) == {"role", "redis_version", "redis_mode", "maxmemory_policy", "redis_build_id",
                            "os", "tcp_port", "run_id", "process_id"}  # redis_exporter's labels
    assert info[0]["tcp_port"] == str(server.port)


def test_wrong_or_missing_password_is_auth_and_never_leaks(start_redis: StartRedis) -> None:
    server = start_redis("--requirepass", "right-pw")

    wrong = run(server.address, password="hunter2-wrong")
    missing = run(server.address)

    for outcome in (wrong, missing):
        assert outcome.failure is not None
        assert outcome.failure.reason == Reason.AUTH
        assert outcome.metrics.value("redis_up") == 0
    assert "hunter2-wrong" not in wrong.failure.detail  # type: ignore[union-attr]
    assert not any("hunter2" in value for value in label_values(wrong))


def test_password_file_is_read_at_each_run(start_redis: StartRedis, tmp_path: Path) -> None:
    server = start_redis("--requirepass", "first-pw")
    secret = tmp_path / "redis.pw"
    secret.write_text("first-pw\n")
    check = redis_kind.build(redis_kind.Settings(password_file=secret))

    assert check.run(server.address, 5).success
    admin = server.client(password="first-pw")
    admin.config_set("requirepass", "second-pw")
    admin.client_kill_filter(_type="normal")  # as after a rotation: old sessions are dropped
    assert check.run(server.address, 5).failure.reason == Reason.AUTH  # type: ignore[union-attr]
    secret.write_text("second-pw\n")
    assert check.run(server.address, 5).success
    check.close()


def test_kept_connection_is_reused_and_survives_a_restart(start_redis: StartRedis) -> None:
    server = start_redis("--requirepass", "pw")
    check = redis_kind.build(redis_kind.Settings(password="pw"))
    admin = server.client(password="pw")
    try:
        assert check.run(server.address, 5).success
        accepted = admin.info("stats")["total_connections_received"]
        for _ in range(5):
            assert check.run(server.address, 5).success
        assert admin.info("stats")["total_connections_received"] == accepted  # no new connection

        server.proc.stop()
        server.restart()  # same port; the kept socket is now dead
        outcome = check.run(server.address, 5)
        assert outcome.success, outcome.failure
        assert (outcome.metrics.value("redis_uptime_in_seconds") or 0) < 60
    finally:
        check.close()
    wait_until(lambda: len(server.client(password="pw").client_list()) == 1, what="kept connection closed")


def test_fresh_connection_per_run_when_not_persistent(start_redis: StartRedis) -> None:
    server = start_redis()
    check = redis_kind.build(redis_kind.Settings(persistent_connections=False))
    admin = server.client()
    check.run(server.address, 5)
    accepted = admin.info("stats")["total_connections_received"]
    for _ in range(3):
        assert check.run(server.address, 5).success
    assert admin.info("stats")["total_connections_received"] == accepted + 3


def test_acl_user(start_redis: StartRedis) -> None:
    server = start_redis("--user", "default", "off",
                         "--user", "monitor", "on", ">mon-pw", "+info", "+slowlog|len",
                         "--user", "infoonly", "on", ">io-pw", "+info",
                         "--user", "nobody", "on", ">nb-pw", "+ping")

    full = run(server.address, username="monitor", password="mon-pw")
    info_only = run(server.address, username="infoonly", password="io-pw")
    denied = run(server.address, username="nobody", password="nb-pw")
    wrong = run(server.address, username="monitor", password="nope")

    assert full.success, full.failure
    assert full.metrics.value("redis_slowlog_length") == 0
    # Without +slowlog the series is absent and the check still judges the instance.
    assert info_only.success, info_only.failure
    assert info_only.metrics.value("redis_slowlog_length") is None
    assert info_only.metrics.value("redis_up") == 1
    assert denied.failure is not None and denied.failure.reason == Reason.AUTH
    assert wrong.failure is not None and wrong.failure.reason == Reason.AUTH


def test_unreachable_port_is_refused() -> None:
    outcome = run(f"127.0.0.1:{free_port()}")
    assert outcome.failure is not None and outcome.failure.reason == Reason.REFUSED
    assert outcome.metrics.value("redis_up") == 0


def test_silent_server_is_timeout_within_the_deadline() -> None:
    with socket.socket() as listener:  # accepts connections (kernel backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        started = time.monotonic()
        outcome = run(f"127.0.0.1:{listener.getsockname()[1]}", timeout=0.5)
        elapsed = time.monotonic() - started
    assert outcome.failure is not None and outcome.failure.reason == Reason.TIMEOUT
    assert elapsed < 0.5 + 10, "the run ignored its timeout"


def test_redis_killed_mid_scrape_is_a_bounded_reason(start_redis: StartRedis) -> None:
    server = start_redis()
    blocker = server.client(socket_timeout=30)
    threading.Thread(target=lambda: _ignore_errors(blocker.execute_command, "DEBUG", "SLEEP", 20),
                     daemon=True).start()
    # Connected is not yet asleep: redis-py sends its handshake before DEBUG SLEEP, and a collector
    # served in between would finish before the kill. Busy means a PING gets no answer.
    wait_until(lambda: _does_not_answer(server), timeout=30, what="server asleep in DEBUG SLEEP")
    result: list[Outcome] = []
    scrape = threading.Thread(target=lambda: result.append(run(server.address, timeout=15)))
    scrape.start()
    # The collector is connected and waiting for an answer the busy server cannot give yet.
    wait_until(lambda: established_to(server.port) >= 2, what="collector connected")
    server.proc.kill()
    scrape.join(15)

    assert result, "run() must return"
    failure = result[0].failure
    assert failure is not None and failure.reason in (Reason.RESET, Reason.REFUSED)
    assert result[0].metrics.value("redis_up") == 0


def _does_not_answer(server: RedisServer) -> bool:
    probe = server.client(socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        probe.ping()
    except redis.exceptions.TimeoutError:
        return True
    finally:
        probe.close()
    return False


def _ignore_errors(fn: object, *args: object) -> None:
    with contextlib.suppress(Exception):  # the server is killed under this call on purpose
        fn(*args)  # type: ignore[operator]


def test_memory_share_of_maxmemory_threshold(start_redis: StartRedis) -> None:
    server = start_redis()
    client = server.client()
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(int(used * 1.5)))

    strict = run(server.address, memory_used_max_ratio=0.5)
    relaxed = run(server.address, memory_used_max_ratio=0.95)
    disabled = run(server.address, memory_used_max_ratio=None)

    assert strict.failure is not None and strict.failure.reason == Reason.THRESHOLD
    assert strict.metrics.value("redis_memory_max_bytes") == int(used * 1.5)
    assert relaxed.success and disabled.success


def test_failed_background_save_is_state(start_redis: StartRedis) -> None:
    server = start_redis("--enable-protected-configs", "local")
    client = server.client()
    client.set("k", "v")
    gone = server.dir / "gone"
    gone.mkdir()
    client.config_set("dir", str(gone))
    gone.rmdir()  # even root cannot write into a directory that no longer exists
    client.bgsave()
    wait_until(lambda: client.info("persistence")["rdb_last_bgsave_status"] != "ok",
               what="bgsave to fail")

    outcome = run(server.address)

    assert outcome.metrics.value("redis_rdb_last_bgsave_status") == 0
    assert outcome.failure is not None and outcome.failure.reason == Reason.STATE
    assert "BGSAVE" in outcome.failure.detail


def test_replica_link_up_then_down_when_master_stops(start_redis: StartRedis) -> None:
    master = start_redis("--requirepass", "pw", "--repl-diskless-sync-delay", "0", name="master")
    replica = start_redis("--requirepass", "pw", "--masterauth", "pw",
                          "--replicaof", "127.0.0.1", str(master.port), name="replica")
    wait_until(lambda: replica.client(password="pw").info("replication")["master_link_status"] == "up",
               what="replica in sync")

    on_master = run(master.address, password="pw")
    on_replica = run(replica.address, password="pw")

    assert on_master.success and on_master.metrics.value("redis_connected_slaves") == 1
    assert on_replica.success, on_replica.failure
    assert link_up(on_replica.metrics) == 1
    info = next(s for n, _, _, s in on_replica.metrics.items() if n == "redis_instance_info")
    assert info[0][0]["role"] == "slave"

    master.proc.stop()
    wait_until(lambda: link_up(run(replica.address, password="pw").metrics) == 0,
               what="replica to see its master gone")
    down = run(replica.address, password="pw")
    assert down.failure is not None and down.failure.reason == Reason.STATE
    assert "link" in down.failure.detail


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    ca = TestCA(tmp_path / "ca")
    server = ca.issue("redis-server", hosts=("localhost", "127.0.0.1"))
    client = ca.issue("redis-client", hosts=("monitor",), client=True)
    return {"ca": ca.cert_path, "cert": server.cert, "key": server.key,
            "client_cert": client.cert, "client_key": client.key}


def test_tls_with_client_certificate(start_redis: StartRedis, tls_files: dict[str, Path],
                                     tmp_path: Path) -> None:
    f = tls_files
    server = start_redis(tls_args=("--tls-cert-file", str(f["cert"]), "--tls-key-file", str(f["key"]),
                                   "--tls-ca-cert-file", str(f["ca"]), "--tls-auth-clients", "yes"))
    good = {"ca_file": f["ca"], "cert_file": f["client_cert"], "key_file": f["client_key"]}
    other_ca = self_signed(tmp_path / "other", "other").cert

    ok = run(server.address, tls=good)
    untrusted = run(server.address, tls={**good, "ca_file": other_ca})
    skip_verify = run(server.address, tls={"insecure_skip_verify": True,
                                           "cert_file": f["client_cert"], "key_file": f["client_key"]})
    plain = run(server.address, timeout=2)

    assert ok.success, ok.failure
    assert ok.metrics.value("redis_up") == 1
    assert untrusted.failure is not None and untrusted.failure.reason == Reason.TLS
    assert skip_verify.success, skip_verify.failure
    assert plain.failure is not None
    assert plain.failure.reason in (Reason.RESET, Reason.TIMEOUT, Reason.BAD_CONTENT)


def test_sentinel_reports_current_master_and_replicas(start_redis: StartRedis, tmp_path: Path) -> None:
    master = start_redis("--repl-diskless-sync-delay", "0", name="s-master")
    replica = start_redis("--replicaof", "127.0.0.1", str(master.port), name="s-replica")
    sentinel_port = free_port()
    sentinel_dir = tmp_path / "sentinel"
    sentinel_dir.mkdir()
    conf = sentinel_dir / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {sentinel_dir}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                    "sentinel down-after-milliseconds mymaster 1000\n")
    sentinel = Proc([master.argv[0], str(conf), "--sentinel"], sentinel_dir / "sentinel.log")
    try:
        sentinel.wait_port(sentinel_port)
        wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up",
                   what="replica in sync")
        target = f"127.0.0.1:{free_port()},127.0.0.1:{sentinel_port}"  # the first sentinel is down
        wait_until(lambda: run(target, mode="sentinel", master_name="mymaster").metrics.value(
            "redis_sentinel_master_slaves",
            {"master_name": "mymaster", "master_address": master.address}) == 1,
            what="sentinel to discover the replica")

        outcome = run(target, mode="sentinel", master_name="mymaster")
        unknown = run(target, mode="sentinel", master_name="othermaster")
        m = outcome.metrics

        assert outcome.success, outcome.failure
        assert m.value("redis_sentinel_master_status", {"master_name": "mymaster",
                       "master_address": master.address, "master_status": "ok"}) == 1
        assert m.value("redis_up", {"addr": master.address}) == 1
        assert m.value("redis_up", {"addr": replica.address}) == 1
        assert link_up(m, replica.address) == 1
        assert m.value("redis_connected_slaves", {"addr": master.address}) == 1
        assert unknown.failure is not None and unknown.failure.reason == Reason.STATE

        # Failover: the master dies, the Sentinel promotes the replica; the check follows it.
        check = redis_kind.build(redis_kind.Settings(mode="sentinel", master_name="mymaster"))
        master.proc.kill()
        def status(outcome: Outcome) -> tuple[str, str]:
            return next((labels["master_address"], labels["master_status"])
                        for name, _, _, samples in outcome.metrics.items()
                        if name == "redis_sentinel_master_status" for labels, _ in samples)

        seen: list[Outcome] = []

        def changed() -> bool:
            seen.append(check.run(target, 5))
            return status(seen[-1]) != (master.address, "ok")

        wait_until(changed, timeout=20, what="sentinel to notice the master down")
        noticed = seen[-1]
        assert noticed.failure is not None
        if status(noticed)[0] == master.address:  # caught before the promotion
            assert status(noticed)[1] in ("sdown", "odown")
            assert noticed.failure.reason == Reason.STATE
        wait_until(lambda: status(check.run(target, 5)) == (replica.address, "ok"),
                   timeout=30, what="sentinel to promote the replica")
        after = check.run(target, 5)
        roles = {labels["addr"]: labels["role"] for name, _, _, samples in after.metrics.items()
                 if name == "redis_instance_info" for labels, _ in samples}
        assert roles[replica.address] == "master"
        assert after.metrics.value("redis_up", {"addr": master.address}) == 0  # now listed as a replica
        assert after.failure is not None and after.failure.reason == Reason.REFUSED
        check.close()
    finally:
        sentinel.stop()


def _config(redis_settings: dict[str, object], target: str = "127.0.0.1:6379") -> dict[str, object]:
    return {"modules": {"m": {"kind": "redis", "redis": redis_settings}},
            "checks": [{"name": "c", "item": "06", "module": "m", "target": target}]}


@pytest.mark.parametrize(("settings", "target", "message"), [
    ({"mode": "sentinel"}, "127.0.0.1:26379", "master_name is required"),
    ({"master_name": "m"}, "127.0.0.1:6379", "master_name only applies"),
    ({"password": "a", "password_file": "/etc/hostname"}, "127.0.0.1:6379", "either password or"),
    ({"tls": {"cert_file": "/etc/hostname"}}, "127.0.0.1:6379", "cert_file and key_file go together"),
    ({"tls": {"ca_file": "/nonexistent/ca.pem"}}, "127.0.0.1:6379", "ca_file /nonexistent/ca.pem"),
    ({"memory_used_max_ratio": 1.5}, "127.0.0.1:6379", "memory_used_max_ratio"),
    ({"pasword": "typo"}, "127.0.0.1:6379", "pasword"),
    ({}, "redis://127.0.0.1:6379", "must be host:port"),
    ({}, "127.0.0.1:99999", "port must be a number"),
])
def test_bad_config_names_the_key(settings: dict[str, object], target: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        ExporterConfig.model_validate(_config(settings, target))
    assert message in str(info.value)


def test_good_config_validates_without_importing_redis() -> None:
    config = ExporterConfig.model_validate(_config(
        {"mode": "sentinel", "master_name": "mymaster", "sentinels": ["10.0.0.1", "10.0.0.2:26380"]}))
    module = config.modules["m"]
    assert module.kind == "redis"
    assert module.redis.sentinels == ["10.0.0.1", "10.0.0.2:26380"]  # type: ignore[union-attr]
    probe = (
        "import sys\n"
        "from einvoice_exporter.schema import ExporterConfig\n"
        f"ExporterConfig.model_validate({_config({'password': 'x'})!r})\n"
        "assert 'redis' not in sys.modules, 'validating a config imported redis'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


def test_idle_connections_of_targets_no_longer_scraped_are_closed(start_redis: StartRedis) -> None:
    first, second = start_redis(name="first"), start_redis(name="second")
    now = [1000.0]
    connector = RedisConnector(ConnectionSettings(), clock=lambda: now[0])
    deadline = Deadline(5)
    try:
        connector.exchange("127.0.0.1", first.port, deadline, None, [("PING",)])
        connector.exchange("127.0.0.1", second.port, deadline, None, [("PING",)])
        assert connector.kept() == 2
        now[0] += IDLE_PRUNE_SECONDS + 1  # only `second` is still scraped after this
        assert connector.exchange("127.0.0.1", second.port, Deadline(5), None, [("PING",)]) == [b"PONG"]
        assert connector.kept() == 1
        wait_until(lambda: len(first.client().client_list()) == 1, what="idle connection closed")
    finally:
        connector.close()
    assert connector.kept() == 0


def test_failed_aof_write_and_loading_are_state() -> None:
    """AOF write errors need a full disk to happen for real; the INFO lines are Redis 7.0's own
    (persistence section, https://redis.io/commands/info/)."""
    from einvoice_exporter.collectors._redis_common import InstanceReport, judge_instance, parse_info

    def judged(persistence: str) -> Outcome:
        info, keyspace, _ = parse_info("# Server\r\nredis_version:7.0.15\r\n# Persistence\r\n" + persistence
                                    + "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n")
        outcome = Outcome()
        judge_instance(outcome, InstanceReport(info, keyspace, 0), ConnectionSettings())
        return outcome

    aof_failed = judged("loading:0\r\nrdb_last_bgsave_status:ok\r\naof_enabled:1\r\n"
                        "aof_last_write_status:err\r\n")
    aof_off = judged("loading:0\r\nrdb_last_bgsave_status:ok\r\naof_enabled:0\r\n"
                     "aof_last_write_status:err\r\n")
    loading = judged("loading:1\r\nrdb_last_bgsave_status:ok\r\naof_enabled:0\r\n")

    assert aof_failed.failure is not None and aof_failed.failure.reason == Reason.STATE
    assert "append-only" in aof_failed.failure.detail
    assert aof_off.success
    assert loading.failure is not None and "loading" in loading.failure.detail
