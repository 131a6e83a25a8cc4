"""Collector of kind `params`: declared parameters read from their source and compared with a
committed baseline (《参数配置报告》, issue 14), exported as drift series so that a change alerts
(`EinvoiceParameterDrift`) and the report can say what changed, when and from what to what.

One module per source and baseline section; the declared parameters are the section's keys:

    modules:
      session_redis_params:
        kind: params
        timeout: 10s
        params: {source: redis, baseline: config/baseline/params.yml, section: session_redis,
                 redis: {password_file: /etc/einvoice/redis.pw}}
      es_params:
        kind: params
        params: {source: elasticsearch, baseline: config/baseline/params.yml, section: es_cluster}
      db_params:
        kind: params
        params: {source: mysql, baseline: config/baseline/params.yml, section: intake_db,
                 mysql: {username: einvoice_monitor, password_file: /etc/einvoice/mysql.pw}}
      nginx_conf:
        kind: params
        params: {source: file, format: nginx, baseline: config/baseline/params.yml, section: nginx_conf}
      kernel:
        kind: params
        params: {source: sysctl, baseline: config/baseline/params.yml, section: kernel}
    checks:
      - {name: session-redis-params, item: "12", module: session_redis_params, target: "10.1.3.1:6379",
         interval: 5m}
      - {name: nginx-conf, item: "01", module: nginx_conf, target: /etc/nginx/nginx.conf, interval: 5m}
      - {name: kernel-params, item: "01", module: kernel, target: local, interval: 5m}

Sources and targets:
- redis: `host:port`; one `CONFIG GET name` per parameter (needs `+config|get`).
- elasticsearch: a base URL; `GET /_cluster/settings?include_defaults=true&flat_settings=true`, the
  effective value being transient, else persistent, else the default (the documented precedence).
- mysql: `host[:port]/database` as for the sql kind; one aggregate read of
  `information_schema.GLOBAL_VARIABLES` (MySQL/MariaDB), checked by the SQL checks' parser guard and
  run on the sql kind's read-only session with the server-side time limit.
- file: an absolute path on the exporter's host; `sha256` is the file's checksum, any other name a
  key of the file (`format: nginx` — a directive by name, the first one, or by its block path as
  `http.client_max_body_size`; `format: keyvalue` — `key = value` / `key value` lines, `[section]`
  prefixes, the last one wins, as in redis.conf, my.cnf, sysctl.conf).
- sysctl: target `local`; `vm.swappiness` is read from /proc/sys/vm/swappiness.

Exposition (identity labels added by the runtime omitted):

    einvoice_param_drift{param="maxmemory-policy"} 1
    einvoice_param_info{expected="allkeys-lru",param="maxmemory-policy",value="noeviction"} 1
    einvoice_param_value{param="maxmemory"} 1.073741824e+09          (numeric values only)
    einvoice_param_info{expected="(set)",param="requirepass",value="(set)"} 1
    einvoice_params_declared 6
    einvoice_params_drifted 1

Cardinality and secrets: one `einvoice_param_info` series per parameter and distinct value (a new
series only when the value changes), `value` and `expected` cut to 64 characters (a longer value keeps
its first 40 and a digest); values pass taxpayer-data redaction. A parameter whose name looks like a
secret (password, secret, token, auth, credential, private, key) is never exported: its value becomes
`(set)` or `(unset)` and the baseline must say one of those. A drift does not fail the check (reading
worked; the drift has its own alert); a source that cannot be read does, with its reason.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, StringConstraints, model_validator

from einvoice_core.redaction import redact

from ..fields import StrictModel, one_of_secret, resolve_secret
from ..outcome import Check, MetricSet, Outcome, Reason
from . import CheckError, Deadline
from . import elasticsearch as es
from ._redis_common import ConnectionSettings, RedisConnector, classify, parse_address
from ._sqlsafe import refuse_reason

Source = Literal["redis", "elasticsearch", "mysql", "file", "sysctl"]
UNSET = "(unset)"
SET = "(set)"
MAX_LABEL = 64
MAX_PARAMS = 200
MAX_FILE_BYTES = 4 * 1024 * 1024
CHECKSUM = "sha256"
ES_SETTINGS_PATH = "/_cluster/settings?include_defaults=true&flat_settings=true"
SECRET_RE = re.compile(r"pass|secret|token(?!s)|credential|auth|private|api[_.-]?key|(^|[._-])key($|[._-])",
                       re.IGNORECASE)
"""Names whose values are never exported (requirepass, masterauth, xpack...ssl.key, ssl_key)."""
_NAME_RE = {
    "redis": re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$"),
    "elasticsearch": re.compile(r"^[a-z0-9][a-z0-9_.-]{0,255}$"),
    "mysql": re.compile(r"^[a-z][a-z0-9_]{0,127}$"),
    "file": re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"),
    "sysctl": re.compile(r"^[a-z0-9_][a-z0-9_-]*(\.[a-z0-9_][a-z0-9_-]*){1,8}$"),
}
_NAME_FORM = {
    "redis": "a Redis parameter in lower case (maxmemory-policy), no glob",
    "elasticsearch": "a flat setting name (cluster.routing.allocation.enable)",
    "mysql": "a global variable in lower case (max_connections)",
    "file": "sha256 or a key (worker_processes, http.client_max_body_size, mysqld.max_connections)",
    "sysctl": "a dotted sysctl name (vm.swappiness)",
}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def looks_secret(name: str) -> bool:
    return SECRET_RE.search(name) is not None


def _scalar(value: object) -> str | None:
    """A baseline's YAML scalar as text: booleans as true/false, lists joined by commas, null unset."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(_scalar(v)) for v in value)
    if isinstance(value, int | float | str):
        return str(value).strip()
    raise ValueError(f"a {type(value).__name__} is not a parameter value (write a scalar or a list)")


