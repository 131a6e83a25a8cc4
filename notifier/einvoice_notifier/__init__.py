"""Alertmanager webhook receiver: tickets with SLA timers and WeChat Work messages."""
