"""The notifier's settings: one strict model, loaded from YAML, with defaults that run as is.

`einvoice-notifier` with no file at all serves on 127.0.0.1:9878, stores tickets in
./var/notifier.db and writes messages to stdout and ./var/messages.log: the demo needs nothing
else. Secrets are never written inline in a committed file: `${VAR}` in any string is replaced by
the environment variable, and every secret has a `*_file` twin (Docker secrets).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from einvoice_core.configtypes import (
    PositiveDuration,
    StrictModel,
    expand_env,
    one_of_secret,
    resolve_secret,
)
from einvoice_core.contract import ReportChannel, TicketClass

from .messaging.config import ChannelConfig, ConsoleChannelConfig

ENV_WEBHOOK_TOKEN = "EINVOICE_NOTIFIER_WEBHOOK_TOKEN"  # noqa: S105 - a variable name
SEVERITY_CLASSES: tuple[TicketClass, ...] = tuple(TicketClass)
"""Every ticket class, in the contract's order (kept under this name for the modules that import it)."""


Duration = PositiveDuration
Mobile = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{5,20}$")]


class User(StrictModel):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    password_hash: Annotated[str, StringConstraints(pattern=r"^\$2[aby]\$\d\d\$.{53}$")]
    """bcrypt hash (`python -c 'import bcrypt; print(bcrypt.hashpw(b"pw", bcrypt.gensalt()))'`)."""
    role: Literal["viewer", "operator"] = "viewer"
    display_name: str = ""


