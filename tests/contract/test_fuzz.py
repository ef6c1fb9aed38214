"""The API against its own contract: schemathesis generates requests from /openapi.json,
valid and invalid, and sends them to the running API with real Postgres and Redis behind
it. No answer may be a server error or fall outside the document (status code, content
type, headers, body schema), and no endpoint that needs a key may answer without one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from notifier.settings import Settings
from notifier.tooling.stack import LocalStack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "ignored_auth",
    )
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The fuzzer is one very busy client: no rate limit may answer for the API.
    return settings.replace(
        key_requests_per_minute=0, verify_per_minute=1_000_000, email_webhook_secret="fuzz"
    )


async def test_fuzzed_requests_get_answers_the_document_allows(
    stack: LocalStack, admin_key: str, tmp_path: Path
) -> None:
    command = Path(sys.executable).with_name("schemathesis")
    proc = await asyncio.create_subprocess_exec(
        str(command),
        "run",
        f"{stack.api_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {admin_key}",
        "--checks",
        CHECKS,
        "--max-examples",
        "100",
        "--seed",
        "20261130",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-20_000:]
