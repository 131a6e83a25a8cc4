#!/usr/bin/env bash
# The README's demo command. Needs only bash, apt-get and root (or sudo): installs the Debian packages
# (scripts/install-debian-deps.sh, which also brings make and python3) and the virtualenv in .venv,
# then runs the whole chain in the foreground until Ctrl-C or SIGTERM (`make demo` runs this script).
# Arguments go to `python -m einvoice_stack` (see --help).
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-debian-deps.sh
make --question venv 2>/dev/null || make --no-print-directory venv   # the virtualenv, when missing or stale
# exec: the chain's supervisor gets Ctrl-C/SIGTERM itself and stops every process it started.
exec .venv/bin/python -m einvoice_stack "$@"
