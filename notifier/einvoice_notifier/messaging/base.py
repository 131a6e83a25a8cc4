"""The contract between the notifier's durable outbox and the message channels.

The outbox stores a `Message` (already rendered and redacted: exactly what will leave) before any
attempt to send it. A worker hands due messages to the channel named in the row; the channel answers
with a `SendResult` that says whether the message is delivered, should be retried (and not before
when), or can never be delivered (dead letter). Channels never raise for a failed delivery; an
exception escaping `send` is treated as a retryable error and logged as a bug.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class Message:
    format: Literal["markdown", "text"]
    content: str
    """Chinese, redacted, within the channel's byte limit (the renderer splits or shortens)."""
    mentioned_mobiles: tuple[str, ...] = field(default=())
    """Mobiles of the people on duty to @ (text messages of the group robot only)."""
    ticket_url: str | None = None
    """The signed link to the ticket page; kept in every part when a message is split."""


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    reason: str = ""
    """Short English reason for logs, metrics (`result` label: bounded values) and the console."""
    retry_after: float | None = None
    """Seconds to wait before the next attempt (rate limits, 45009); None: the outbox's backoff."""
    count_attempt: bool = True
    """False when nothing was sent (paced locally): the attempt does not count toward dead-letter."""

    @classmethod
    def sent(cls) -> SendResult:
        return cls(Outcome.SENT)

    @classmethod
    def retry(cls, reason: str, after: float | None = None, count_attempt: bool = True) -> SendResult:
        return cls(Outcome.RETRY, reason, after, count_attempt)

    @classmethod
    def permanent(cls, reason: str) -> SendResult:
        return cls(Outcome.PERMANENT, reason)


class Channel(Protocol):
    name: str
    """The configured channel name, stored in each outbox row."""
    max_bytes: int
    """Largest UTF-8 content the channel accepts (4096 for the WeChat Work robot)."""

    def send(self, message: Message) -> SendResult:
        ...
