#!/usr/bin/env bash
# The README's test command. Needs only bash, apt-get and root (or sudo): installs the Debian packages
# the tests start for real (scripts/install-debian-deps.sh, which also brings make, git and python3),
# then runs `make test` (a virtualenv in .venv, ruff, mypy, the full test suite). Arguments go to make,
# e.g. ./test.sh PYTEST_ARGS=tests/compose
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-debian-deps.sh
exec make test "$@"
