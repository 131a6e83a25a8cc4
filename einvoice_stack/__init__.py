"""The whole chain on one machine without Docker: exporter, Prometheus, Alertmanager, notifier.

`python -m einvoice_stack` (what `make demo` runs) renders configuration into a run directory, starts
Debian's prometheus and prometheus-alertmanager and the bundle's own services, prints the URLs and
stops everything on Ctrl-C. The end-to-end test drives the same code with shorter intervals.
"""
