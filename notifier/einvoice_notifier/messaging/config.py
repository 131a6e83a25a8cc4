"""Channel configuration: one strict model per channel type, chosen by `type`.

The notifier's settings hold a list of these. Secrets (the robot key, the application secret) are
given inline as `${ENV_VAR}` or read from a `*_file`; they are SecretStr so they never show up in a
repr, a log line or a validation error.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)

from einvoice_core.configtypes import StrictModel

from .base import Channel

ChannelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
"""Stored in every outbox row and used as the `channel` label: short and plain."""

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")




def expand_env(value: str) -> str:
    """Replace `${VAR}` with the environment's value; a missing variable is an error naming it."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REF.sub(one, value)


def _secret(value: SecretStr | None, file: Path | None, key: str) -> str | None:
    if value is not None and file is not None:
        raise ValueError(f"set either {key} or {key}_file, not both")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{key}_file {file} cannot be read ({exc.strerror})") from None
    if value is not None:
        return expand_env(value.get_secret_value())
    return None


class WeChatRobotConfig(StrictModel):
    """A WeCom group robot (群机器人): POST {base_url}/cgi-bin/webhook/send?key=KEY."""

    type: Literal["wechat_robot"]
    name: ChannelName
    webhook_url: SecretStr | None = None
    """The whole webhook URL as WeCom shows it (it contains the key, hence secret)."""
    webhook_url_file: Path | None = None
    key: SecretStr | None = None
    key_file: Path | None = None
    base_url: str = "https://qyapi.weixin.qq.com"
    """Used with `key`; tests point it at the fake server."""
    max_per_minute: int = Field(default=20, ge=1, le=20)
    """WeCom allows 20 messages a minute per robot; pace below that if others share the robot."""
    timeout: float = Field(default=10.0, gt=0, le=120)
    max_bytes: int = Field(default=4096, ge=512, le=4096)

    @model_validator(mode="after")
    def _one_way_to_the_key(self) -> WeChatRobotConfig:
        given = [k for k in ("webhook_url", "webhook_url_file", "key", "key_file") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("set exactly one of webhook_url, webhook_url_file, key, key_file "
                             f"(got {', '.join(given) or 'none'})")
        if self.webhook_url is not None:
            url = expand_env(self.webhook_url.get_secret_value())
            if not url.startswith(("https://", "http://")) or "key=" not in url:
                raise ValueError("webhook_url must be the robot's whole URL, "
                                 "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…")
        if not self.base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must start with https:// or http://")
        for key in ("webhook_url_file", "key_file"):
            path = getattr(self, key)
            if path is not None and not path.is_file():
                raise ValueError(f"{key} {path} does not exist or is not a file")
        return self

    def send_url(self) -> str:
        """The URL with the key: only for the channel itself, never for a log."""
        url = _secret(self.webhook_url, self.webhook_url_file, "webhook_url")
        if url:
            return url
        key = _secret(self.key, self.key_file, "key") or ""
        return f"{self.base_url.rstrip('/')}/cgi-bin/webhook/send?key={key}"


class WeChatAppConfig(StrictModel):
    """A WeCom application (应用消息): gettoken with corp id + secret, then message/send."""

    type: Literal["wechat_app"]
    name: ChannelName
    corp_id: str = Field(min_length=1)
    agent_id: int
    secret: SecretStr | None = None
    secret_file: Path | None = None
    to_user: list[str] = Field(default_factory=list)
    to_party: list[str] = Field(default_factory=list)
    to_tag: list[str] = Field(default_factory=list)
    base_url: str = "https://qyapi.weixin.qq.com"
    timeout: float = Field(default=10.0, gt=0, le=120)
    token_margin: float = Field(default=300.0, ge=0)
    """Refresh the access token this many seconds before WeCom says it expires."""
    duplicate_check_interval: int = Field(default=1800, ge=0, le=14400)
    """Seconds WeCom drops a second request of the same JSON (`enable_duplicate_check`, at most 4 h;
    0: off). A message re-sent because a notifier died between WeCom's answer and recording it
    (or a replica's lease ran out mid-send) then reaches people once."""

    @model_validator(mode="after")
    def _complete(self) -> WeChatAppConfig:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("set exactly one of secret or secret_file")
        if self.secret_file is not None and not self.secret_file.is_file():
            raise ValueError(f"secret_file {self.secret_file} does not exist or is not a file")
        if not (self.to_user or self.to_party or self.to_tag):
            raise ValueError("name at least one recipient in to_user, to_party or to_tag")
        return self

    def secret_value(self) -> str:
        return _secret(self.secret, self.secret_file, "secret") or ""


class ConsoleChannelConfig(StrictModel):
    """The demo channel: messages appended to a file and/or printed."""

    type: Literal["console"]
    name: ChannelName
    path: Path | None = None
    stdout: bool = True
    max_bytes: int = Field(default=4096, ge=512, le=1_000_000)

    @field_validator("path")
    @classmethod
    def _parent_exists_or_creatable(cls, value: Path | None) -> Path | None:
        if value is not None and value.exists() and not value.is_file():
            raise ValueError(f"{value} exists and is not a file")
        return value


ChannelConfig = Annotated[WeChatRobotConfig | WeChatAppConfig | ConsoleChannelConfig,
                          Field(discriminator="type")]


CHANNELS_ADAPTER: TypeAdapter[list[ChannelConfig]] = TypeAdapter(
    list[ChannelConfig], config=ConfigDict(hide_input_in_errors=True))
"""Validates a list of channel configs. A model that embeds ChannelConfig should set
`hide_input_in_errors=True` too: pydantic prints the offending input, secrets included, otherwise."""


def parse_channels(data: object) -> list[WeChatRobotConfig | WeChatAppConfig | ConsoleChannelConfig]:
    return CHANNELS_ADAPTER.validate_python(data)


def build_channel(cfg: WeChatRobotConfig | WeChatAppConfig | ConsoleChannelConfig,
                  clock: Callable[[], float] = time.monotonic) -> Channel:
    """The Channel for a config; client code is imported here, not when settings are validated."""
    if isinstance(cfg, WeChatRobotConfig):
        from .wechat_robot import WeChatRobotChannel

        return WeChatRobotChannel(cfg, clock=clock)
    if isinstance(cfg, WeChatAppConfig):
        from .wechat_app import WeChatAppChannel

        return WeChatAppChannel(cfg, clock=clock)
    from .console import ConsoleChannel

    return ConsoleChannel(cfg, stream=sys.stdout if cfg.stdout else None)
