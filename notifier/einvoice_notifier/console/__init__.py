"""The notifier's web console (工单控制台), mounted by the app at /console."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter


def build_router(service: Any, settings: Any) -> APIRouter:
    """Routes for the console; `service` is the core's TicketService, `settings` its Settings."""
    from .routes import build_router as build

    return build(service, settings)


__all__ = ["build_router"]
