"""Custom Prometheus exporter for the Guangxi VAT e-invoice public service platform."""
