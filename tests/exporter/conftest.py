"""Fixtures of the exporter-runtime tests: scripted checks, a controllable clock, a live server.

The scripted checks stand in for collectors so that the runtime's own behaviour (concurrency,
deadlines, caching, retries, errors) is tested without depending on any network target; the tests
that need a real target (test_cli_real.py) run the real CLI against real local servers.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from einvoice_exporter.config import parse_config
from einvoice_exporter.outcome import Check, Outcome, Reason
from einvoice_exporter.runtime import Runtime
from einvoice_exporter.schema import ExporterConfig, Module
from einvoice_exporter.server import App, ExporterServer, make_server
from einvoice_exporter.webconfig import WebConfig

from tests.support.procs import free_port

Behaviour = Callable[[str, float], Outcome]


def ok(_target: str = "", _timeout: float = 0.0) -> Outcome:
    outcome = Outcome()
    outcome.metrics.gauge("probe_success", "Whether the probe succeeded", 1)
    return outcome


def fail(reason: Reason) -> Behaviour:
    def behaviour(_target: str, _timeout: float) -> Outcome:
        return Outcome().fail(reason, f"scripted {reason.value}")
    return behaviour


class Gate:
    """Work that lasts until the test opens the gate (the stand-in for a slow or hung target):
    the test decides when it ends instead of guessing with a duration. Counts the runs inside."""

    SAFETY = 120.0
    """Opened at teardown; this bound only stops a broken test from hanging the suite."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self._lock = threading.Lock()
        self.inside = 0
        self.entered = 0
        self.peak = 0

    def __call__(self, then: Behaviour = ok) -> Behaviour:
        def behaviour(target: str, timeout: float) -> Outcome:
            with self._lock:
                self.inside += 1
                self.entered += 1
                self.peak = max(self.peak, self.inside)
            try:
                self.opened.wait(self.SAFETY)
            finally:
                with self._lock:
                    self.inside -= 1
            return then(target, timeout)
        return behaviour

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def gate() -> Iterator[Gate]:
    opened = Gate()
    yield opened
    opened.open()


@dataclass
class ScriptedCheck:
    """A Check whose answer per target is scripted; records every call and whether it was closed."""

    script: dict[str, list[Behaviour] | Behaviour]
    calls: list[tuple[str, float]] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, target: str, timeout: float) -> Outcome:
        with self.lock:
            self.calls.append((target, timeout))
            entry = self.script.get(target, ok)
            behaviour = entry if not isinstance(entry, list) else entry.pop(0) if len(entry) > 1 else entry[0]
        return behaviour(target, timeout)

    def close(self) -> None:
        self.closed.set()

    def runs_of(self, target: str) -> int:
        with self.lock:
            return sum(1 for called, _ in self.calls if called == target)


class Factory:
    """check_factory for Runtime: one ScriptedCheck per module, created per configuration load."""

    def __init__(self, script: dict[str, list[Behaviour] | Behaviour] | None = None) -> None:
        self.script = script if script is not None else {}
        self.built: list[ScriptedCheck] = []

    def __call__(self, module: Module) -> Check:
        check = ScriptedCheck(self.script)
        self.built.append(check)
        return check


class FakeClock:
    """Wall clock the test moves by hand (intervals, timestamps)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def config_text(targets: list[str], *, timeout: str = "5s", retries: int = 0, interval: str | None = None,
                extra_global: str = "", item: str = "05") -> str:
    """A config with one tcp module `fake` and one check per target (names c0, c1, ...)."""
    lines = ["global:", "  max_concurrency: 64", *([extra_global] if extra_global else []),
             "modules:", f"  fake: {{kind: tcp, timeout: {timeout}, retries: {retries}, item: '{item}'}}",
             "checks:"]
    for index, target in enumerate(targets):
        interval_part = f", interval: {interval}" if interval else ""
        lines.append(f"  - {{name: c{index}, item: '{item}', module: fake, target: '{target}'"
                     f"{interval_part}}}")
    return "\n".join(lines) + "\n"


def make_config(targets: list[str], **kwargs: object) -> ExporterConfig:
    return parse_config(config_text(targets, **kwargs), "test.yml")  # type: ignore[arg-type]


@dataclass
class Served:
    url: str
    server: ExporterServer
    runtime: Runtime


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Start an in-process server on a free port for a runtime; stopped at teardown."""
    started: list[ExporterServer] = []

    def start(runtime: Runtime, web: WebConfig | None = None, lifecycle: bool = False,
              web_file: Path | None = None) -> Served:
        port = free_port()
        app = App(runtime, web or WebConfig(), enable_lifecycle=lifecycle, web_config_file=web_file)
        server = make_server(("127.0.0.1", port), app)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(server)
        scheme = "https" if web is not None and web.tls_server_config is not None else "http"
        return Served(f"{scheme}://127.0.0.1:{port}", server, runtime)

    yield start
    for server in started:
        server.shutdown()
        server.server_close()
        server.app.runtime.close()


def http_get(url: str, headers: dict[str, str] | None = None, method: str = "GET",
             timeout: float = 30.0) -> tuple[int, str, dict[str, str]]:
    """Status, body and headers, without raising on 4xx/5xx."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def sample(text: str, metric: str, /, **labels: str) -> float | None:
    """The value of one sample in an exposition text (labels must match exactly the given subset)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def scrape(runtime: Runtime, scrape_timeout: float | None = None) -> str:
    """One /metrics exposition of the runtime's check results, as the server renders it."""
    from prometheus_client.exposition import generate_latest

    class Families:
        def collect(self) -> Iterator[object]:
            return runtime.collect(scrape_timeout)

    return generate_latest(Families()).decode()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
