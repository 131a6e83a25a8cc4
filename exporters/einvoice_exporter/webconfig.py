"""TLS and basic auth from a Prometheus exporter-toolkit `web-config.yml`.

The same file format as node_exporter and blackbox_exporter, so operators reuse what they know.
Keys the toolkit has but this exporter cannot honour with Python's ssl module are refused with a
sentence rather than silently ignored.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import ssl
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator, model_validator

from .config import ConfigError, format_path
from .fields import StrictModel

log = logging.getLogger("einvoice_exporter.webconfig")

ClientAuthType = Literal["NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                         "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
TlsVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

_TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3,
}
_UNSUPPORTED = {
    "cipher_suites": "Python's ssl module uses OpenSSL's cipher names, not Go's; remove it to use the "
                     "secure defaults",
    "curve_preferences": "not supported by this exporter; remove it to use OpenSSL's defaults",
    "rate_limit": "not supported by this exporter; put a reverse proxy in front to rate-limit",
}


def _bcrypt_hash(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if not text.startswith(("$2a$", "$2b$", "$2y$")) or len(text) != 60:
        raise ValueError("must be a bcrypt hash (60 characters starting with $2a$, $2b$ or $2y$), "
                         "for example from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`")
    return value


BcryptHash = Annotated[SecretStr, AfterValidator(_bcrypt_hash)]


class TlsServerConfig(StrictModel):
    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = None
    key: SecretStr | None = None
    client_ca_file: Path | None = None
    client_ca: str | None = None
    client_auth_type: ClientAuthType = "NoClientCert"
    client_allowed_sans: list[str] = Field(default_factory=list)
    min_version: TlsVersionName = "TLS12"
    max_version: TlsVersionName = "TLS13"
    prefer_server_cipher_suites: bool = True

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key, why in _UNSUPPORTED.items():
                if key in data and key != "rate_limit":
                    raise ValueError(f"{key}: {why}")
        return data

    @model_validator(mode="after")
    def _coherent(self) -> TlsServerConfig:
        if (self.cert_file is None) == (self.cert is None):
            raise ValueError("set exactly one of cert_file or cert")
        if (self.key_file is None) == (self.key is None):
            raise ValueError("set exactly one of key_file or key")
        if self.client_ca_file is not None and self.client_ca is not None:
            raise ValueError("set either client_ca_file or client_ca, not both")
        has_ca = self.client_ca_file is not None or self.client_ca is not None
        if self.client_auth_type != "NoClientCert" and not has_ca:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file: Python's ssl "
                             "module verifies every client certificate it receives against it")
        if has_ca and self.client_auth_type == "NoClientCert":
            raise ValueError("client_ca_file is set but client_auth_type is NoClientCert; set "
                             "client_auth_type to RequireAndVerifyClientCert to use it")
        if self.client_allowed_sans and self.client_auth_type not in (
                "RequireAnyClientCert", "RequireAndVerifyClientCert"):
            raise ValueError("client_allowed_sans needs client_auth_type RequireAndVerifyClientCert "
                             "(or RequireAnyClientCert)")
        if _TLS_VERSIONS[self.min_version] > _TLS_VERSIONS[self.max_version]:
            raise ValueError(f"min_version {self.min_version} is above max_version {self.max_version}")
        return self


class HttpServerConfig(StrictModel):
    http2: bool = True
    """Accepted for compatibility; this server speaks HTTP/1.1 only."""
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _known_headers(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = {"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
                   "X-XSS-Protection", "Strict-Transport-Security"}
        for name, text in value.items():
            if name not in allowed:
                raise ValueError(f"header {name!r} cannot be set; allowed: {', '.join(sorted(allowed))}")
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {name}: the value cannot contain line breaks")
        return value


class WebConfig(StrictModel):
    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, BcryptHash] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _refuse_rate_limit(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "rate_limit" in data:
            raise ValueError(f"rate_limit: {_UNSUPPORTED['rate_limit']}")
        return data

    @field_validator("basic_auth_users")
    @classmethod
    def _plain_users(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for user in value:
            if not user or ":" in user:
                raise ValueError(f"user name {user!r} must be non-empty and contain no colon")
        return value


def _resolve(base: Path, path: Path | None) -> Path | None:
    """Relative paths are relative to the web-config file, as in exporter-toolkit."""
    if path is None:
        return None
    return path if path.is_absolute() else base / path


def load_web_config(path: Path) -> WebConfig:
    """Read and validate a web-config file; raise ConfigError with one line per problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror or exc}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: YAML syntax error: {exc.problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            where = format_path(error["loc"], data)
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            lines.append(f"{path}: {where}: {message}" if where else f"{path}: {message}")
        raise ConfigError(lines) from None
    tls = config.tls_server_config
    if tls is not None:
        base = path.parent
        tls = tls.model_copy(update={
            "cert_file": _resolve(base, tls.cert_file), "key_file": _resolve(base, tls.key_file),
            "client_ca_file": _resolve(base, tls.client_ca_file)})
        config = config.model_copy(update={"tls_server_config": tls})
        try:
            build_ssl_context(tls)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError([f"{path}: tls_server_config: {exc}"]) from None
    return config


def build_ssl_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """A server context from the config.

    Python cannot request a client certificate without verifying it, so RequestClientCert acts as
    VerifyClientCertIfGiven and RequireAnyClientCert as RequireAndVerifyClientCert (stricter).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_cert_chain(context, tls)
    if tls.client_auth_type == "NoClientCert":
        context.verify_mode = ssl.CERT_NONE
    else:
        if tls.client_ca_file is not None:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        elif tls.client_ca is not None:
            context.load_verify_locations(cadata=tls.client_ca)
        optional = tls.client_auth_type in ("RequestClientCert", "VerifyClientCertIfGiven")
        context.verify_mode = ssl.CERT_OPTIONAL if optional else ssl.CERT_REQUIRED
    return context


def _load_cert_chain(context: ssl.SSLContext, tls: TlsServerConfig) -> None:
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        return
    # Inline PEM: ssl only loads chains from files, so write them to a private temporary directory.
    cert_text = tls.cert if tls.cert is not None else (tls.cert_file or Path()).read_text()
    key_text = tls.key.get_secret_value() if tls.key is not None else (tls.key_file or Path()).read_text()
    with tempfile.TemporaryDirectory(prefix="einvoice-webcfg-") as tmp:
        cert_path = Path(tmp) / "cert.pem"
        key_path = Path(tmp) / "key.pem"
        cert_path.write_text(cert_text)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key_text)
        context.load_cert_chain(str(cert_path), str(key_path))


def allowed_san(peer_cert: Mapping[str, Any] | None, allowed: list[str]) -> bool:
    """Whether the verified client certificate carries one of the allowed SANs (exact match)."""
    if not allowed:
        return True
    if not peer_cert:
        return False
    wanted = set(allowed)
    for entry in allowed:
        with contextlib.suppress(ValueError):
            wanted.add(str(ipaddress.ip_address(entry)))
    for _kind, value in peer_cert.get("subjectAltName", ()):
        candidates = {value}
        with contextlib.suppress(ValueError):
            candidates.add(str(ipaddress.ip_address(value.strip())))
        if candidates & wanted:
            return True
    return False


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes, caching verdicts.

    bcrypt is slow on purpose (~70 ms at cost 10); without a cache every scrape would pay it, as
    exporter-toolkit notes. The cache is keyed by an HMAC of user and password under a per-process
    random key, so the passwords themselves are never kept. Unknown users still cost one bcrypt
    comparison, so response time does not reveal which user names exist.
    """

    CACHE_SIZE = 1024

    def __init__(self, users: Mapping[str, SecretStr]) -> None:
        import bcrypt

        self._users = {user: secret.get_secret_value().encode() for user, secret in users.items()}
        cost = max((int(hashed[4:6]) for hashed in self._users.values()), default=4)
        self._dummy = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(min(max(cost, 4), 31)))
        self._key = os.urandom(32)
        self._cache: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        """Cache statistics: a miss costs one bcrypt comparison."""

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def check_header(self, header: str | None) -> str | None:
        """The authenticated user name, or None."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        return user if self.verify(user, password) else None

    def verify(self, user: str, password: str) -> bool:
        import bcrypt

        hashed = self._users.get(user)
        key = hmac.new(self._key, b"%s\0%s\0%s" % (user.encode(), password.encode(), hashed or b""),
                       hashlib.sha256).digest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return cached
            self.misses += 1
        try:
            ok = bcrypt.checkpw(password.encode(), hashed or self._dummy) and hashed is not None
        except ValueError:
            ok = False
        with self._lock:
            self._cache[key] = ok
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return ok