def load_baseline(path: Path, section: str, source: Source) -> dict[str, str]:
    """The expected values of one section: {parameter: text}; ValueError naming what is wrong."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"baseline {path} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"baseline {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict) or section not in document:
        raise ValueError(f"baseline {path} has no section {section!r}")
    entries = document[section]
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"baseline {path}: section {section} must map parameter names to expected values")
    if len(entries) > MAX_PARAMS:
        raise ValueError(f"baseline {path}: section {section} declares {len(entries)} parameters,"
                         f" more than {MAX_PARAMS} (label cardinality); split it")
    expected: dict[str, str] = {}
    for name, raw in entries.items():
        where = f"baseline {path}: {section}.{name}"
        if not isinstance(name, str) or not _NAME_RE[source].fullmatch(name):
            raise ValueError(f"{where}: the name must be {_NAME_FORM[source]}")
        if source == "file" and name == CHECKSUM and not (isinstance(raw, str)
                                                          and re.fullmatch(r"[0-9a-f]{64}", raw)):
            raise ValueError(f"{where}: write the file's sha256 as 64 lower-case hex digits")
        try:
            text = _scalar(raw)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        value = UNSET if text is None else text
        if looks_secret(name) and value not in (SET, UNSET):
            raise ValueError(f"{where}: the name looks like a secret; the baseline says {SET} or {UNSET},"
                             " never the value")
        expected[name] = value
    return expected


class MysqlSettings(StrictModel):
    """How to log in to MySQL/MariaDB (an account that can read information_schema, nothing more)."""

    username: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: SecretStr | None = None
    password_file: Path | None = None
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    assert_read_only: bool = True
    """As in the sql kind: the check fails while the account holds any privilege that can write."""

    @model_validator(mode="after")
    def _secret(self) -> MysqlSettings:
        one_of_secret(self.password, self.password_file, "password")
        return self


class Settings(StrictModel):
    """Settings of a `params` module."""

    source: Source
    baseline: Path
    """The committed YAML of expected values (config/baseline/params.yml)."""
    section: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    """The baseline's section for this module; its keys are the declared parameters."""
    redis: ConnectionSettings | None = None
    elasticsearch: es.Settings | None = None
    mysql: MysqlSettings | None = None
    format: Literal["nginx", "keyvalue"] | None = None
    """source file: how to read the file's keys."""
    proc_sys: Path = Path("/proc/sys")
    """source sysctl: where the kernel's settings are (another root only in tests)."""
    _expected: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        for block in ("redis", "elasticsearch", "mysql"):
            if getattr(self, block) is not None and block != self.source:
                raise ValueError(f"{block} only applies when source is {block}")
        if self.source == "mysql" and self.mysql is None:
            raise ValueError("source mysql needs a mysql block with username and password or password_file")
        if (self.format is None) == (self.source == "file"):
            raise ValueError("format (nginx or keyvalue) is required for source file and only applies there")
        self._expected = load_baseline(self.baseline, self.section, self.source)
        if self.source == "mysql":
            refused = refuse_reason(mysql_query(list(self._expected)), "mysql")
            if refused is not None:  # the names are checked above; this guards the guard
                raise ValueError(f"the variables query is not read-only: it contains {refused}")
        return self

    @property
    def expected(self) -> dict[str, str]:
        return dict(self._expected)


