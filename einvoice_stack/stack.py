"""Render the configuration of the local chain into a run directory and run the processes."""

from __future__ import annotations

import fcntl
import json
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import bcrypt
import yaml

from . import demo_data
from .demo_data import DemoDatabase, ggsci_home

log = logging.getLogger("einvoice_stack")

REPO = Path(__file__).resolve().parents[1]

# Ports the demo config (config/demo/exporter.yml) names; remapped when the stack runs elsewhere.
DEMO_EXPORTER_PORT = 9877
DEMO_NOTIFIER_PORT = 9878
DEMO_TARGET_PORT = 9879
DEMO_SYSLOG = "/tmp/einvoice-demo/syslog"  # noqa: S108 (a placeholder, rendered into the run dir)
"""The host log the demo config's logfile check follows; the demo target writes it (item 03)."""

DEFAULT_PROMETHEUS_PORT = 9090
DEFAULT_ALERTMANAGER_PORT = 9093


DEMO_QUIET_ALERTS = ("EinvoiceItemUnmonitored", "EinvoiceErrorBudgetBurn", "EinvoiceOutageBudgetLow",
                     "EinvoiceOutageBudgetExhausted", "EinvoiceDrillsBehind")
"""Alerts the demo's Alertmanager routes to a receiver without a channel: they fire (Prometheus and
Alertmanager show them) but open no ticket. The demo checks 11 of the 20 items, so the other 9 are
rightly unmonitored; and a target that is down 4 minutes in every 11 burns the yearly outage budget
over 200 times faster than allowed; from November a year without two declared drill windows warns.
All are true and none is the story the demo tells."""
DEMO_QUIET_RECEIVER = "demo-no-ticket"

FRESH_DIRS = ("logs", "prometheus-data", "alertmanager-data", "notifier", "goldengate")
"""Subdirectories of the run directory that a start empties unless asked to keep them: old series
would show as vanished checks and spent budget, old tickets would open the console."""


@dataclass(frozen=True)
class PortSpec:
    name: str
    field: str
    option: str
    default: int
    usual_owner: str = ""
    """What on a Debian host usually holds the default port, and how to stop it."""


PORTS = (
    PortSpec("prometheus", "prometheus_port", "--prometheus-port", DEFAULT_PROMETHEUS_PORT,
             "Debian's prometheus package runs a service on 9090: `systemctl stop prometheus`"),
    PortSpec("alertmanager", "alertmanager_port", "--alertmanager-port", DEFAULT_ALERTMANAGER_PORT,
             "Debian's prometheus-alertmanager package runs a service on 9093: "
             "`systemctl stop prometheus-alertmanager`"),
    PortSpec("exporter", "exporter_port", "--exporter-port", DEMO_EXPORTER_PORT),
    PortSpec("notifier", "notifier_port", "--notifier-port", DEMO_NOTIFIER_PORT),
    PortSpec("demo target", "demo_target_port", "--demo-target-port", DEMO_TARGET_PORT),
)


class StackError(RuntimeError):
    """A component could not be configured or started; the message says which and why."""


