"""The contract's deliverables (monthly operations report, vendor scorecard...) built from data:
Prometheus' HTTP API and the notifier's ticket store, never the exporters' code."""
