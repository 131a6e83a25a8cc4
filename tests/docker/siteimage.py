"""The Debian base image the compose stack's images are built from when no registry is reachable.

What a site without Docker Hub does (docs/deploy.md#offline-images): a Debian 12 minbase tree from
`debootstrap` (the tarball conftest.minbase_tarball() caches), imported with `docker import`, plus the
site's package-manager settings, exactly those `.ci/run` hands to its containers: apt sources and the
apt options no package installed (proxy, validity checks), locally added CA certificates, pip's
configuration. And what Debian's own container images have: `/usr/sbin/policy-rc.d` refusing to
start services on install (no init system in a container; on the host network a started prometheus
would take the host's port 9090).

The image is tagged with a key of its inputs and reused while the key holds, so Docker's build cache
(the apt and pip layers of the Dockerfiles) stays valid from one run to the next.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.docker.conftest import Daemon

BASE_IMAGE = "local/einvoice-base:bookworm"
MINBASE_IMAGE = "local/einvoice-minbase:bookworm"
KEY_LABEL = "org.einvoice.base-key"
POLICY_RC_D = (b"#!/bin/sh\n# no init system in this container: services are not started on install\n"
               b"exit 101\n")


def _owned_by_a_package(path: Path) -> bool:
    return subprocess.run(["dpkg", "-S", str(path)], capture_output=True, check=False).returncode == 0


def site_settings() -> dict[str, bytes]:
    """Path in the image -> content: the settings `.ci/run` hands in (see its `hand_in` calls)."""
    lists = Path("/etc/apt/sources.list.d")
    files: list[Path] = [Path("/etc/apt/sources.list"), *sorted(lists.glob("*.list")),
                         *sorted(lists.glob("*.sources"))]
    files += [p for p in [Path("/etc/apt/apt.conf"), *sorted(Path("/etc/apt/apt.conf.d").glob("*"))]
              if p.is_file() and not _owned_by_a_package(p)]
    files += sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    files += sorted(Path("/usr/local/share/ca-certificates").glob("*/*.crt"))
    files += [Path("/etc/pip.conf"), *sorted(Path("/etc/xdg/pip").glob("*"))]
    settings = {str(p): p.read_bytes() for p in files if p.is_file()}
    # debootstrap's one-line list is replaced by the machine's sources (deb822 files included).
    settings.setdefault("/etc/apt/sources.list", b"")
    settings["/usr/sbin/policy-rc.d"] = POLICY_RC_D
    return settings


def _tar(settings: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    parents = sorted({str(parent) for path in settings for parent in Path(path).parents
                      if str(parent) != "/"})
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in parents:
            info = tarfile.TarInfo(directory.lstrip("/"))
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for path, content in sorted(settings.items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(content)
            info.mode = 0o755 if path == "/usr/sbin/policy-rc.d" else 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def base_key(minbase: Path, settings: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    stat = minbase.stat()
    digest.update(f"{minbase.name}\0{stat.st_size}\0{int(stat.st_mtime)}\0".encode())
    for path, content in sorted(settings.items()):
        digest.update(path.encode() + b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()[:16]


def ensure_base_image(daemon: Daemon, minbase: Path) -> str:
    """The site base image in `daemon` (built unless the same inputs made the one it has)."""
    cli = daemon.cli
    settings = site_settings()
    key = base_key(minbase, settings)
    found = cli("image", "inspect", "--format", "{{ index .Config.Labels \"" + KEY_LABEL + "\" }}",
                BASE_IMAGE, check=False)
    if found.returncode == 0 and found.stdout.strip() == key:
        return BASE_IMAGE
    with minbase.open("rb") as stream:
        cli("import", "-", MINBASE_IMAGE, stdin=stream)
    name = f"einvoice-base-{key}"
    cli("rm", "-f", name, check=False)
    cli("create", "--name", name, MINBASE_IMAGE, "true")
    try:
        subprocess.run([daemon.client, "--host", daemon.target, "cp", "-", f"{name}:/"],
                       input=_tar(settings), check=True, capture_output=True, timeout=120)
        cli("commit", "--change", f"LABEL {KEY_LABEL}={key}", "--change", 'CMD ["bash"]', name, BASE_IMAGE)
    finally:
        cli("rm", "-f", name, check=False)
    return BASE_IMAGE

