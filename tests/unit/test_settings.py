"""Settings: read from NOTIFIER_* variables, refused when unusable, every one documented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from notifier.settings import Settings, SettingsError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_values_come_from_notifier_variables() -> None:
    settings = Settings.from_env(
        {
            "NOTIFIER_API_PORT": "9090",
            "NOTIFIER_EMAIL_RATE": "12.5",
            "NOTIFIER_SMTP_TLS": "tls",
            "NOTIFIER_DATA_DIR": "/srv/x",
            "OTHER": "ignored",
        }
    )
    assert settings.api_port == 9090
    assert settings.email_rate == 12.5
    assert settings.smtp_tls == "tls"
    assert settings.data_dir == Path("/srv/x")
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"NOTIFIER_API_PORT": "eighty"}, "NOTIFIER_API_PORT"),
        ({"NOTIFIER_SMTP_TLS": "ssl"}, "NOTIFIER_SMTP_TLS"),
        ({"NOTIFIER_SMS_RATE": "0"}, "NOTIFIER_SMS_RATE"),
        ({"NOTIFIER_TWILIO_FROM": ""}, None),
    ],
)
def test_unusable_values_are_refused_naming_the_variable(
    env: dict[str, str], names: str | None
) -> None:
    if names is None:  # an empty value keeps the default, which is usable
        Settings.from_env(env)
        return
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [
        f"NOTIFIER_{f.name.upper()}"
        for f in dataclasses.fields(Settings)
        if f"NOTIFIER_{f.name.upper()}" not in text
    ]
    assert missing == []
