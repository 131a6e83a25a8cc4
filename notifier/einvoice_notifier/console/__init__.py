"""The notifier's web console (工单控制台), mounted by the app at /console."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

if TYPE_CHECKING:
    from ..auth import Authenticator


def build_router(service: Any, settings: Any, authenticator: Authenticator | None = None,
                 clock: Callable[[], float] = time.time) -> APIRouter:
    """Routes for the console; `service` is the core's TicketService, `settings` its Settings, and
    `authenticator` the app's (one login throttle for the API and the console)."""
    from .routes import build_router as build

    return build(service, settings, authenticator, clock)


__all__ = ["build_router"]
