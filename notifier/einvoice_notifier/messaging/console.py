"""The console channel: messages appended to a file and/or printed, for the demo and for people
who want to see exactly what would have left for WeChat."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TextIO

from .base import Message, SendResult
from .config import ConsoleChannelConfig


class ConsoleChannel:
    def __init__(self, cfg: ConsoleChannelConfig, stream: TextIO | None = None) -> None:
        self.name = cfg.name
        self.max_bytes = cfg.max_bytes
        self._path = cfg.path
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: Message) -> SendResult:
        header = f"=== {datetime.now(UTC).isoformat(timespec='seconds')} {self.name} [{message.format}]"
        if message.mentioned_mobiles:
            header += f" @{len(message.mentioned_mobiles)}"
        block = f"{header} ===\n{message.content}\n"
        with self._lock:
            try:
                if self._path is not None:
                    self._path.parent.mkdir(parents=True, exist_ok=True)
                    with self._path.open("a", encoding="utf-8") as out:
                        out.write(block)
                if self._stream is not None:
                    self._stream.write(block)
                    self._stream.flush()
            except OSError:
                return SendResult.retry("io_error")
        return SendResult.sent()