def mysql_query(names: list[str]) -> str:
    """One aggregate read of the declared global variables (names are plain identifiers, checked)."""
    listed = ", ".join(f"'{name.upper()}'" for name in sorted(names))
    head = "SELECT LOWER(VARIABLE_NAME) AS variable_name, VARIABLE_VALUE AS variable_value"
    return f"{head} FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME IN ({listed})"


def validate_target(target: str) -> str:
    """The meaning depends on the source (host:port, URL, host/database, path, `local`): checked at run."""
    if not target.strip() or len(target) > 256 or any(c in target for c in "\r\n\t"):
        raise ValueError("write the target as host:port, a URL, host[:port]/database, a file path or local")
    return target


# --- comparing and exporting ------------------------------------------------------------------

def matches(expected: str, observed: str) -> bool:
    """Equal as text, or as numbers (100 and 100.0), or as booleans (yes/true/on/1)."""
    if expected == observed:
        return True
    left, right = expected.strip().lower(), observed.strip().lower()
    if left == right:
        return True
    try:
        a, b = float(left), float(right)
    except ValueError:
        return (left in _TRUE and right in _TRUE) or (left in _FALSE and right in _FALSE)
    return a == b


def label_text(value: str) -> str:
    """A value as a label: redacted, on one line, at most MAX_LABEL characters."""
    text = " ".join(redact(value).split())
    if len(text) <= MAX_LABEL:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{text[:40]}…(sha256 {digest})"


def observed_text(name: str, raw: str | None) -> str:
    if raw is None or (looks_secret(name) and raw == ""):
        return UNSET
    if looks_secret(name):
        return SET
    return raw


def emit(metrics: MetricSet, expected: dict[str, str], observed: dict[str, str | None]) -> int:
    """The drift series of every declared parameter; returns how many drifted."""
    drifted = 0
    for name in sorted(expected):
        value = observed_text(name, observed.get(name))
        drift = 0 if matches(expected[name], value) else 1
        drifted += drift
        labels = {"param": name}
        metrics.gauge("einvoice_param_drift", "1 when the parameter differs from its baseline", drift, labels)
        metrics.gauge("einvoice_param_info", "The parameter's observed and expected value (redacted)", 1,
                      {**labels, "value": label_text(value), "expected": label_text(expected[name])})
        if value not in (SET, UNSET):
            try:
                number = float(value)
            except ValueError:
                continue
            if math.isfinite(number):
                metrics.gauge("einvoice_param_value", "The parameter's observed value, when a number",
                              number, labels)
    metrics.gauge("einvoice_params_declared", "Parameters declared in the baseline section", len(expected))
    metrics.gauge("einvoice_params_drifted", "Declared parameters that differ from the baseline", drifted)
    return drifted


