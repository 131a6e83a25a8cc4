"""docker-compose.yml and the files it mounts, checked statically (tests/docker starts the stack).

Schema-level checks with pyyaml, cross-references between compose, deploy/prometheus/prometheus.yml,
alert_rules/alertmanager.yml, the notifier config and Grafana provisioning, and the real tools where
they exist here: `promtool check config` on a copy whose rule paths point into the repository, and
the notifier's own settings loader on its compose config.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.support.procs import require_binary

REPO = Path(__file__).resolve().parents[2]
SERVICES = {"prometheus", "alertmanager", "grafana", "exporter", "notifier", "victoria-metrics"}
PORTS = {"prometheus": 9090, "alertmanager": 9093, "grafana": 3000, "exporter": 9877, "notifier": 9878,
         "victoria-metrics": 8428}
"""The fixed ports of the team contract (exporter 9877, notifier 9878) and the tools' defaults."""


SERVICE_KEYS = {
    "build", "command", "depends_on", "entrypoint", "env_file", "environment", "expose", "healthcheck",
    "image", "ports", "read_only", "restart", "secrets", "security_opt", "tmpfs", "user", "volumes",
    "working_dir", "logging", "labels", "networks", "stop_grace_period", "ulimits", "mem_limit", "cpus",
}
"""Keys of the Compose Specification's service object this file may use (a typo is not ignored)."""
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
TOP_LEVEL_KEYS = {"services", "volumes", "secrets", "networks", "configs"}
"""No top-level `name`: Debian's docker-compose 1.29 rejects it (the project name is in .env)."""


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _yaml(REPO / "docker-compose.yml")


@pytest.fixture(scope="module")
def published() -> dict[str, list[str]]:
    """Service -> published ports, from docker-compose.override.yml (read by default with the file)."""
    override = _yaml(REPO / "docker-compose.override.yml")
    return {name: service["ports"] for name, service in override["services"].items()}


