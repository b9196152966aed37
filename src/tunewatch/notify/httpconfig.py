"""Alertmanager's ``http_config`` (Prometheus' common HTTP client settings) and the httpx client built from it.

Supported: ``authorization`` (``type``, ``credentials``/``credentials_file``), ``basic_auth``
(``username``/``username_file``, ``password``/``password_file``), ``bearer_token``/``bearer_token_file``,
``tls_config`` (``ca_file``/``ca``, ``cert_file``/``cert`` + ``key_file``/``key``, ``server_name``,
``insecure_skip_verify``, ``min_version``, ``max_version``), ``proxy_url``, ``no_proxy``,
``proxy_from_environment``, ``proxy_connect_header``, ``follow_redirects``, ``enable_http2`` and
``http_headers``. ``oauth2`` is refused with a clear error: silently sending unauthenticated pages would be
worse than not starting.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def read_secret_file(field: str, path: Path) -> SecretStr:
    """A secret read from ``path`` (trailing whitespace stripped); ``ValueError`` naming ``field`` when unreadable."""
    try:
        return SecretStr(Path(path).read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ValueError(f"{field}: cannot read {path}: {exc.strerror}") from exc


class TLSConfig(_Model):
    """``tls_config``: CA, client certificate, server name and verification."""

    ca_file: Path | None = None
    ca: str | None = None
    cert_file: Path | None = None
    cert: str | None = None
    key_file: Path | None = None
    key: SecretStr | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] | None = None
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] | None = None
    ca_ref: str | None = None  #: secret-manager references: refused (tunewatch has no secret manager)
    cert_ref: str | None = None
    key_ref: str | None = None

    @model_validator(mode="after")
    def _check(self) -> TLSConfig:
        for ref in ("ca_ref", "cert_ref", "key_ref"):
            if getattr(self, ref) is not None:
                raise ValueError(f"{ref} is not supported by tunewatch; use {ref[:-4]}_file")
        for a, b in (("ca", "ca_file"), ("cert", "cert_file"), ("key", "key_file")):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                raise ValueError(f"give either {a} or {b}, not both")
        has_cert = self.cert is not None or self.cert_file is not None
        has_key = self.key is not None or self.key_file is not None
        if has_cert != has_key:
            raise ValueError("a client certificate needs both cert(_file) and key(_file)")
        return self

    def context(self) -> ssl.SSLContext:
        """The SSL context these settings describe."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None,
                                         cadata=self.ca if self.ca else None)  # fmt: skip
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        versions = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
                    "TLS13": ssl.TLSVersion.TLSv1_3}  # fmt: skip
        if self.min_version:
            ctx.minimum_version = versions[self.min_version]
        if self.max_version:
            ctx.maximum_version = versions[self.max_version]
        if self.cert_file is not None or self.cert is not None:
            self._load_client_cert(ctx)
        return ctx

    def _load_client_cert(self, ctx: ssl.SSLContext) -> None:
        if self.cert_file is not None and self.key_file is not None:
            ctx.load_cert_chain(self.cert_file, self.key_file)
            return
        # inline PEM: ssl only loads from files, so write them to private temporary files for the load
        with tempfile.TemporaryDirectory() as tmp:
            cert = Path(tmp, "cert.pem")
            key = Path(tmp, "key.pem")
            cert.write_text(self.cert or Path(str(self.cert_file)).read_text(encoding="utf-8"), encoding="utf-8")
            key_text = self.key.get_secret_value() if self.key else Path(str(self.key_file)).read_text("utf-8")
            key.touch(mode=0o600)
            key.write_text(key_text, encoding="utf-8")
            ctx.load_cert_chain(cert, key)


class Authorization(_Model):
    """``authorization``: an ``Authorization: <type> <credentials>`` header."""

    type: str = "Bearer"
    credentials: SecretStr | None = None
    credentials_file: Path | None = None


class BasicAuth(_Model):
    """``basic_auth``."""

    username: str | None = None
    username_file: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None


