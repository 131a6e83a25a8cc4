"""The state file: positions and counter values per target, so a restart neither counts a line twice
nor skips what was written meanwhile, and the counters continue instead of starting over.

JSON, written to a temporary file in the same directory and renamed over the old one, so a crash
leaves either the old or the new state, never half of one. One state file belongs to one module.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

VERSION = 1


class StateFile:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, Any] | None = None
        self._written = ""

    def load(self) -> dict[str, Any]:
        """Targets -> their saved state; an unreadable or foreign file starts empty (and says so)."""
        if self._data is None:
            self._data = {}
            if self.path is not None and self.path.exists():
                try:
                    raw = json.loads(self.path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    raw = {}
                if isinstance(raw, dict) and raw.get("version") == VERSION:
                    self._data = dict(raw.get("targets", {}))
        return self._data

    def target(self, target: str) -> dict[str, Any] | None:
        found = self.load().get(target)
        return found if isinstance(found, dict) else None

    def save(self, target: str, state: dict[str, Any]) -> None:
        data = self.load()
        data[target] = state
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"version": VERSION, "targets": data}, separators=(",", ":"))
        if text == self._written:
            return  # idle: no write, no fsync
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(self.path)
            self._written = text
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