def _expand(text: str) -> str:
    """Compose's `${VAR:-default}` with the variable unset, as on a fresh checkout."""
    return re.sub(r"\$\{[A-Za-z_]\w*:-([^}]*)\}", r"\1", text)


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, container path, mode) of each short-syntax volume entry."""
    mounts = []
    for entry in service.get("volumes", []):
        parts = _expand(entry).split(":")
        source, target = parts[0], parts[1]
        mounts.append((source, target, parts[2] if len(parts) > 2 else "rw"))
    return mounts


def _mount_source(compose: dict[str, Any], service: str, container_path: str) -> Path:
    for source, target, _ in _mounts(compose["services"][service]):
        if target == container_path:
            return (REPO / source).resolve()
    raise AssertionError(f"{service}: nothing mounted at {container_path}")


def _command_flag(service: dict[str, Any], flag: str) -> str:
    for arg in service["command"]:
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {service['command']}")


def test_keys_are_compose_specification_keys(compose: dict[str, Any]) -> None:
    assert {key for key in compose if not key.startswith("x-")} <= TOP_LEVEL_KEYS
    for name, service in compose["services"].items():
        assert set(service) <= SERVICE_KEYS, f"{name}: unknown keys {set(service) - SERVICE_KEYS}"
        assert set(service["healthcheck"]) <= HEALTHCHECK_KEYS, name
        assert ("image" in service) or ("build" in service), name
        assert "ports" not in service, f"{name}: ports belong in docker-compose.override.yml"
        for dependency in service.get("depends_on", []):
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"


def test_services_each_with_a_healthcheck(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check["test"][0] == "CMD", f"{name} has no exec-form healthcheck"
        joined = " ".join(check["test"])
        path = {"prometheus": "/-/ready", "alertmanager": "/-/ready", "grafana": "/api/health",
                "exporter": "/-/healthy", "notifier": "/-/healthy", "victoria-metrics": "/health"}[name]
        assert f":{PORTS[name]}{path}" in joined, f"{name}: healthcheck does not probe its own port"
        assert service.get("restart") == "unless-stopped", name


def test_named_volumes_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for source, _, _ in _mounts(service):
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared
    for name in ("prometheus", "alertmanager", "grafana", "notifier"):
        assert any(not s.startswith(".") for s, _, _ in _mounts(compose["services"][name])), (
            f"{name} keeps its data outside a named volume")


def test_every_mounted_file_exists_and_config_is_read_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source, target, mode in _mounts(service):
            if not source.startswith("."):
                continue
            path = (REPO / source).resolve()
            assert path.exists(), f"{name}: {source} is mounted but missing from the repository"
            assert path.is_relative_to(REPO), source
            assert mode == "ro", f"{name}: configuration {source} -> {target} must be mounted :ro"


def test_secrets_are_files_never_committed(compose: dict[str, Any]) -> None:
    # Asked of git itself, so this needs git (scripts/install-debian-deps.sh installs it) and a clone:
    # a copy of the files without .git cannot say what is committed.
    assert shutil.which("git"), "git is not installed (scripts/install-debian-deps.sh installs it)"
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=REPO, capture_output=True,
                            text=True, check=False)
    assert inside.stdout.strip() == "true", f"{REPO} is not a git checkout: run the tests in a clone"
    secrets = compose["secrets"]
    assert set(secrets) == {"notifier_webhook_token", "notifier_console_secret", "grafana_admin_password"}
    generator = (REPO / "deploy/secrets/generate.sh").read_text()
    for name, spec in secrets.items():
        path = REPO / spec["file"]
        assert path.parent == REPO / "deploy" / "secrets"
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO, check=False)
        assert ignored.returncode == 0, f"{spec['file']} is not git-ignored"
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(path)], cwd=REPO,
                                 capture_output=True, check=False)
        assert tracked.returncode != 0, f"{spec['file']} is committed"
        assert name in generator
    for name, service in compose["services"].items():
        for env_file in service.get("env_file", []):
            path = REPO / (env_file["path"] if isinstance(env_file, dict) else env_file)
            assert path.parent == REPO / "deploy" / "secrets", f"{name}: env_file outside deploy/secrets"
            ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO, check=False)
            assert ignored.returncode == 0, f"{path} is not git-ignored"
    used = {s for service in compose["services"].values() for s in service.get("secrets", [])}
    assert used == set(secrets)
    assert "notifier_webhook_token" in compose["services"]["alertmanager"]["secrets"]
    assert "notifier_webhook_token" in compose["services"]["notifier"]["secrets"]
    grafana_env = compose["services"]["grafana"]["environment"]
    assert grafana_env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"


def test_generate_script_creates_private_random_secrets(tmp_path: Path) -> None:
    script = tmp_path / "generate.sh"
    script.write_text((REPO / "deploy/secrets/generate.sh").read_text())
    subprocess.run(["sh", str(script)], check=True, capture_output=True)
    token = (tmp_path / "notifier_webhook_token").read_text().strip()
    assert len(token) >= 32
    again = subprocess.run(["sh", str(script)], check=True, capture_output=True, text=True)
    assert "keep" in again.stdout and (tmp_path / "notifier_webhook_token").read_text().strip() == token
    assert (tmp_path / "notifier_console_secret").read_text().strip() != token


def test_published_ports_and_the_project_name(compose: dict[str, Any],
                                              published: dict[str, list[str]]) -> None:
    assert set(published) == set(compose["services"])
    for name, ports in published.items():
        for port in ports:
            assert re.fullmatch(r"\d+:\d+", port), f"{name}: port {port!r} must be quoted HOST:CONTAINER"
        assert f"{PORTS[name]}:{PORTS[name]}" in ports, name
    env = dict(line.split("=", 1) for line in (REPO / ".env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env["COMPOSE_PROJECT_NAME"] == "einvoice-monitoring"


def test_prometheus_scrapes_the_compose_services(compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    assert _command_flag(service, "--storage.tsdb.retention.time") == "400d"
    from einvoice_core.thresholds import duration_seconds, load_thresholds

    retention = load_thresholds().sla.retention
    shipped = _command_flag(service, "--storage.tsdb.retention.time")
    assert duration_seconds(shipped) >= duration_seconds(retention)
    prom = _yaml(_mount_source(compose, "prometheus", _command_flag(service, "--config.file")))
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in prom["scrape_configs"]
            if "static_configs" in job}
    assert jobs["einvoice-exporter"] == [f"exporter:{PORTS['exporter']}"]
    assert jobs["einvoice-notifier"] == [f"notifier:{PORTS['notifier']}"]
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        f"alertmanager:{PORTS['alertmanager']}"]
    rules_source = _mount_source(compose, "prometheus", "/etc/prometheus/rules")
    assert rules_source == REPO / "alert_rules"
    for pattern in prom["rule_files"]:
        assert pattern.startswith("/etc/prometheus/rules/")
        assert list(rules_source.glob(pattern.removeprefix("/etc/prometheus/rules/"))), pattern
    assert _command_flag(service, "--web.listen-address") == f":{PORTS['prometheus']}"
    # One config for both of a pair: the replica label from the environment, dropped from alerts.
    assert "--enable-feature=expand-external-labels" in service["command"]
    assert prom["global"]["external_labels"]["replica"] == "${PROMETHEUS_REPLICA}"
    assert service["environment"]["PROMETHEUS_REPLICA"]
    assert {"action": "labeldrop", "regex": "replica"} in prom["alerting"]["alert_relabel_configs"]
    assert [w["url"] for w in prom["remote_write"]] == [
        f"http://victoria-metrics:{PORTS['victoria-metrics']}/api/v1/write"]
    vm = compose["services"]["victoria-metrics"]
    assert _command_flag(vm, "-httpListenAddr") == f":{PORTS['victoria-metrics']}"
    assert _command_flag(vm, "-dedup.minScrapeInterval") == prom["global"]["scrape_interval"]
    relabel = _yaml(_mount_source(compose, "victoria-metrics", _command_flag(vm, "-relabelConfig")))
    assert relabel == [{"action": "labeldrop", "regex": "replica"}]


def test_listen_ports_agree_with_the_urls_that_reach_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert _command_flag(services["exporter"], "--web.listen-address") == f"0.0.0.0:{PORTS['exporter']}"
    assert _command_flag(services["alertmanager"], "--web.listen-address") == f":{PORTS['alertmanager']}"
    notifier = _yaml(_mount_source(compose, "notifier", _command_flag(services["notifier"], "--config")))
    assert notifier["listen"] == f"0.0.0.0:{PORTS['notifier']}"
    assert _command_flag(services["victoria-metrics"], "-httpListenAddr") == f":{PORTS['victoria-metrics']}"


def test_alertmanager_reaches_the_notifier_with_the_mounted_token(compose: dict[str, Any]) -> None:
    service = compose["services"]["alertmanager"]
    config = _yaml(_mount_source(compose, "alertmanager", _command_flag(service, "--config.file")))
    hooks = [hook for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert hooks
    for hook in hooks:
        url = urlsplit(hook["url"])
        assert (url.hostname, url.port) == ("notifier", PORTS["notifier"])
        assert url.path == "/api/v1/webhook/alertmanager"
        auth = hook["http_config"]["authorization"]
        assert auth.get("type", "Bearer") == "Bearer"
        assert auth["credentials_file"] == "/run/secrets/notifier_webhook_token"
    notifier = _yaml(REPO / "deploy/notifier/notifier.yml")
    assert notifier["webhook_token_file"] == "/run/secrets/notifier_webhook_token"


def _locations(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["location"]} if isinstance(node.get("location"), str) else set()
        return found.union(*(_locations(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_locations(value) for value in node))
    return set()


def test_alertmanager_finds_the_time_zones_its_routing_names(compose: dict[str, Any]) -> None:
    service = compose["services"]["alertmanager"]
    config = _yaml(_mount_source(compose, "alertmanager", _command_flag(service, "--config.file")))
    locations = _locations(config.get("time_intervals", []))
    assert "Asia/Shanghai" in locations
    zoneinfo = _mount_source(compose, "alertmanager", service["environment"]["ZONEINFO"])
    for location in locations:
        with (zoneinfo / location).open("rb") as handle:
            zone = ZoneInfo.from_file(handle, key=location)
        expected = ZoneInfo(location).utcoffset(datetime(2026, 7, 1, 12))
        assert zone.utcoffset(datetime(2026, 7, 1, 12)) == expected, location
    shanghai = (zoneinfo / "Asia/Shanghai").open("rb")
    with shanghai:
        assert ZoneInfo.from_file(shanghai).utcoffset(datetime(2026, 1, 1)) == timedelta(hours=8)


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards(compose: dict[str, Any]) -> None:
    datasources_dir = _mount_source(compose, "grafana", "/etc/grafana/provisioning/datasources")
    dashboards_dir = _mount_source(compose, "grafana", "/etc/grafana/provisioning/dashboards")
    assert datasources_dir.parent == dashboards_dir.parent == REPO / "deploy/grafana/provisioning"
    datasources = [ds for path in sorted(datasources_dir.glob("*.yml")) for ds in _yaml(path)["datasources"]]
    prom = [ds for ds in datasources if ds["type"] == "prometheus"]
    assert [ds["isDefault"] for ds in prom] == [True, False]
    hosts = [(urlsplit(ds["url"]).hostname, urlsplit(ds["url"]).port) for ds in prom]
    assert hosts == [("prometheus", PORTS["prometheus"]), ("victoria-metrics", PORTS["victoria-metrics"])]
    providers = [p for path in sorted(dashboards_dir.glob("*.yml")) for p in _yaml(path)["providers"]]
    assert len(providers) == 1 and providers[0]["type"] == "file"
    container_path = providers[0]["options"]["path"]
    assert _mount_source(compose, "grafana", container_path) == REPO / "grafana_dashboards"
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(container_path + "/")
    assert (REPO / "grafana_dashboards" / Path(home).name).is_file()


def test_promtool_accepts_the_prometheus_config(compose: dict[str, Any], tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    prom = _yaml(REPO / "deploy/prometheus/prometheus.yml")
    prom["rule_files"] = [str(REPO / "alert_rules" / Path(p).name) for p in prom["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(prom, allow_unicode=True))
    result = subprocess.run([promtool, "check", "config", str(copy)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    assert re.search(r"SUCCESS: [1-9]\d* rules found", result.stdout + result.stderr)


def test_the_notifier_accepts_its_compose_config(tmp_path: Path) -> None:
    from einvoice_notifier import calendar
    from einvoice_notifier import settings as settings_mod

    raw = (REPO / "deploy/notifier/notifier.yml").read_text()
    for name in ("notifier_webhook_token", "notifier_console_secret"):
        (tmp_path / name).write_text("x" * 40 + "\n")
    raw = raw.replace("/run/secrets/", f"{tmp_path}/").replace(
        "/etc/einvoice/calendar.yml", str(REPO / "deploy/notifier/calendar.yml")).replace(
        "/var/lib/einvoice-notifier", str(tmp_path / "state"))
    settings = settings_mod.parse_settings(yaml.safe_load(raw))
    assert settings.port == PORTS["notifier"]
    assert settings.configured_webhook_token() == "x" * 40
    data = calendar.load_calendar_data(REPO / "deploy/notifier/calendar.yml")
    assert data.timezone == "Asia/Shanghai"


def test_one_dockerfile_for_both_python_services(compose: dict[str, Any]) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    assert re.search(r"^RUN pip install --no-deps \.", dockerfile, re.M)
    for lib in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0", "fonts-noto-cjk"):
        assert lib in dockerfile, f"WeasyPrint (reports) needs {lib}"
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and not user[-1].startswith(("root", "0")), "the image must not run as root"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for name in ("exporter", "notifier"):
        service = compose["services"][name]
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert service["command"][0] in scripts, f"{name}: {service['command'][0]} is not a console script"
    assert compose["services"]["exporter"]["image"] == compose["services"]["notifier"]["image"]
    for source in re.findall(r"^COPY (?!--)(.+) \S+$", dockerfile, re.M):
        for part in source.split():
            assert (REPO / part).exists() or part == "README.md", f"Dockerfile copies missing {part}"
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "deploy/secrets", "tests"):
        assert entry in ignored


def test_amtool_accepts_the_mounted_alertmanager_config(compose: dict[str, Any], tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    service = compose["services"]["alertmanager"]
    source = _mount_source(compose, "alertmanager", _command_flag(service, "--config.file"))
    token = tmp_path / "notifier_webhook_token"
    token.write_text("test-token\n")
    copy = tmp_path / "alertmanager.yml"
    copy.write_text(source.read_text().replace("/run/secrets/notifier_webhook_token", str(token)))
    env = {"PATH": "/usr/bin:/bin", "ZONEINFO": str(REPO / "deploy/alertmanager/zoneinfo")}
    result = subprocess.run([amtool, "check-config", str(copy)], capture_output=True, text=True,
                            env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