class HTTPConfig(_Model):
    """``http_config`` of a receiver (or ``global.http_config``, the default for every receiver)."""

    authorization: Authorization | None = None
    basic_auth: BasicAuth | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    oauth2: dict[str, Any] | None = None
    tls_config: TLSConfig = TLSConfig()
    proxy_url: str | None = None
    no_proxy: str | None = None
    proxy_from_environment: bool = False
    proxy_connect_header: dict[str, list[SecretStr]] = Field(default_factory=dict)
    follow_redirects: bool = True
    enable_http2: bool = True
    http_headers: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> HTTPConfig:
        given = [n for n in ("authorization", "basic_auth", "bearer_token", "bearer_token_file")
                 if getattr(self, n) is not None]  # fmt: skip
        if len(given) > 1 and not (set(given) <= {"bearer_token", "bearer_token_file"}):
            raise ValueError(f"at most one of authorization, basic_auth, bearer_token may be set (got {given})")
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError("give either bearer_token or bearer_token_file, not both")
        if self.oauth2 is not None:
            raise ValueError("oauth2 is not supported by tunewatch; use authorization with a token instead")
        if self.proxy_url and self.proxy_from_environment:
            raise ValueError("give either proxy_url or proxy_from_environment, not both")
        return self

    def auth_header(self) -> str | None:
        """The ``Authorization`` header value, if any (read from files now, so rotations are picked up)."""
        if self.authorization is not None:
            a = self.authorization
            cred = a.credentials or (read_secret_file("credentials_file", a.credentials_file)
                                     if a.credentials_file else None)  # fmt: skip
            return f"{a.type} {cred.get_secret_value()}" if cred is not None else None
        token = self.bearer_token or (read_secret_file("bearer_token_file", self.bearer_token_file)
                                      if self.bearer_token_file else None)  # fmt: skip
        if token is not None:
            return f"Bearer {token.get_secret_value()}"
        return None

    def basic(self) -> tuple[str, str] | None:
        """``(username, password)`` for basic auth, if configured."""
        b = self.basic_auth
        if b is None:
            return None
        user = b.username or (read_secret_file("username_file", b.username_file).get_secret_value()
                              if b.username_file else "")  # fmt: skip
        pw = b.password or (read_secret_file("password_file", b.password_file) if b.password_file else None)
        return user, pw.get_secret_value() if pw is not None else ""

    def secrets(self) -> list[str]:
        """Secret values to redact from messages."""
        out = []
        header = self.auth_header()
        if header:
            out.append(header.split(" ", 1)[-1])
        basic = self.basic()
        if basic and basic[1]:
            out.append(basic[1])
        return out

    def headers(self) -> dict[str, str]:
        """Fixed request headers: ``http_headers`` (``values``/``secrets`` forms) and the ``Authorization`` one."""
        out: dict[str, str] = {}
        for name, spec in self.http_headers.items():
            values = spec.get("values") or spec.get("secrets") or [] if isinstance(spec, dict) else [spec]
            if values:
                out[name] = str(values[0])
        auth = self.auth_header()
        if auth:
            out["Authorization"] = auth
        return out


def http_client(config: HTTPConfig | None, timeout_s: float) -> httpx.Client:
    """An httpx client honouring ``config`` (``None``: defaults, certificate verification on)."""
    cfg = config or HTTPConfig()
    verify = cfg.tls_config.context()
    mounts: dict[str, httpx.BaseTransport | None] | None = None
    if cfg.proxy_url:
        headers = {k: v[0].get_secret_value() for k, v in cfg.proxy_connect_header.items() if v}
        proxy = httpx.Proxy(cfg.proxy_url, headers=headers or None)
        mounts = {"all://": httpx.HTTPTransport(proxy=proxy, verify=verify)}
        for host in (cfg.no_proxy or "").split(","):
            if host.strip():
                mounts[f"all://{host.strip()}"] = httpx.HTTPTransport(verify=verify)
    basic = cfg.basic()
    return httpx.Client(
        timeout=timeout_s,
        headers={"User-Agent": "tunewatch", **cfg.headers()},
        auth=httpx.BasicAuth(*basic) if basic else None,
        verify=verify,
        mounts=mounts,
        trust_env=cfg.proxy_from_environment,
        follow_redirects=cfg.follow_redirects,
    )
