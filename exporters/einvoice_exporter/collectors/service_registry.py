"""Collector of kind `service_registry`: healthy instances per micro-service in Nacos or Eureka
(item 15). A service with fewer healthy instances than its minimum is a failure (`threshold`).

APIs, as documented:

* Nacos 1.x/2.x Open API `GET /nacos/v1/ns/instance/list?serviceName=&groupName=&namespaceId=&
  healthyOnly=false` (the service object with its `hosts`), and the 2.x Open API `GET
  /nacos/v2/ns/instance/list` (the same object in `{"code": 0, "message": "success", "data": ...}`).
  One request per service. With authentication on, one `POST /nacos/v1/auth/login` per run gives the
  `accessToken` sent with each request. An instance counts as healthy when `healthy` and `enabled`.
* Eureka (Spring Cloud Netflix) `GET /eureka/apps` with `Accept: application/json`: every
  application with its instances in one request; an instance counts as healthy when its `status`
  is `UP`. Application names are compared case-insensitively (Eureka upper-cases them).

Exposition:

    einvoice_service_instances{service="intake-api",state="healthy"} 2
    einvoice_service_instances{service="intake-api",state="unhealthy"} 1
    einvoice_service_instances_min{service="intake-api"} 2
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode, urlsplit

from pydantic import Field, SecretStr, model_validator

from ..fields import StrictModel, check_tls_files, one_of_secret, resolve_secret
from ..outcome import Check, Outcome, Reason
from . import CheckError, Deadline
from .json_values import fetch_json

LABEL_MAX = 64


class Service(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=LABEL_MAX)]
    min_healthy: Annotated[int, Field(ge=0)] = 1
    group: Annotated[str, Field(min_length=1)] = "DEFAULT_GROUP"
    """Nacos group (ignored by Eureka)."""


class Settings(StrictModel):
    """Settings of a `service_registry` module. The target is the registry's base URL
    (`http://nacos:8848`, `http://eureka:8761`)."""

    api: Literal["nacos_v1", "nacos_v2", "eureka"]
    services: Annotated[list[Service], Field(min_length=1)]
    namespace: str | None = None
    """Nacos namespace id (the public namespace when absent)."""
    context_path: str | None = None
    """Path before the API (`/nacos` or `/eureka` by default)."""
    username: Annotated[str, Field(min_length=1)] | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    insecure_skip_verify: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        one_of_secret(self.password, self.password_file, "password")
        if self.username is None and (self.password is not None or self.password_file is not None):
            raise ValueError("password needs username")
        names = [(s.group, s.name.lower()) for s in self.services]
        if len(names) != len(set(names)):
            raise ValueError("each service appears once")
        check_tls_files(self.ca_file, None, None)
        return self


def validate_target(target: str) -> str:
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{target!r} is not the registry's base URL like http://nacos:8848")
    if parts.username or parts.password or parts.query:
        raise ValueError("the target is the base URL only (credentials go in username/password_file)")
    return target


class Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, target: str, timeout: float) -> Outcome:
        try:
            validate_target(target)
        except ValueError as exc:
            return Outcome().fail(Reason.ERROR, f"bad target: {exc}")
        deadline = Deadline(timeout)
        outcome = Outcome()
        try:
            counts = (self._eureka(target.rstrip("/"), deadline) if self.settings.api == "eureka"
                      else self._nacos(target.rstrip("/"), deadline))
        except CheckError as exc:
            return outcome.fail_with(exc)
        except OSError as exc:
            return outcome.fail(Reason.ERROR, f"cannot read the password file: {exc.strerror}")
        problems = []
        for service in self.settings.services:
            healthy, unhealthy = counts.get(service.name, (0, 0))
            labels = {"service": service.name}
            ms = outcome.metrics
            ms.gauge("einvoice_service_instances", "Registered instances of a service by health",
                     healthy, {**labels, "state": "healthy"})
            ms.gauge("einvoice_service_instances", "Registered instances of a service by health",
                     unhealthy, {**labels, "state": "unhealthy"})
            ms.gauge("einvoice_service_instances_min", "Healthy instances a service needs",
                     service.min_healthy, labels)
            if healthy < service.min_healthy:
                problems.append(f"service {service.name}: {healthy} healthy instance(s) of "
                                f"{healthy + unhealthy}, {service.min_healthy} needed")
        if problems:
            outcome.fail(Reason.THRESHOLD, "; ".join(problems[:3])
                         + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
        return outcome

    def _verify(self) -> bool | str:
        s = self.settings
        return False if s.insecure_skip_verify else (str(s.ca_file) if s.ca_file else True)

    def _nacos_token(self, base: str, deadline: Deadline) -> str | None:
        import requests

        s = self.settings
        if s.username is None:
            return None
        password = resolve_secret(s.password, s.password_file) or ""
        remaining = deadline.remaining("logging in to Nacos")
        try:
            with requests.Session() as session:
                session.trust_env = False
                response = session.post(f"{base}{s.context_path or '/nacos'}/v1/auth/login",
                                        data={"username": s.username, "password": password},
                                        timeout=remaining, verify=self._verify(), allow_redirects=False)
        except requests.exceptions.Timeout:
            raise CheckError(Reason.TIMEOUT, f"no answer to the login within {remaining:.1f}s") from None
        except requests.exceptions.SSLError:
            raise CheckError(Reason.TLS, "TLS failed logging in to Nacos") from None
        except requests.exceptions.RequestException:
            raise CheckError(Reason.REFUSED, "cannot connect to Nacos to log in") from None
        if response.status_code in (401, 403):
            raise CheckError(Reason.AUTH, f"HTTP {response.status_code}: Nacos refused the login")
        if response.status_code != 200:
            raise CheckError(Reason.BAD_STATUS, f"HTTP {response.status_code} logging in to Nacos")
        try:
            token = response.json().get("accessToken")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise CheckError(Reason.BAD_CONTENT, "the Nacos login answer has no accessToken")
        return token

    def _nacos(self, base: str, deadline: Deadline) -> dict[str, tuple[int, int]]:
        s = self.settings
        token = self._nacos_token(base, deadline)
        version = "v2" if s.api == "nacos_v2" else "v1"
        counts: dict[str, tuple[int, int]] = {}
        for service in s.services:
            params = {"serviceName": service.name, "groupName": service.group, "healthyOnly": "false"}
            if s.namespace:
                params["namespaceId"] = s.namespace
            if token:
                params["accessToken"] = token
            url = f"{base}{s.context_path or '/nacos'}/{version}/ns/instance/list?{urlencode(params)}"
            try:
                body = fetch_json(url, deadline, verify=self._verify(),
                                  what=f"the instances of {service.name}")
            except CheckError as exc:
                # Nacos answers an unknown service with an error (404 in 2.x, 400/500 in 1.x):
                # no instance registered, which the minimum judges.
                if exc.reason in (Reason.BAD_STATUS,):
                    counts[service.name] = (0, 0)
                    continue
                raise
            if s.api == "nacos_v2":
                if not isinstance(body, dict) or body.get("code") not in (0, None):
                    counts[service.name] = (0, 0)
                    continue
                body = body.get("data")
            hosts = body.get("hosts") if isinstance(body, dict) else None
            if not isinstance(hosts, list):
                raise CheckError(Reason.BAD_CONTENT, f"the instance list of {service.name} has no hosts")
            healthy = sum(1 for h in hosts if isinstance(h, dict) and h.get("healthy") is True
                          and h.get("enabled", True) is not False)
            counts[service.name] = (healthy, len(hosts) - healthy)
        return counts

    def _eureka(self, base: str, deadline: Deadline) -> dict[str, tuple[int, int]]:
        s = self.settings
        auth = None
        if s.username is not None:
            auth = (s.username, resolve_secret(s.password, s.password_file) or "")
        body = fetch_json(f"{base}{s.context_path or '/eureka'}/apps", deadline, auth=auth,
                          verify=self._verify(), what="the Eureka applications")
        apps = body.get("applications") if isinstance(body, dict) else None
        if not isinstance(apps, dict):
            raise CheckError(Reason.BAD_CONTENT, "the Eureka answer has no applications object")
        found: dict[str, tuple[int, int]] = {}
        for app in _list(apps.get("application")):
            instances = _list(app.get("instance"))
            healthy = sum(1 for i in instances if str(i.get("status", "")).upper() == "UP")
            found[str(app.get("name", "")).lower()] = (healthy, len(instances) - healthy)
        return {svc.name: found.get(svc.name.lower(), (0, 0)) for svc in s.services}

    def close(self) -> None:
        """Nothing pooled."""


def _list(value: Any) -> list[dict[str, Any]]:
    """Eureka's JSON writes a one-element list as the element itself."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def build(settings: Settings) -> Check:
    return Collector(settings)