class ApiToken(StrictModel):
    """A bearer token for scripts using the JSON API (not the webhook's token)."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    token: SecretStr | None = None
    token_file: Path | None = None
    role: Literal["viewer", "operator"] = "operator"

    @model_validator(mode="after")
    def _secret(self) -> ApiToken:
        one_of_secret(self.token, self.token_file, "token")
        if self.token is None and self.token_file is None:
            raise ValueError("an api token needs `token` or `token_file`")
        require_nonempty_secret(self.token, self.token_file, "token")
        return self

    def value(self) -> str:
        found = resolve_secret(self.token, self.token_file)
        assert found is not None
        return found


def require_nonempty_secret(value: SecretStr | None, file: Path | None, key: str,
                            min_length: int = 1) -> None:
    """A secret that is configured must hold something: an empty file (or `${VAR}` set to "") is a
    mistake, and falling back to a generated dev secret would hide it until Alertmanager is refused."""
    try:
        found = resolve_secret(value, file)
    except OSError as exc:
        raise ValueError(f"{key}_file {file} cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{key}_file {file} is not UTF-8 text") from None
    if found is None:
        return
    where = f"{key}_file {file}" if file is not None else key
    if not found.strip():
        raise ValueError(f"{where} is empty: put the secret in it, or remove the key")
    if found != found.strip():
        raise ValueError(f"{where} starts or ends with spaces: remove them")
    if len(found) < min_length:
        raise ValueError(f"{where} must be at least {min_length} characters")


class SlaPolicy(StrictModel):
    """The two clocks of one ticket class (SPEC §3).

    `response` is the substantive response (#8), or for stalls and outages the phone response of #5:
    always wall-clock time, around the clock. `resolution` (#9) is counted on the clock named by
    `clock`: `working` = on-site hours on the calendar (24 h in an important period), `wall` = every
    second (stalls and outages: restored within 30 minutes)."""

    response: Duration
    resolution: Duration
    clock: Literal["working", "wall"] = "working"
    """The clock of the resolution deadline only; the response deadline is always wall-clock."""


def _default_sla() -> dict[TicketClass, SlaPolicy]:
    # SPEC §3 #8: substantive response routine < 2 h, general < 4 h, urgent < 2 h (hours around the
    # clock). #9: urgent resolved < 2 working hours, general < 4; stalls and outages restored within
    # 30 min around the clock, and answered by phone within 10 min (#5). The contract sets no
    # resolution time for routine requests: they get the general class's 4 working hours.
    return {
        TicketClass.ROUTINE: SlaPolicy(response=7200, resolution=14400, clock="working"),
        TicketClass.GENERAL: SlaPolicy(response=14400, resolution=14400, clock="working"),
        TicketClass.URGENT: SlaPolicy(response=7200, resolution=7200, clock="working"),
        TicketClass.STALL: SlaPolicy(response=600, resolution=1800, clock="wall"),
        TicketClass.OUTAGE: SlaPolicy(response=600, resolution=1800, clock="wall"),
    }


def _default_report_response() -> dict[ReportChannel, float]:
    # SPEC §3 #5: phone 10 min, ops website 1 h, on-site 30 min, remote 2 h. The contract names no
    # time for WeChat/QQ groups and 12366: a written request in a group is answered like the website
    # (1 h); a problem passed on from the 12366 hotline is a phone call (10 min).
    return {
        ReportChannel.PHONE: 600.0, ReportChannel.WEBSITE: 3600.0, ReportChannel.ON_SITE: 1800.0,
        ReportChannel.REMOTE: 7200.0, ReportChannel.WECHAT_QQ: 3600.0, ReportChannel.HOTLINE_12366: 600.0,
    }


def _default_channels() -> list[ChannelConfig]:
    return [ConsoleChannelConfig(type="console", name="console", path=Path("var/messages.log"), stdout=True)]


class Routing(StrictModel):
    first_line: list[str] = Field(default_factory=lambda: ["console"])
    """Channels that get every firing/resolved message."""
    second_line: list[str] = Field(default_factory=lambda: ["console"])
    """Channels for escalations and for notifications Alertmanager sends with `?route=second_line`."""
    duty_mobiles: list[Mobile] = Field(default_factory=list)
    """Mobiles of the on-site person on duty, @-ed in first-line messages."""
    second_line_mobiles: list[Mobile] = Field(default_factory=list)
    """Mobiles @-ed in second-line messages and escalations."""
    bureau_admins: list[str] = Field(default_factory=list)
    """Channels of the bureau's system administrators (问题提交税务局系统管理员核实处理); empty:
    forwarding to them is recorded but sends no message."""
    bureau_admin_mobiles: list[Mobile] = Field(default_factory=list)


class OutboxSettings(StrictModel):
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 30
    """Counted attempts before a message becomes a dead letter (30 with the backoff ≈ 2 h)."""
    backoff_initial: Duration = 2.0
    backoff_max: Duration = 300.0
    poll_interval: Duration = 1.0
    """How often a sender looks for due messages when nothing woke it."""
    lease: Duration = 60.0
    """How long a sender holds the messages it took to send (replicas skip them meanwhile); the
    messages of a replica that died are sent by another one this long after. At least twice the
    longest channel timeout: a send never outlasts its lease."""


class RetentionSettings(StrictModel):
    """How long what no report reads is kept (reports read tickets and their audit log: never pruned)."""

    events: Duration = 90 * 86400.0
    """Webhook records (`notifications`) and the dedupe events (`alert_events`) of closed tickets
    (an alert still firing may be redelivered, so its ticket's events stay until it is closed)."""
    sent_messages: Duration = 90 * 86400.0
    """Delivered outbox rows. Dead letters stay until an operator requeues them."""
    interval: Duration = 3600.0
    """How often the replica holding the scheduler prunes."""


class Settings(StrictModel):
    listen: Annotated[str, StringConstraints(pattern=r"^[^:\s]*:\d{1,5}$")] = "127.0.0.1:9878"
    public_url: str = "http://127.0.0.1:9878"
    """Base of the links in messages (how the person on duty reaches the console)."""
    state_dir: Path = Path("var")
    database_url: SecretStr | None = None
    """sqlite:///var/notifier.db (default) or mysql+pymysql://user:${DB_PASSWORD}@host/db."""
    database_url_file: Path | None = None
    webhook_token: SecretStr | None = None
    webhook_token_file: Path | None = None
    body_limit_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    calendar_file: Path | None = None
    sla: dict[TicketClass, SlaPolicy] = Field(default_factory=_default_sla)
    """Per ticket class; a class the file leaves out keeps the contract's default."""
    recurrence_window: Duration = 30 * 86400.0
    """一次性解决率: a problem that starts again within this time after its earlier ticket was
    resolved is a recurrence of it (SPEC §3 #11; 30 days)."""
    users: list[User] = Field(default_factory=list)
    api_tokens: list[ApiToken] = Field(default_factory=list)
    console_secret_key: SecretStr | None = None
    console_secret_key_file: Path | None = None
    link_ttl: Duration = 7 * 86400.0
    """How long the signed ticket link in a message stays valid."""
    channels: list[ChannelConfig] = Field(default_factory=_default_channels)
    """Where messages go: WeChat Work robot/app, console (models in messaging/config.py)."""
    routing: Routing = Field(default_factory=Routing)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    scheduler_interval: Duration = 15.0
    """How often deadlines are checked for breaches (by one replica at a time: see `leases` in db.py)."""
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    template_dir: Path | None = None
    """Operator overrides of the message templates (passed to the messaging package)."""
    report_response: dict[ReportChannel, Duration] = Field(default_factory=_default_report_response)
    """First response (SPEC §3 #5) of a reported problem, per channel; a channel the file leaves out
    keeps the default."""
    prometheus_url: str | None = None
    """Prometheus' base URL: the daily inspection is pre-filled from einvoice:item_up; None: blank."""
    reports_url: str | None = None
    """Where the report archive (einvoice-report --out) is served: the console links a fault's evidence
    pack as REPORTS_URL/evidence/ticket-N.html; None: the console shows the command that makes it."""
    prometheus_timeout: Duration = 5.0
    inspection_due: str = "12:00"
    """Local time of day by which the daily inspection is signed; later is late, none is missing."""
    roster_horizon: Duration = 86400.0
    """How far ahead an uncovered shift in an important period is counted (and alerted on)."""
    report_archive: Path | None = None
    """The folder `einvoice-report` writes to (its --out): listed and served by the console's 报告
    page. None: the page says it is not configured."""
    announce_reports: bool = True
    """With report_archive set: a notice to the first line (routing.first_line) when a report newly
    appears in the archive, with the link to the 报告 page."""

    @field_validator("inspection_due")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
            raise ValueError(f"{value!r} is not a time of day; write it like 12:00 (Asia/Shanghai)")
        return value

    @field_validator("report_response", mode="after")
    @classmethod
    def _every_channel(cls, value: dict[ReportChannel, float]) -> dict[ReportChannel, float]:
        return {**_default_report_response(), **value}

    @field_validator("sla", mode="after")
    @classmethod
    def _every_class(cls, value: dict[TicketClass, SlaPolicy]) -> dict[TicketClass, SlaPolicy]:
        return {**_default_sla(), **value}

    @model_validator(mode="after")
    def _check(self) -> Settings:
        one_of_secret(self.database_url, self.database_url_file, "database_url")
        one_of_secret(self.webhook_token, self.webhook_token_file, "webhook_token")
        one_of_secret(self.console_secret_key, self.console_secret_key_file, "console_secret_key")
        require_nonempty_secret(self.database_url, self.database_url_file, "database_url")
        require_nonempty_secret(self.webhook_token, self.webhook_token_file, "webhook_token")
        require_nonempty_secret(self.console_secret_key, self.console_secret_key_file, "console_secret_key",
                                min_length=16)
        missing = sorted({*self.routing.first_line, *self.routing.second_line, *self.routing.bureau_admins}
                         - set(self.channel_names()))
        if missing:
            raise ValueError(f"routing names channels that are not configured: {', '.join(missing)}")
        names = [user.name for user in self.users]
        if len(names) != len(set(names)):
            raise ValueError("users: a name appears twice")
        names = self.channel_names()
        if len(names) != len(set(names)):
            raise ValueError("channels: a name appears twice")
        for channel in self.channels:
            timeout = float(getattr(channel, "timeout", 0.0) or 0.0)
            if self.outbox.lease < 2 * timeout:
                raise ValueError(f"outbox.lease ({self.outbox.lease:g}s) must be at least twice the timeout "
                                 f"of channel {_channel_name(channel)} ({timeout:g}s): a send must end "
                                 "well inside its lease, or another replica sends the message too")
        if self.retention.events < 7 * 86400:
            raise ValueError("retention.events must be at least 7d: Alertmanager may redeliver a "
                             "notification for 5 days (its --data.retention), and the events are its dedupe")
        if self.retention.sent_messages < 86400:
            raise ValueError("retention.sent_messages must be at least 1d (the robot's pacing and the "
                             "outbox view read recent deliveries)")
        return self

    def channel_names(self) -> list[str]:
        return [_channel_name(channel) for channel in self.channels]

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0] or "0.0.0.0"  # noqa: S104 - operator's explicit choice

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    def resolved_database_url(self) -> str:
        url = resolve_secret(self.database_url, self.database_url_file)
        return url or f"sqlite:///{self.state_dir / 'notifier.db'}"

    def configured_webhook_token(self) -> str | None:
        """The token from the file, `webhook_token`, or the environment; None: generate one."""
        return (resolve_secret(self.webhook_token, self.webhook_token_file)
                or os.environ.get(ENV_WEBHOOK_TOKEN) or None)

    def configured_console_secret(self) -> bytes | None:
        found = resolve_secret(self.console_secret_key, self.console_secret_key_file)
        return found.encode() if found else None


def _channel_name(channel: object) -> str:
    return str(getattr(channel, "name", ""))


class ConfigError(ValueError):
    """The file is unreadable or invalid; the message names the key."""


def _expand_env(node: object) -> object:
    errors: list[tuple[tuple[str | int, ...], str]] = []
    expanded = expand_env(node, os.environ, (), errors)
    if errors:
        path, message = errors[0]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
        raise ConfigError(f"{where or 'config'}: {message}")
    return expanded


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{location}: {error['msg']}")
    return "invalid notifier config:\n  " + "\n  ".join(lines)


def parse_settings(raw: object) -> Settings:
    """Validate a parsed YAML document (after `${VAR}` expansion) into Settings."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the notifier config must be a mapping of keys")
    try:
        settings = Settings.model_validate(_expand_env(raw))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    return settings


def load_settings(path: Path | None) -> Settings:
    if path is None:
        return parse_settings({})
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_settings(raw)


def generate_token() -> str:
    return secrets.token_urlsafe(32)
