"""One collector module per kind of target.

Each module defines `Settings` (its block of a module config), optionally `validate_target(target)`
(raises ValueError with a sentence), and `build(settings) -> Check`. Client libraries are imported
lazily inside the collector, so validating a config never imports them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..outcome import Check
    from ..schema import Module


def build_check(module: Module) -> Check:
    kind_module = importlib.import_module(f"{__name__}.{module.kind}")
    check: Check = kind_module.build(getattr(module, module.kind))
    return check
