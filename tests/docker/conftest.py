"""A real Docker engine for the `docker` collector's tests.

`dockerd` (Debian package `docker.io`) runs on its own socket and directories, with no bridge and no
iptables, so it touches neither the host's network nor a system daemon. No registry is reachable:
the test image is a Debian bookworm minbase tree (`debootstrap --variant=minbase`, Debian package
`debootstrap`) imported with `docker import`; the tarball is cached under /var/cache/einvoice-ci
(reused when another job left one there) so only the first run on a machine pays the ~40 s build.

The tests are skipped only when dockerd cannot run at all here, and never when CI=true (they fail),
with one exception: `.ci/run` runs the suite inside an unprivileged container, where no dockerd can
get the capabilities it needs; it sets EINVOICE_DOCKER_TESTS_ON_HOST=1 there and runs these tests on
the host itself (`pytest tests/docker`), so they do run on every CI run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.certs import CertFiles, TestCA
from tests.support.procs import Proc, free_port, wait_until

CACHE_DIR = Path(os.environ.get("EINVOICE_CI_CACHE", "/var/cache/einvoice-ci"))
OWN_TARBALL = "debian-bookworm-minbase-einvoice-tests.tar"
IMAGE = "local/einvoice-test:bookworm"


def _cannot_run(why: str) -> None:
    if os.environ.get("EINVOICE_DOCKER_TESTS_ON_HOST") == "1":
        pytest.skip(f"dockerd cannot run in this container ({why}); .ci/run runs tests/docker on the host")
    if os.environ.get("CI") == "true":
        pytest.fail(f"dockerd cannot run here, but CI=true: {why}")
    pytest.skip(f"dockerd cannot run here: {why}")


def _mirror() -> str:
    """The Debian mirror apt uses (deb822 `URIs:` or one-line `deb` entries)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            match = re.match(r"\s*(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", line)
            if match and "security" not in match.group(1):
                return match.group(1)
    return "http://deb.debian.org/debian"


