"""Configuration types of the exporter: the shared building blocks, item ids, names, TLS files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, StringConstraints, model_validator

from einvoice_core.catalogue import normalize_item_id
from einvoice_core.configtypes import (
    Duration,
    PositiveDuration,
    StrictModel,
    one_of_secret,
    parse_duration,
    resolve_secret,
)

__all__ = [
    "Duration", "ItemId", "Name", "PositiveDuration", "StrictModel", "TlsFiles", "check_tls_files",
    "one_of_secret", "parse_duration", "resolve_secret",
]

ItemId = Annotated[str, BeforeValidator(normalize_item_id)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
"""Check and module names: they become label values, so short and plain."""


def check_tls_files(ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> None:
    """A client certificate needs its key, and every named file must exist (fail at start)."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("cert_file and key_file go together: set both or neither")
    for key, path in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)):
        if path is not None and not path.is_file():
            raise ValueError(f"{key} {path} does not exist or is not a file")


class TlsFiles(StrictModel):
    """TLS towards a target: whom to trust, which client certificate to show."""

    ca_file: Path | None = None
    """CA bundle (PEM) that signed the server certificate; the system store when absent."""
    cert_file: Path | None = None
    """Client certificate (PEM), for servers that require one; with `key_file`."""
    key_file: Path | None = None
    insecure_skip_verify: bool = False
    """Accept any server certificate (test systems only)."""

    @model_validator(mode="after")
    def _tls_files(self) -> TlsFiles:
        check_tls_files(self.ca_file, self.cert_file, self.key_file)
        return self
