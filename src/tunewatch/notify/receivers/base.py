"""What every receiver integration shares: the interface, the error type and secret redaction."""

from __future__ import annotations

import json
import math
import ssl
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import httpx

from tunewatch.errors import TunewatchError
from tunewatch.notify.httpconfig import HTTPConfig, http_client
from tunewatch.notify.outbox import Notification
from tunewatch.notify.templates import FieldTemplates, NotificationData, notification_data


class DeliveryError(TunewatchError):
    """A delivery attempt failed. ``retryable`` is false for errors a retry cannot fix (e.g. HTTP 400)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def http_status_retryable(status: int) -> bool:
    """5xx, 408 and 429 are worth retrying; other 4xx are not."""
    return status >= 500 or status in (408, 429)


class Integration(ABC):
    """One configured integration of a receiver (e.g. the first of its ``webhook_configs``).

    Subclasses implement :meth:`send`; they must raise :class:`DeliveryError` on failure and may only put
    redacted text (see :meth:`redact`) into error messages.
    """

    kind: ClassVar[str]

    def __init__(self, receiver: str, *, send_resolved: bool, timeout_s: float, secrets: Iterable[str] = ()) -> None:
        self.receiver = receiver
        self.send_resolved = send_resolved
        self.timeout_s = timeout_s
        self._secrets = [s for s in secrets if s]

    @abstractmethod
    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """Deliver ``alerts`` (the notification's alerts this integration sends) or raise :class:`DeliveryError`."""

    def redact(self, text: str) -> str:
        """``text`` with every configured secret replaced by ``<secret>``."""
        for secret in self._secrets:
            text = text.replace(secret, "<secret>")
        return text

    def fail(self, what: str, exc: BaseException | None = None, *, retryable: bool = True) -> DeliveryError:
        """A :class:`DeliveryError` whose message carries no secret."""
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        message = self.redact(f"{self.kind} to receiver {self.receiver!r} {what}{detail}")
        return DeliveryError(message, retryable=retryable)

    def post_json(
        self, client: httpx.Client, url: str, payload: Any, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST ``payload`` as JSON; a timeout, network error or non-2xx answer raises :class:`DeliveryError`
        (5xx/408/429 and network errors retryable), with no secret in its message. NaN and infinities (an
        explanation's expected value and band before a detector has warmed up) are sent as ``null``: they are
        not JSON, and refusing to encode them would retry the notification forever."""
        body = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False).encode()
        try:
            resp = client.post(url, content=body, headers={"Content-Type": "application/json", **(headers or {})})
        except httpx.TimeoutException as exc:
            raise self.fail(f"timed out after {self.timeout_s:g}s", exc) from None
        except httpx.HTTPError as exc:  # a certificate a retry cannot fix is a permanent failure
            untrusted = _caused_by(exc, ssl.SSLCertVerificationError)
            what = "TLS certificate rejected" if untrusted else "failed"
            raise self.fail(what, exc, retryable=not untrusted) from None
        if not resp.is_success:
            raise self.fail(f"got HTTP {resp.status_code}", retryable=http_status_retryable(resp.status_code))
        return resp

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (optional)."""


class HttpIntegration(Integration):
    """An integration that talks HTTP through a client built from its ``http_config``."""

    def __init__(self, receiver: str, *, send_resolved: bool, timeout_s: float, http_config: HTTPConfig | None,
                 secrets: Iterable[str] = ()) -> None:  # fmt: skip
        extra = http_config.secrets() if http_config is not None else []
        super().__init__(receiver, send_resolved=send_resolved, timeout_s=timeout_s, secrets=[*secrets, *extra])
        self.client = http_client(http_config, timeout_s)

    def post(self, url: str, payload: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST JSON through this integration's client (see :meth:`Integration.post_json`)."""
        return self.post_json(self.client, url, payload, headers)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.client.close()


class TemplatedIntegration(HttpIntegration):
    """An HTTP integration whose message is rendered from templated fields (PagerDuty, Opsgenie, Teams, ...).

    Subclasses implement :meth:`body`; :meth:`send` POSTs it to :attr:`url`.
    """

    def __init__(self, receiver: str, *, url: str, send_resolved: bool, timeout_s: float, fields: FieldTemplates,
                 external_url: str, http_config: HTTPConfig | None, secrets: Iterable[str] = ()) -> None:  # fmt: skip
        super().__init__(receiver, send_resolved=send_resolved, timeout_s=timeout_s, http_config=http_config,
                         secrets=[url, *secrets])  # fmt: skip
        self.url, self.fields, self.external_url = url, fields, external_url

    def data(self, notification: Notification, alerts: list[dict[str, Any]]) -> NotificationData:
        """The template data of this notification."""
        return notification_data(notification, alerts, self.external_url)

    @abstractmethod
    def body(self, notification: Notification, alerts: list[dict[str, Any]]) -> dict[str, Any]:
        """The JSON body to POST."""

    def send(self, notification: Notification, alerts: list[dict[str, Any]]) -> None:
        """POST :meth:`body`; 2xx is success, 5xx/408/429 and network errors are retryable."""
        self.post(self.url, self.body(notification, alerts))


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (as Alertmanager cuts fields services limit)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is in the chain of causes of ``exc``."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (dicts and lists copied, others kept)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
