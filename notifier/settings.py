"""The one place that reads the environment: every setting as one frozen object."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

SmtpTls = Literal["none", "starttls", "tls"]

TWILIO_DEFAULT_BASE_URL = "https://api.twilio.com"


class SettingsError(ValueError):
    """A setting in the environment has a value that cannot be used."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every tunable of the service; see the README's configuration table."""

    database_url: str | None = None
    redis_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_drain_seconds: float = 300.0
    upload_idle_seconds: float = 60.0
    public_base_url: str = "http://127.0.0.1:8080"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_tls: SmtpTls = "none"
    smtp_pool_size: int = 8
    smtp_timeout: float = 30.0
    email_from: str = "security-notice@example.com"

    twilio_account_sid: str = "AC" + "0" * 32
    twilio_auth_token: str = "sandbox-auth-token"
    twilio_from: str | None = "+15005550006"
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: str = TWILIO_DEFAULT_BASE_URL
    twilio_concurrency: int = 32
    twilio_timeout: float = 30.0

    email_rate: float = 100.0
    sms_rate: float = 50.0

    batch_size: int = 500
    chains_per_channel: int = 4
    lease_seconds: int = 60
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    reconcile_seconds: int = 2
    worker_dead_seconds: float = 3.0
    receipt_grace_seconds: float = 600.0
    worker_max_jobs: int = 8

    verify_per_minute: int = 30
    key_requests_per_minute: int = 1200
    link_domains: str = ""
    email_webhook_secret: str | None = None
    data_keys: str | None = None
    lookup_key: str | None = None

    data_dir: Path = Path(".notifier")
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `NOTIFIER_*` variables; unset ones keep their defaults."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            raw = env.get("NOTIFIER_" + field.name.upper())
            if raw is None or raw == "":
                continue
            values[field.name] = _parse(field.name, str(field.type), raw)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse combinations that cannot work, naming the variable."""
        if self.smtp_tls not in ("none", "starttls", "tls"):
            raise SettingsError("NOTIFIER_SMTP_TLS must be one of none, starttls, tls")
        if self.email_rate <= 0 or self.sms_rate <= 0:
            raise SettingsError("NOTIFIER_EMAIL_RATE and NOTIFIER_SMS_RATE must be positive")
        if not (self.twilio_from or self.twilio_messaging_service_sid):
            raise SettingsError("set NOTIFIER_TWILIO_FROM or NOTIFIER_TWILIO_MESSAGING_SERVICE_SID")
        if self.batch_size < 1 or self.chains_per_channel < 1:
            raise SettingsError("NOTIFIER_BATCH_SIZE and NOTIFIER_CHAINS_PER_CHANNEL must be >= 1")
        if not 1.0 <= self.worker_dead_seconds < self.lease_seconds:
            raise SettingsError(
                "NOTIFIER_WORKER_DEAD_SECONDS must be at least 1 and less than "
                "NOTIFIER_LEASE_SECONDS"
            )

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and the demo build settings this way)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def allowed_link_domains(self) -> frozenset[str]:
        """The domains a template may name: the service's own public host, and those listed
        (comma-separated) in NOTIFIER_LINK_DOMAINS."""
        host = urlsplit(self.public_base_url).hostname
        listed = (d.strip().lower().rstrip(".") for d in self.link_domains.split(","))
        return frozenset(d for d in (host, *listed) if d)

    def rate_for(self, channel: str) -> float:
        """The provider-wide rate, in messages per second, for a channel."""
        return self.email_rate if channel == "email" else self.sms_rate


def _parse(name: str, type_name: str, raw: str) -> object:
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "Path":
            return Path(raw)
    except ValueError as exc:
        raise SettingsError(f"NOTIFIER_{name.upper()}: {exc}") from None
    return raw