@dataclass(frozen=True)
class StackConfig:
    run_dir: Path
    host: str = "127.0.0.1"
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT
    alertmanager_port: int = DEFAULT_ALERTMANAGER_PORT
    exporter_port: int = DEMO_EXPORTER_PORT
    notifier_port: int = DEMO_NOTIFIER_PORT
    demo_target_port: int = DEMO_TARGET_PORT
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    rules_dir: Path = REPO / "alert_rules"
    exporter_config: Path = REPO / "config" / "demo" / "exporter.yml"
    alertmanager_config: Path = REPO / "alert_rules" / "alertmanager.yml"
    alertmanager_timing: dict[str, str] = field(default_factory=dict)
    """Overrides of group_wait / group_interval / repeat_interval (tests): set on the root route and
    replacing them on every child route that sets its own, so no route keeps a production pace."""
    notifier_overrides: dict[str, Any] = field(default_factory=dict)
    """Keys merged into the rendered notifier config (tests: scheduler intervals, channels)."""
    prometheus_binary: str = "/usr/bin/prometheus"
    alertmanager_binary: str = "/usr/bin/prometheus-alertmanager"
    python_bin: Path = field(default_factory=lambda: Path(sys.executable).parent)
    """Where einvoice-exporter and einvoice-notifier are: the running interpreter's virtualenv."""
    movable_ports: frozenset[str] = frozenset()
    """Names (PORTS) of ports that were defaults, not asked for: when taken, another is used."""
    quiet_alerts: tuple[str, ...] = DEMO_QUIET_ALERTS
    keep_data: bool = False
    """Keep the series, tickets and logs of the previous run (default: every start is a fresh one)."""
    data_checks: bool = True
    """Run the data checks of items 14 and 16-19 on a MariaDB and a ggsci stand-in the demo starts
    (demo_data.py); the database is made afresh at every start."""

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"


class DemoTarget:
    """A health endpoint that the demo can take down and bring back, in the shape of a Spring Boot
    actuator (`{"status":"UP"}` / 503 `{"status":"DOWN"}`), so a newcomer sees an alert fire and
    resolve. `schedule` is a list of (up, seconds) phases repeated forever; `set_up` overrides it."""

    def __init__(self, host: str, port: int, schedule: list[tuple[bool, float]] | None = None,
                 clock: Callable[[], float] = time.monotonic, syslog: Path | None = None) -> None:
        self._syslog = syslog
        self._was_up = True
        self._schedule = schedule or []
        self._clock = clock
        self._started = clock()
        self._forced: bool | None = None
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                up = target.is_up()
                target.log_state(up)
                body = json.dumps({"status": "UP" if up else "DOWN"}).encode()
                self.send_response(200 if up else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, name="demo-target", daemon=True)

    def start(self) -> DemoTarget:
        self._thread.start()
        return self

    def set_up(self, up: bool | None) -> None:
        """Force the state (None returns to the schedule)."""
        self._forced = up

    def is_up(self) -> bool:
        if self._forced is not None:
            return self._forced
        if not self._schedule:
            return True
        cycle = sum(seconds for _, seconds in self._schedule)
        position = (self._clock() - self._started) % cycle
        for up, seconds in self._schedule:
            if position < seconds:
                return up
            position -= seconds
        return True

    def log_state(self, up: bool) -> None:
        """Each health request leaves a syslog line; going down leaves an OOM kill, as a JVM whose
        heap outgrew the host would (the demo's logfile check counts it, its alert fires)."""
        if self._syslog is None:
            return
        stamp = time.strftime("%b %e %H:%M:%S")
        if self._was_up and not up:
            line = f"{stamp} demo kernel: Out of memory: Killed process 4242 (java) total-vm:8388608kB"
        else:
            line = f"{stamp} demo intake[4242]: health check answered {'UP' if up else 'DOWN'}"
        self._was_up = up
        with self._syslog.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def lock_run_dir(run_dir: Path) -> IO[str]:
    """Hold the run directory for this process: a second demo there would move to other ports and
    then empty the first one's data under its feet. The lock goes with the process, however it ends."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = (run_dir / ".lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StackError(f"another demo is running from {run_dir}: stop it first (Ctrl-C there) "
                         "or give this one its own --run-dir") from None
    return handle


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def choose_ports(config: StackConfig, specs: Sequence[PortSpec] = PORTS) -> tuple[StackConfig, list[str]]:
    """The config with every movable port that is taken replaced by a free one, and a sentence per
    move. A port the user asked for that is taken is an error naming what usually holds it."""
    host = config.host
    taken: set[int] = set()
    changes: dict[str, Any] = {}
    notes: list[str] = []
    busy: list[str] = []
    for spec in specs:
        port = getattr(config, spec.field)
        if port not in taken and _port_free(host, port):
            taken.add(port)
            continue
        owner = f" ({spec.usual_owner})" if spec.usual_owner and port == spec.default else ""
        if spec.name not in config.movable_ports:
            busy.append(f"{spec.name} port {port} is in use{owner}; stop what uses it or choose "
                        f"another with {spec.option}")
            continue
        new = _free_port_near(host, port, taken)
        taken.add(new)
        changes[spec.field] = new
        notes.append(f"{spec.name}: port {port} is in use{owner}; using {new} instead")
    if busy:
        raise StackError("; ".join(busy))
    return replace(config, **changes), notes


def _free_port_near(host: str, port: int, taken: set[int]) -> int:
    """10000 above the default when free (9090 -> 19090, easy to recognise), else the kernel's pick."""
    for candidate in (port + 10000, port + 20000):
        if candidate < 65536 and candidate not in taken and _port_free(host, candidate):
            return candidate
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _remap_ports(value: Any, mapping: dict[int, int]) -> Any:
    """Rewrite `127.0.0.1:PORT` in strings of the demo config for a stack on other ports."""
    if isinstance(value, dict):
        return {key: _remap_ports(item, mapping) for key, item in value.items()}
    if isinstance(value, list):
        return [_remap_ports(item, mapping) for item in value]
    if isinstance(value, str):
        for old, new in mapping.items():
            value = value.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
        return value
    return value