# --- reading the sources ----------------------------------------------------------------------

_NGINX_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|#[^\n]*|[{};]|[^\s{};#"\']+')


def parse_nginx(text: str) -> dict[str, str]:
    """Directive values by name (the first one) and by block path (`http.server.listen`)."""
    found: dict[str, str] = {}
    stack: list[str] = []
    words: list[str] = []
    for word in _NGINX_TOKEN.findall(text):
        if word.startswith("#"):
            continue
        if word == ";":
            if words:
                value = " ".join(words[1:])
                found.setdefault(".".join([*stack, words[0]]), value)
                found.setdefault(words[0], value)
            words = []
        elif word == "{":
            stack.append(words[0] if words else "")
            words = []
        elif word == "}":
            if stack:
                stack.pop()
            words = []
        else:
            words.append(word[1:-1] if word[:1] in "\"'" and len(word) > 1 else word)
    return found


def parse_keyvalue(text: str) -> dict[str, str]:
    """`key = value` or `key value` lines, `[section]` prefixes; `#` and `;` comments; last one wins."""
    found: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            key, _, value = stripped.partition(" ")
        key, value = key.strip(), value.strip().strip("\"'")
        if key:
            found[f"{section}.{key}" if section else key] = value
    return found


def _text(raw: Any) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    if isinstance(raw, list):
        return ",".join(_text(item) for item in raw)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


