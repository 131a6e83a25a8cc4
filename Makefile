# Targets the README uses. Everything runs from the virtualenv in .venv (made by `make venv`).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv deps demo exporter-demo test lint generate check-generated bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

# Debian packages the tests and the demo run for real (needs root or sudo; ./test.sh and ./demo.sh run it).
deps:
	scripts/install-debian-deps.sh

# The bundle's main job on its embedded defaults: the whole chain on this machine, no Docker. The
# README's ./demo.sh is the one recipe (it installs what is missing, then runs the chain).
demo:
	./demo.sh

# Only the exporter, on the demo config.
exporter-demo: venv
	$(VENV)/bin/einvoice-exporter --config config/demo/exporter.yml --web.listen-address 127.0.0.1:9877

test: deps venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy einvoice_core einvoice_stack exporters/einvoice_exporter notifier/einvoice_notifier reports/einvoice_reports
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy einvoice_core einvoice_stack exporters/einvoice_exporter notifier/einvoice_notifier reports/einvoice_reports

# Regenerate rules and dashboards from the catalogue and thresholds (commit the result).
generate: venv
	$(VENV)/bin/einvoice-generate

# Side-by-side benchmarks against the reference tools (each prints its table and ratios).
bench: deps venv
	$(PY) benchmarks/blackbox_compare.py
	$(PY) benchmarks/redis_compare.py
	$(PY) benchmarks/notifier_ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
