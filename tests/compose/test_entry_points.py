"""The README's two commands: what a newcomer types on a fresh Debian 12, and what CI proves.

The first code block of README.md holds exactly the two entry points; each exists at the top of the
repository, is executable, installs what it needs with `scripts/install-debian-deps.sh` before it uses
anything beyond bash and apt-get, and `.ci/run` runs the README's test command (and smokes the demo
command) in a fresh container. The fresh-container run itself is `.ci/run`.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["./demo.sh", "./test.sh"]


def first_code_block(readme: str) -> list[str]:
    """The first fenced block's lines with their `# comments` and blank lines removed."""
    match = re.search(r"^```[^\n]*\n(.*?)^```", readme, re.M | re.S)
    assert match, "README.md has no code block"
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in match.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _bash() -> str:
    bash = shutil.which("bash")
    assert bash, "bash is not installed"
    return bash


def test_readme_first_code_block_is_the_two_commands() -> None:
    assert first_code_block((REPO / "README.md").read_text(encoding="utf-8")) == COMMANDS


def test_ci_reads_the_same_commands_from_the_readme(tmp_path: Path) -> None:
    """.ci/run checks the README with .ci/readme-commands: it must agree with the parse above, also
    when the block changes (so a README edit stops CI instead of passing unproven)."""
    helper = REPO / ".ci" / "readme-commands"
    out = subprocess.run([_bash(), str(helper), str(REPO / "README.md")], capture_output=True,
                         text=True, check=True).stdout
    assert out.splitlines() == COMMANDS
    edited = tmp_path / "README.md"
    edited.write_text("# t\n\n```sh\n  make demo   # old\n\n# a comment line\nmake test\n```\n"
                      "\n```sh\nx\n```\n")
    out = subprocess.run([_bash(), str(helper), str(edited)], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines() == first_code_block(edited.read_text()) == ["make demo", "make test"]


@pytest.mark.parametrize("command", COMMANDS)
def test_entry_point_is_an_executable_bash_script(command: str) -> None:
    path = REPO / command
    assert path.is_file(), f"{command} is missing"
    assert path.stat().st_mode & stat.S_IXUSR and os.access(path, os.X_OK), f"{command} is not executable"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n"), f"{command}: needs only bash"
    assert "set -euo pipefail" in text
    syntax = subprocess.run([_bash(), "-n", str(path)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    tracked = subprocess.run(["git", "ls-files", "-s", command], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout
    assert tracked.startswith("100755 "), f"{command} is not committed as executable: {tracked!r}"


@pytest.mark.parametrize("command", COMMANDS)
def test_entry_point_installs_before_it_uses_make_or_python(command: str) -> None:
    """On a fresh Debian 12 only bash and apt-get exist: the install script comes first."""
    lines = [line.strip() for line in (REPO / command).read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    install = lines.index("scripts/install-debian-deps.sh")
    later = [i for i, line in enumerate(lines) if re.search(r"\b(make|python3?|\.venv/bin/)", line)]
    assert later, f"{command} runs nothing after installing"
    assert min(later) > install, f"{command} uses make or python before installing them"


def test_install_script_brings_what_the_entry_points_and_tests_use() -> None:
    text = (REPO / "scripts" / "install-debian-deps.sh").read_text(encoding="utf-8")
    block = re.search(r"^packages=\((.*?)^\)", text, re.M | re.S)
    assert block, "scripts/install-debian-deps.sh lists its packages in packages=(...)"
    packages = set(block.group(1).split())
    # make and python3-venv for `make venv`, git for a clone and the secrets test, CA certificates for
    # pip, and the servers the tests start for real.
    assert {"make", "git", "ca-certificates", "python3", "python3-venv"} <= packages
    assert {"prometheus", "prometheus-alertmanager", "redis-server", "mariadb-server", "nginx",
            "chromium"} <= packages


def test_ci_runs_the_readme_test_command_in_a_fresh_container() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^DEMO_CMD=\./demo\.sh$", ci, re.M)
    assert re.search(r"^TEST_CMD=\./test\.sh$", ci, re.M)
    assert '.ci/readme-commands README.md' in ci
    # The test command's README line, run as written in a container made by new_container.
    assert re.search(r'^new_container "[^"]*" bash -c "\$TEST_LINE"$', ci, re.M)
    assert re.search(r'^new_container "[^"]*" bash \.ci/demo-smoke "\$DEMO_CMD"$', ci, re.M)
    assert "debootstrap --variant=minbase" in ci
    # The suite runs once, in the container: .ci/run itself runs no make, and pytest only for the
    # tests that start a Docker engine, which no container here can (tests/docker, on the host).
    assert not re.search(r"^\s*(make|pytest)\b", ci, re.M)
    runs = re.findall(r"-m pytest (\S+)", ci)
    assert runs == ["tests/docker"]
    assert "--env EINVOICE_DOCKER_TESTS_ON_HOST=1" in ci
