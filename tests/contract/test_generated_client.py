"""Integrators generate clients from /openapi.json: a client generated from the served
document must import, and create and read a campaign against the running API."""

from __future__ import annotations

import asyncio
import importlib
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from notifier.tooling.stack import LocalStack
from tests import factories

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PACKAGE = "notifier_generated_client"
# No formatter runs over the generated code: what integrators get without one must work.
CONFIG = "post_hooks: []\n"


async def _generate(stack: LocalStack, where: Path) -> None:
    async with aiohttp.ClientSession(stack.api_url) as http, http.get("/openapi.json") as resp:
        assert resp.status == 200
        (where / "openapi.json").write_bytes(await resp.read())
    (where / "config.yaml").write_text(CONFIG)
    command = Path(sys.executable).with_name("openapi-python-client")
    proc = await asyncio.create_subprocess_exec(
        str(command),
        "generate",
        "--path",
        str(where / "openapi.json"),
        "--config",
        str(where / "config.yaml"),
        "--meta",
        "none",
        "--output-path",
        str(where / PACKAGE),
        cwd=where,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")


async def test_a_generated_client_creates_and_reads_a_campaign(
    stack: LocalStack, admin_key: str, tmp_path: Path
) -> None:
    await _generate(stack, tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module(PACKAGE)
        models = importlib.import_module(f"{PACKAGE}.models")
        create = importlib.import_module(f"{PACKAGE}.api.default.post_v1_campaigns")
        read = importlib.import_module(f"{PACKAGE}.api.default.get_v1_campaigns_id")
    finally:
        sys.path.remove(str(tmp_path))

    client = client_module.AuthenticatedClient(base_url=stack.api_url, token=admin_key)
    async with client:
        created = await create.asyncio(
            client=client, body=models.CampaignCreate.from_dict(factories.campaign())
        )
        assert isinstance(created, models.Campaign), created
        assert created.state == models.CampaignState.DRAFT
        assert isinstance(created.id, uuid.UUID)
        got = await read.asyncio(created.id, client=client)
        assert isinstance(got, models.Campaign), got
        assert got.name == factories.CAMPAIGN["name"]
        assert got.counts["email"]["pending"] == 0

        invalid = factories.campaign(rate_limit_per_second=0)
        refused = await create.asyncio(client=client, body=models.CampaignCreate.from_dict(invalid))
        assert isinstance(refused, models.Problem), refused
        assert refused.status == 422
        assert [e.field for e in refused.errors] == ["rate_limit_per_second"]