class ParamsCollector:
    """Reads the declared parameters from one source and compares them with the baseline."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.expected = settings.expected
        self.redis = RedisConnector(settings.redis or ConnectionSettings()) if settings.source == "redis" \
            else None

    def run(self, target: str, timeout: float) -> Outcome:
        deadline = Deadline(timeout)
        outcome = Outcome()
        readers = {"redis": self._redis, "elasticsearch": self._elasticsearch, "mysql": self._mysql,
                   "file": self._file, "sysctl": self._sysctl}
        try:
            observed = readers[self.settings.source](target, deadline)
        except CheckError as exc:
            return outcome.fail_with(exc)
        emit(outcome.metrics, self.expected, observed)
        return outcome

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()

    def _redis(self, target: str, deadline: Deadline) -> dict[str, str | None]:
        from redis.exceptions import NoPermissionError, RedisError, ResponseError

        assert self.redis is not None
        try:
            host, port = parse_address(target)
        except ValueError as exc:
            raise CheckError(Reason.ERROR, f"bad target: {exc}") from None
        try:
            password = self.redis.credentials.resolve()
        except OSError as exc:
            raise CheckError(Reason.ERROR, f"password_file unreadable: {exc.strerror}") from None
        names = sorted(self.expected)
        try:
            replies = self.redis.exchange(host, port, deadline, password,
                                          [("CONFIG", "GET", name) for name in names])
        except (RedisError, OSError) as exc:
            raise classify(exc) from None
        observed: dict[str, str | None] = {}
        for name, reply in zip(names, replies, strict=True):
            if isinstance(reply, NoPermissionError):
                raise CheckError(Reason.AUTH, "CONFIG GET is not permitted (grant +config|get)")
            if isinstance(reply, ResponseError):
                raise CheckError(Reason.BAD_CONTENT, f"CONFIG GET {name} answered an error")
            pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2], strict=False)
            values = {_text(k): _text(v) for k, v in pairs}
            observed[name] = values.get(name)
        return observed

    def _elasticsearch(self, target: str, deadline: Deadline) -> dict[str, str | None]:
        try:
            urls = es.split_urls(target)
        except ValueError as exc:
            raise CheckError(Reason.ERROR, f"bad target: {exc}") from None
        client = es.Collector(self.settings.elasticsearch or es.Settings())
        try:
            request = client._request()
        except OSError as exc:
            raise CheckError(Reason.ERROR, f"cannot read a secret file: {exc.strerror}") from None
        body: dict[str, Any] | None = None
        error = CheckError(Reason.ERROR, "no URL to ask")
        for url in urls:
            try:
                body = client._get(url, ES_SETTINGS_PATH, request, deadline)
                break
            except CheckError as exc:
                error = exc
                if deadline.expired():
                    break
        if body is None:
            raise error
        effective: dict[str, Any] = {}
        for scope in ("defaults", "persistent", "transient"):  # later ones win
            part = body.get(scope, {})
            if not isinstance(part, dict):
                raise CheckError(Reason.BAD_CONTENT, f"_cluster/settings: {scope} is not an object"
                                 " (is flat_settings honoured?)")
            effective.update(part)
        return {name: (None if effective.get(name) is None else _text(effective[name]))
                for name in self.expected}

    def _mysql(self, target: str, deadline: Deadline) -> dict[str, str | None]:
        from . import sql

        login = self.settings.mysql
        assert login is not None  # the model requires it for source mysql
        try:
            sql.parse_target(target)
        except ValueError as exc:
            raise CheckError(Reason.ERROR, f"bad target: {exc}") from None
        query = sql.Query(name="params", sql=mysql_query(list(self.expected)), values=["variable_value"],
                          labels=["variable_name"], max_rows=MAX_PARAMS)
        driver = sql._MySQL(sql.Settings(driver="mysql", username=login.username, password=login.password,
                                         password_file=login.password_file,
                                         connect_timeout=login.connect_timeout, queries=[query]))
        try:
            password = resolve_secret(login.password, login.password_file)
        except OSError as exc:
            raise CheckError(Reason.ERROR, f"password_file unreadable: {exc.strerror}") from None
        try:
            conn = driver.connect(target, password,
                                  min(login.connect_timeout, deadline.remaining("connecting")))
            try:
                if login.assert_read_only:
                    deadline.phase("listing the account's privileges")
                    writes = driver.write_privileges(conn)
                    if writes:
                        raise CheckError(Reason.STATE, "the monitoring account can write ("
                                         + ", ".join(writes[:5]) + "); grant it nothing but USAGE")
                remaining = deadline.remaining("reading the global variables")
                _, rows = driver.run(conn, query, time.monotonic() + remaining)
            finally:
                driver.close(conn)
        except sql.DriverError as exc:
            raise CheckError(exc.reason, exc.detail) from None
        values = {_text(name).lower(): (None if value is None else _text(value)) for name, value in rows}
        return {name: values.get(name) for name in self.expected}

    def _file(self, target: str, deadline: Deadline) -> dict[str, str | None]:
        path = Path(target)
        if not path.is_absolute():
            raise CheckError(Reason.ERROR, "the target of a file source is an absolute path")
        deadline.remaining("reading the file")
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise CheckError(Reason.ERROR, f"cannot read {path}: {exc.strerror}") from None
        if len(data) > MAX_FILE_BYTES:
            raise CheckError(Reason.BAD_CONTENT, f"{path} is larger than {MAX_FILE_BYTES} bytes")
        text = data.decode("utf-8", "replace")
        keys = parse_nginx(text) if self.settings.format == "nginx" else parse_keyvalue(text)
        keys[CHECKSUM] = hashlib.sha256(data).hexdigest()
        return {name: keys.get(name) for name in self.expected}

    def _sysctl(self, target: str, deadline: Deadline) -> dict[str, str | None]:
        if target != "local":
            raise CheckError(Reason.ERROR, "the target of a sysctl source is `local` (the exporter's host)")
        deadline.remaining("reading /proc/sys")
        observed: dict[str, str | None] = {}
        for name in self.expected:
            path = self.settings.proc_sys.joinpath(*name.split("."))
            try:
                observed[name] = " ".join(path.read_text(encoding="utf-8", errors="replace").split())
            except FileNotFoundError:
                observed[name] = None
            except OSError as exc:
                raise CheckError(Reason.ERROR, f"cannot read {name}: {exc.strerror}") from None
        return observed


def build(settings: Settings) -> Check:
    return ParamsCollector(settings)