class Stack:
    """The processes of the local chain; `start()` then `stop()` (also a context manager)."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.run_dir = config.run_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.demo_target: DemoTarget | None = None
        self.webhook_token = secrets.token_urlsafe(24)
        self.console_user = "demo"
        self.console_password = secrets.token_urlsafe(9)
        """A fresh operator login for the demo's ticket console, printed at start."""
        self.port_notes: list[str] = []
        """One sentence per default port that was taken and replaced (printed at start)."""
        self._run_lock: IO[str] | None = None
        self.demo_db: DemoDatabase | None = None
        """The data checks' MariaDB (config.data_checks): its port is chosen when rendering."""

    # -- rendering -----------------------------------------------------------------------------

    def render(self) -> None:
        cfg = self.config
        if not cfg.keep_data:
            for sub in FRESH_DIRS:
                shutil.rmtree(self.run_dir / sub, ignore_errors=True)
        for sub in ("logs", "prometheus-data", "alertmanager-data", "secrets", "notifier"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        token_file = self.run_dir / "secrets" / "notifier_webhook_token"
        token_file.write_text(self.webhook_token + "\n")
        token_file.chmod(0o600)

        mapping = {DEMO_EXPORTER_PORT: cfg.exporter_port, DEMO_NOTIFIER_PORT: cfg.notifier_port,
                   DEMO_TARGET_PORT: cfg.demo_target_port}
        exporter_cfg = _remap_ports(yaml.safe_load(cfg.exporter_config.read_text()), mapping)
        for check in exporter_cfg.get("checks", []):
            if check.get("target") == DEMO_SYSLOG:
                check["target"] = str(self.run_dir / "logs" / "demo-syslog")
        if cfg.data_checks:
            self.demo_db = DemoDatabase(self.run_dir / "mariadb", cfg.host).plan()
            modules, checks = demo_data.exporter_config(self.demo_db, ggsci_home(self.run_dir / "goldengate"))
            exporter_cfg["modules"].update(modules)
            exporter_cfg["checks"].extend(checks)
        self._write_yaml("exporter.yml", exporter_cfg)

        rule_files = sorted(str(path) for path in cfg.rules_dir.glob("*.rules.yml"))
        if not rule_files:
            raise StackError(f"no rule files (*.rules.yml) in {cfg.rules_dir}")
        self._write_yaml("prometheus.yml", {
            "global": {"scrape_interval": cfg.scrape_interval, "evaluation_interval": cfg.evaluation_interval,
                       "external_labels": {"platform": "einvoice-gx", "env": "demo"}},
            "rule_files": rule_files,
            "alerting": {"alertmanagers": [{"static_configs": [
                {"targets": [f"{cfg.host}:{cfg.alertmanager_port}"]}]}]},
            "scrape_configs": [
                {"job_name": "einvoice-exporter", "static_configs": [
                    {"targets": [f"{cfg.host}:{cfg.exporter_port}"]}]},
                {"job_name": "einvoice-notifier", "static_configs": [
                    {"targets": [f"{cfg.host}:{cfg.notifier_port}"]}]},
                {"job_name": "prometheus", "static_configs": [
                    {"targets": [f"{cfg.host}:{cfg.prometheus_port}"]}]},
                # 应用连续运行 panels: the exporter process stands in for an application instance
                # (it exposes process_start_time_seconds like a Spring Boot actuator does).
                {"job_name": "einvoice-apps", "static_configs": [
                    {"targets": [f"{cfg.host}:{cfg.exporter_port}"]}],
                 "metric_relabel_configs": [{"source_labels": ["__name__"],
                                             "regex": "process_start_time_seconds", "action": "keep"}]},
            ],
        })

        am = yaml.safe_load(cfg.alertmanager_config.read_text())
        notifier_base = cfg.url(cfg.notifier_port)
        for receiver in am.get("receivers", []):
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = hook["url"].replace("http://notifier:9878", notifier_base)
                auth = hook.get("http_config", {}).get("authorization")
                if auth is not None:
                    auth["credentials_file"] = str(token_file)
        _override_timing(am.setdefault("route", {}), cfg.alertmanager_timing)
        if cfg.quiet_alerts:
            am["route"].setdefault("routes", []).insert(0, {
                "receiver": DEMO_QUIET_RECEIVER,
                "matchers": ['alertname=~"' + "|".join(cfg.quiet_alerts) + '"']})
            am.setdefault("receivers", []).append({"name": DEMO_QUIET_RECEIVER})
        self._write_yaml("alertmanager.yml", am)

        notifier_cfg: dict[str, Any] = {
            "listen": f"{cfg.host}:{cfg.notifier_port}",
            "public_url": notifier_base,
            "database_url": f"sqlite:///{self.run_dir / 'notifier' / 'notifier.db'}",
            "webhook_token_file": str(token_file),
            "calendar_file": str(REPO / "deploy" / "notifier" / "calendar.yml"),
            # The on-site group and the second line are two groups in production: two files here,
            # so a critical alert outside on-site hours (sent to both) is not one file's duplicate.
            "channels": [{"type": "console", "name": "console", "stdout": False,
                          "path": str(self.run_dir / "notifier" / "messages.log")},
                         {"type": "console", "name": "second-line", "stdout": False,
                          "path": str(self.run_dir / "notifier" / "second-line.log")}],
            "routing": {"first_line": ["console"], "second_line": ["second-line"]},
            "users": [{"name": self.console_user, "role": "operator", "display_name": "演示值班员",
                       "password_hash": bcrypt.hashpw(self.console_password.encode(),
                                                      bcrypt.gensalt(rounds=10)).decode()}],
            "console_secret_key": secrets.token_urlsafe(32),
        }
        notifier_cfg.update(cfg.notifier_overrides)
        self._write_yaml("notifier.yml", notifier_cfg)

    def _write_yaml(self, name: str, data: Any) -> Path:
        path = self.run_dir / name
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        return path

    # -- processes -----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log_file = (self.run_dir / "logs" / f"{name}.log").open("ab")
        log.info("starting %s: %s", name, " ".join(argv))
        self.procs[name] = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                            cwd=self.run_dir, start_new_session=True)
        log_file.close()

    def start(self, demo_schedule: list[tuple[bool, float]] | None = None) -> Stack:
        cfg = self.config
        for binary in (cfg.prometheus_binary, cfg.alertmanager_binary):
            if shutil.which(binary) is None:
                raise StackError(f"{binary} is not installed: run `make deps` (Debian packages "
                                 "prometheus and prometheus-alertmanager)")
        self._run_lock = lock_run_dir(self.run_dir)
        self.config, self.port_notes = choose_ports(cfg)
        cfg = self.config
        for note in self.port_notes:
            log.warning("%s", note)
        self.render()
        self.demo_target = DemoTarget(cfg.host, cfg.demo_target_port, demo_schedule,
                                      syslog=self.run_dir / "logs" / "demo-syslog").start()
        if self.demo_db is not None:
            try:
                self.demo_db.start()
            except Exception as exc:  # install, start or schema: whatever failed, said in one line
                raise StackError(f"the data checks' MariaDB: {type(exc).__name__}: {exc}") from None
        bin_dir = cfg.python_bin
        self._spawn("notifier", [str(bin_dir / "einvoice-notifier"), "--config",
                                 str(self.run_dir / "notifier.yml")])
        self._spawn("exporter", [str(bin_dir / "einvoice-exporter"), "--config",
                                 str(self.run_dir / "exporter.yml"), "--web.listen-address",
                                 f"{cfg.host}:{cfg.exporter_port}"])
        self._spawn("alertmanager", [
            cfg.alertmanager_binary, f"--config.file={self.run_dir / 'alertmanager.yml'}",
            f"--storage.path={self.run_dir / 'alertmanager-data'}",
            f"--web.listen-address={cfg.host}:{cfg.alertmanager_port}", "--cluster.listen-address=",
            f"--web.external-url={cfg.url(cfg.alertmanager_port)}"])
        self._spawn("prometheus", [
            cfg.prometheus_binary, f"--config.file={self.run_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.run_dir / 'prometheus-data'}",
            "--storage.tsdb.retention.time=400d",
            f"--web.listen-address={cfg.host}:{cfg.prometheus_port}",
            f"--web.external-url={cfg.url(cfg.prometheus_port)}"])
        self.wait_ready()
        return self

    def health_urls(self) -> dict[str, str]:
        cfg = self.config
        return {
            "notifier": f"{cfg.url(cfg.notifier_port)}/-/healthy",
            "exporter": f"{cfg.url(cfg.exporter_port)}/-/healthy",
            "alertmanager": f"{cfg.url(cfg.alertmanager_port)}/-/ready",
            "prometheus": f"{cfg.url(cfg.prometheus_port)}/-/ready",
        }

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(self.health_urls())
        while pending:
            for name, url in list(pending.items()):
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise StackError(f"{name} exited with code {proc.returncode}; its log:\n"
                                     + self.log_tail(name))
                try:
                    with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (local URL)
                        if resp.status == 200:
                            del pending[name]
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                raise StackError("not ready in time: " + ", ".join(pending) + "\n"
                                 + "\n".join(self.log_tail(name) for name in pending))
            if pending:
                time.sleep(0.2)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.run_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def urls(self) -> dict[str, str]:
        cfg = self.config
        return {
            "Prometheus": cfg.url(cfg.prometheus_port),
            "Alertmanager": cfg.url(cfg.alertmanager_port),
            "exporter": cfg.url(cfg.exporter_port),
            "notifier console": f"{cfg.url(cfg.notifier_port)}/console/ "
                                f"(login {self.console_user} / {self.console_password})",
            "notifier API": f"{cfg.url(cfg.notifier_port)}/docs",
            "messages file": str(self.run_dir / "notifier" / "messages.log"),
            "second line file": str(self.run_dir / "notifier" / "second-line.log"),
        }

    def stop(self) -> None:
        for name in ("prometheus", "alertmanager", "exporter", "notifier"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in 15 s, killing it", name)
                proc.kill()
                proc.wait(timeout=5)
        if self.demo_target is not None:
            self.demo_target.stop()
        if self.demo_db is not None:
            self.demo_db.stop()
        if self._run_lock is not None:
            self._run_lock.close()
            self._run_lock = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def processes(self) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
        yield from self.procs.items()


def _override_timing(route: dict[str, Any], timing: dict[str, str], root: bool = True) -> None:
    for key, value in timing.items():
        if root or key in route:
            route[key] = value
    for child in route.get("routes", []):
        _override_timing(child, timing, root=False)