def remove_engine_dir(directory: Path) -> None:
    """A stopped dockerd's directory: what it left mounted there (its default network namespace
    under exec/netns), deepest first, then the files."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
              if line.split()[1].startswith(f"{directory}/")]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", mount], capture_output=True, check=False)
    shutil.rmtree(directory, ignore_errors=True)


def minbase_tarball() -> Path:
    """A bookworm minbase root filesystem as a tarball, built once per machine."""
    found = sorted(CACHE_DIR.glob("debian-bookworm-minbase-*.tar"))
    if found:
        return found[0]
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).is_file():
        _cannot_run("debootstrap is not installed (apt-get install debootstrap)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="minbase-", dir=CACHE_DIR))
    try:
        subprocess.run([debootstrap, "--variant=minbase", "bookworm", str(root), _mirror()],
                       check=True, capture_output=True, timeout=900)
        partial = CACHE_DIR / (OWN_TARBALL + ".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, timeout=300)
        partial.rename(CACHE_DIR / OWN_TARBALL)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return CACHE_DIR / OWN_TARBALL


class Daemon:
    """One dockerd on a private socket, and on a loopback TCP port with TLS client certificates
    (`--tlsverify`, as the intranet's remote daemons); `cli(...)` runs the docker client on the socket."""

    def __init__(self, directory: Path, dockerd: str, client: str, data_root: Path | None = None) -> None:
        self.dir = directory
        self.data_root = data_root or directory / "data"
        self.dockerd = dockerd
        self.client = client
        self.socket = directory / "docker.sock"
        self.proc: Proc | None = None
        self.ca = TestCA(directory / "tls")
        self.server_cert = self.ca.issue("dockerd", hosts=("127.0.0.1",))
        self.client_cert: CertFiles = self.ca.issue("exporter", hosts=("einvoice-exporter",), client=True)
        self.tls_port = free_port()

    @property
    def target(self) -> str:
        return f"unix://{self.socket}"

    @property
    def tls_target(self) -> str:
        return f"tcp://127.0.0.1:{self.tls_port}"

    def start(self) -> None:
        argv = [self.dockerd, "--host", self.target, "--data-root", str(self.data_root),
                "--exec-root", str(self.dir / "exec"), "--pidfile", str(self.dir / "dockerd.pid"),
                "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                "--shutdown-timeout", "2", "--storage-driver", "overlay2",
                "--host", self.tls_target, "--tlsverify", "--tlscacert", str(self.ca.cert_path),
                "--tlscert", str(self.server_cert.cert), "--tlskey", str(self.server_cert.key)]
        self.proc = Proc(argv, self.dir / "dockerd.log")

        def ready() -> bool:
            assert self.proc is not None
            if not self.proc.alive():
                raise RuntimeError("dockerd exited:\n" + self.proc.log_text())
            return self.socket.exists() and self.cli("version", check=False).returncode == 0

        wait_until(ready, timeout=90, interval=0.2, what="dockerd answering")

    def stop(self) -> None:
        """SIGTERM and wait: dockerd stops its containers and removes its socket."""
        if self.proc is not None:
            self.proc.stop(timeout=60)
            self.proc = None

    def cli(self, *args: str, check: bool = True, stdin: Any = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.client, "--host", self.target, *args], check=check, text=stdin is None,
                              capture_output=True, stdin=stdin, timeout=120)

    def inspect(self, name: str) -> dict[str, Any]:
        out = self.cli("inspect", name, check=False)
        if out.returncode != 0:
            return {}
        return dict(json.loads(out.stdout)[0])

    def state(self, name: str) -> dict[str, Any]:
        return dict(self.inspect(name).get("State") or {})

    def run(self, name: str, *args: str) -> None:
        """`docker run -d` with no network, on the test image."""
        self.cli("run", "-d", "--name", name, "--network", "none", *args)

    def remove_all(self) -> None:
        ids = self.cli("ps", "-aq", check=False).stdout.split()
        if ids:
            self.cli("rm", "-f", *ids, check=False)


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[Daemon]:
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    client = shutil.which("docker")
    if not Path(dockerd).is_file() or client is None:
        _cannot_run("the docker.io package is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        _cannot_run("dockerd needs root")
    # The socket path must fit in sun_path (108 bytes): a short directory under /tmp.
    directory = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp"))
    daemon = Daemon(directory, dockerd, str(client))
    try:
        daemon.start()
    except (RuntimeError, TimeoutError) as exc:
        daemon.stop()
        remove_engine_dir(directory)
        _cannot_run(str(exc)[-2000:])
    try:
        tarball = minbase_tarball()
        with tarball.open("rb") as stream:
            daemon.cli("import", "-", IMAGE, stdin=stream)
        yield daemon
    finally:
        if daemon.proc is not None:
            daemon.remove_all()
        daemon.stop()
        remove_engine_dir(directory)


@pytest.fixture
def docker(docker_daemon: Daemon) -> Iterator[Daemon]:
    """The session's daemon, running, with no container left over from the previous test."""
    if docker_daemon.proc is None:
        docker_daemon.start()
    docker_daemon.remove_all()
    yield docker_daemon
    if docker_daemon.proc is None:
        docker_daemon.start()
    docker_daemon.remove_all()


class SocketProxy:
    """A unix-socket proxy in front of the daemon; `before_connection(n)` runs before connection n
    (from 1) is forwarded, so a test can stop the daemon between two requests of one scrape."""

    def __init__(self, directory: Path, upstream: Path,
                 before_connection: Callable[[int], None]) -> None:
        self.path = directory / "proxy.sock"
        self.upstream = upstream
        self.before = before_connection
        self.count = 0
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.path))
        self.server.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def target(self) -> str:
        return f"unix://{self.path}"

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.count += 1
            self.before(self.count)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(str(self.upstream))
            except OSError:
                upstream.close()
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SocketProxy]]:
    made: list[SocketProxy] = []

    def make(upstream: Path, before: Callable[[int], None]) -> SocketProxy:
        directory = Path(tempfile.mkdtemp(prefix="dkp-", dir="/tmp"))
        proxy = SocketProxy(directory, upstream, before)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()
        shutil.rmtree(proxy.path.parent, ignore_errors=True)



COMPOSE_ENGINE_DIR = CACHE_DIR / "compose-engine"
"""The data root of the compose test's dockerd, kept between runs: its images and Docker's build
cache (the apt and pip layers) make a second run build in seconds. One run at a time uses it (a
lock); a concurrent run gets a throwaway data root and builds from scratch."""


@pytest.fixture(scope="session")
def compose_engine() -> Iterator[Daemon]:
    """A dockerd for the compose stack, on the persistent data root when it is free."""
    import fcntl

    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    client = shutil.which("docker")
    if not Path(dockerd).is_file() or client is None:
        _cannot_run("the docker.io package is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        _cannot_run("dockerd needs root")
    directory = Path(tempfile.mkdtemp(prefix="dkc-", dir="/tmp"))
    data_root: Path | None = None
    lock = None
    try:
        COMPOSE_ENGINE_DIR.mkdir(parents=True, exist_ok=True)
        lock = (CACHE_DIR / "compose-engine.lock").open("w")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        data_root = COMPOSE_ENGINE_DIR
    except OSError:
        if lock is not None:
            lock.close()
            lock = None
    daemon = Daemon(directory, dockerd, str(client), data_root=data_root)
    try:
        daemon.start()
    except (RuntimeError, TimeoutError) as exc:
        daemon.stop()
        remove_engine_dir(directory)
        _cannot_run(str(exc)[-2000:])
    try:
        yield daemon
    finally:
        if daemon.proc is not None:
            daemon.remove_all()
            daemon.cli("volume", "prune", "-f", check=False)
            daemon.cli("image", "prune", "-f", check=False)
        daemon.stop()
        remove_engine_dir(directory)
        if lock is not None:
            lock.close()
