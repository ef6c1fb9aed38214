"""The real providers against the sandbox: the same clients, protocols and faults as in use."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from notifier.models import Channel
from notifier.providers import Outcome, OutgoingEmail, OutgoingSms
from notifier.providers.smtp import SmtpProvider
from notifier.providers.twilio import TwilioProvider
from notifier.providers.twilio import classify as classify_twilio
from notifier.settings import Settings
from notifier.tooling.sandbox import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, Sandbox

SMS_TEXT = "[Example] Your account data was exposed. Details: https://example.com/notice"


def email(delivery_id: int, to: str, body: str = "Your account data was exposed.") -> OutgoingEmail:
    data = (
        "From: Security <security-notice@example.com>\r\n"
        f"To: {to}\r\n"
        "Subject: Security notice\r\n"
        f"Message-ID: <notice-{delivery_id}@example.net>\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()
    return OutgoingEmail(delivery_id=delivery_id, to=to, data=data)


def sms(delivery_id: int, to: str, callback: str = "") -> OutgoingSms:
    return OutgoingSms(delivery_id=delivery_id, to=to, body=SMS_TEXT, status_callback=callback)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(callback_delay=0.01) as running:
        yield running


@pytest.fixture
def settings(sandbox: Sandbox) -> Settings:
    return Settings(
        smtp_host=sandbox.host,
        smtp_port=sandbox.smtp_port,
        smtp_pool_size=4,
        smtp_timeout=5.0,
        twilio_base_url=sandbox.base_url,
        twilio_account_sid=DEFAULT_ACCOUNT_SID,
        twilio_auth_token=DEFAULT_AUTH_TOKEN,
        twilio_timeout=5.0,
    )


@pytest.fixture
async def smtp(settings: Settings) -> AsyncIterator[SmtpProvider]:
    provider = SmtpProvider(settings)
    yield provider
    await provider.close()


@pytest.fixture
async def twilio(settings: Settings) -> AsyncIterator[TwilioProvider]:
    provider = TwilioProvider(settings)
    yield provider
    await provider.close()


@dataclass
class Receiver:
    """A stand-in for the service's status-callback endpoint."""

    url: str = ""
    calls: list[tuple[str, dict[str, str], str]] = field(default_factory=list)

    def statuses(self) -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {}
        for _, params, _ in self.calls:
            seen.setdefault(params["MessageSid"], []).append(params["MessageStatus"])
        return seen


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()

    async def handle(request: web.Request) -> web.Response:
        params = {key: str(value) for key, value in (await request.post()).items()}
        found.calls.append((str(request.url), params, request.headers["X-Twilio-Signature"]))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhooks/twilio", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/twilio?campaign=7"
    yield found
    await runner.cleanup()


# --- email ------------------------------------------------------------------------------


async def test_email_is_accepted_and_recorded(sandbox: Sandbox, smtp: SmtpProvider) -> None:
    body = "Line one.\r\n.A line that starts with a dot\r\n.\r\nAfter a lone dot."
    results = await smtp.send([email(1, "alice@example.com", body), email(2, "bob@example.net")])

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert [r.provider_message_id for r in results] == [
        "<notice-1@example.net>",
        "<notice-2@example.net>",
    ]
    received = sandbox.messages(Channel.EMAIL)
    assert [m.to for m in received] == ["alice@example.com", "bob@example.net"]
    assert received[0].ref == "<notice-1@example.net>"
    # Dot-stuffing by the client and unstuffing by the server leave the message unchanged.
    assert received[0].body == email(1, "alice@example.com", body).data.decode()


@pytest.mark.parametrize(
    ("to", "outcome", "reason"),
    [
        ("reject-a@example.com", Outcome.PERMANENT, "smtp 550 5.1.1"),
        ("tempfail-a@example.com", Outcome.TRANSIENT, "smtp 451 4.3.0"),
        ("spam-a@example.com", Outcome.PERMANENT, "smtp 554 5.7.1"),
        ("drop-a@example.com", Outcome.TRANSIENT, "smtp connection failed"),
    ],
)
async def test_email_refusals_are_classified_without_naming_the_address(
    sandbox: Sandbox,
    smtp: SmtpProvider,
    caplog: pytest.LogCaptureFixture,
    to: str,
    outcome: Outcome,
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    [result] = await smtp.send([email(1, to)])

    assert result.outcome is outcome
    assert result.error is not None and result.error.startswith(reason)
    assert to not in result.error
    assert to not in caplog.text
    assert sandbox.messages(Channel.EMAIL) == []
    # The pool recovers: the next message goes through, on a new connection if needed.
    [after] = await smtp.send([email(2, "carol@example.com")])
    assert after.outcome is Outcome.SENT


async def test_greylisting_defers_once_then_accepts(sandbox: Sandbox, smtp: SmtpProvider) -> None:
    first = await smtp.send([email(1, "greylist-dan@example.com")])
    second = await smtp.send([email(1, "greylist-dan@example.com")])

    assert first[0].outcome is Outcome.TRANSIENT
    assert first[0].error is not None and first[0].error.startswith("smtp 450 4.2.0")
    assert second[0].outcome is Outcome.SENT
    assert sandbox.recipients(Channel.EMAIL) == ["greylist-dan@example.com"]


async def test_a_batch_with_mixed_outcomes_keeps_input_order(smtp: SmtpProvider) -> None:
    batch = [
        email(1, "erin@example.com"),
        email(2, "reject-frank@example.com"),
        email(3, "grace@example.com"),
        email(4, "tempfail-heidi@example.com"),
    ]
    results = await smtp.send(batch)

    assert [r.delivery_id for r in results] == [1, 2, 3, 4]
    assert [r.outcome for r in results] == [
        Outcome.SENT,
        Outcome.PERMANENT,
        Outcome.SENT,
        Outcome.TRANSIENT,
    ]


async def test_many_emails_share_the_pool(sandbox: Sandbox, smtp: SmtpProvider) -> None:
    batch = [email(n, f"user{n}@example.com") for n in range(500)]
    results = await smtp.send(batch)

    assert Counter(r.outcome for r in results) == {Outcome.SENT: 500}
    assert Counter(sandbox.recipients(Channel.EMAIL)) == Counter(m.to for m in batch)
    assert len(sandbox.smtp.sessions) <= 4


async def test_dropped_connections_are_transient_and_replaced(
    sandbox: Sandbox, smtp: SmtpProvider
) -> None:
    sandbox.faults.update({"smtp_disconnect_rate": 0.1})
    results = await smtp.send([email(n, f"user{n}@example.com") for n in range(100)])

    outcomes = Counter(r.outcome for r in results)
    assert outcomes == {Outcome.SENT: 90, Outcome.TRANSIENT: 10}
    assert sandbox.inbox.count(Channel.EMAIL) == 90


async def test_connections_closed_by_the_server_are_reopened(
    sandbox: Sandbox, smtp: SmtpProvider
) -> None:
    await smtp.send([email(n, f"user{n}@example.com") for n in range(8)])
    for session in list(sandbox.smtp.sessions):
        session.close()
    await asyncio.sleep(0.05)

    results = await smtp.send([email(n, f"again{n}@example.com") for n in range(8)])
    assert [r.outcome for r in results] == [Outcome.SENT] * 8


async def test_login_with_any_credentials(sandbox: Sandbox, settings: Settings) -> None:
    provider = SmtpProvider(settings.replace(smtp_username="relay", smtp_password="secret"))
    try:
        [result] = await provider.send([email(1, "ivan@example.com")])
    finally:
        await provider.close()
    assert result.outcome is Outcome.SENT


async def test_unreachable_server_is_transient(settings: Settings) -> None:
    provider = SmtpProvider(settings.replace(smtp_port=1))
    [result] = await provider.send([email(1, "judy@example.com")])
    assert result.outcome is Outcome.TRANSIENT


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers."""

    async def ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(ignore, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_a_silent_smtp_server_times_out_as_transient(
    settings: Settings, silent_port: int
) -> None:
    provider = SmtpProvider(settings.replace(smtp_port=silent_port, smtp_timeout=0.2))
    [result] = await provider.send([email(1, "oscar@example.com")])
    await provider.close()
    assert result.outcome is Outcome.TRANSIENT
    assert result.error is not None and result.error.startswith("smtp timeout")


async def test_a_silent_twilio_api_times_out_as_uncertain(
    settings: Settings, silent_port: int
) -> None:
    # The request went out and no answer came: Twilio may have created the message.
    base_url = f"http://127.0.0.1:{silent_port}"
    provider = TwilioProvider(settings.replace(twilio_base_url=base_url, twilio_timeout=0.2))
    try:
        [result] = await provider.send([sms(1, "+821000000009")])
    finally:
        await provider.close()
    assert result.outcome is Outcome.UNCERTAIN
    assert result.error is not None and result.error.startswith("twilio timeout")


async def test_smtp_stall_before_the_message_is_transient_and_hang_after_is_uncertain(
    sandbox: Sandbox, settings: Settings
) -> None:
    provider = SmtpProvider(settings.replace(smtp_timeout=0.3))
    try:
        sandbox.faults.update({"smtp_stall_rate": 1.0})
        [stalled] = await provider.send([email(1, "stall@example.com")])
        sandbox.faults.update({"smtp_stall_rate": 0.0, "smtp_hang_rate": 1.0})
        [hung] = await provider.send([email(2, "hang@example.com")])
        sandbox.faults.update({"smtp_hang_rate": 0.0})
        [fine] = await provider.send([email(3, "fine@example.com")])
    finally:
        await provider.close()
    assert stalled.outcome is Outcome.TRANSIENT
    assert hung.outcome is Outcome.UNCERTAIN
    assert hung.error is not None and "after the message was sent" in hung.error
    assert fine.outcome is Outcome.SENT
    # The hung message did arrive: a retry would be a second copy, hence the flag.
    assert sandbox.recipients(Channel.EMAIL) == ["hang@example.com", "fine@example.com"]


async def test_sms_dropped_or_hung_answers_are_uncertain(
    sandbox: Sandbox, settings: Settings
) -> None:
    provider = TwilioProvider(settings.replace(twilio_timeout=0.3))
    try:
        sandbox.faults.update({"sms_disconnect_rate": 1.0})
        [dropped] = await provider.send([sms(1, "+821000000011")])
        sandbox.faults.update({"sms_disconnect_rate": 0.0, "sms_hang_rate": 1.0, "hang_seconds": 1})
        [hung] = await provider.send([sms(2, "+821000000012")])
    finally:
        await provider.close()
    assert dropped.outcome is Outcome.UNCERTAIN
    assert hung.outcome is Outcome.UNCERTAIN
    # Dropped before anything was created; hung after the message existed.
    assert sandbox.recipients(Channel.SMS) == ["+821000000012"]


async def test_status_fetch_gives_the_final_status(
    sandbox: Sandbox, twilio: TwilioProvider
) -> None:
    sandbox.faults.update({"sms_undelivered": ["+821000000014"]})
    results = await twilio.send([sms(1, "+821000000013"), sms(2, "+821000000014")])
    sids = [r.provider_message_id for r in results]
    assert all(sids)
    assert await twilio.fetch_status(str(sids[0])) == ("delivered", None)
    assert await twilio.fetch_status(str(sids[1])) == ("undelivered", 30003)
    assert await twilio.fetch_status("SM" + "0" * 32) is None


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"]
    command += ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_tls_modes(certificate: tuple[Path, Path], mode: Literal["starttls", "tls"]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    async with Sandbox(smtp_tls=mode, ssl_context=server_context) as running:
        settings = Settings(smtp_port=running.smtp_port, smtp_tls=mode, smtp_username="u")
        provider = SmtpProvider(settings, tls_context=client_context)
        try:
            results = await provider.send([email(n, f"tls{n}@example.com") for n in range(3)])
        finally:
            await provider.close()
        assert [r.outcome for r in results] == [Outcome.SENT] * 3
        assert running.inbox.count(Channel.EMAIL) == 3


async def test_pipelined_commands_in_one_write(sandbox: Sandbox) -> None:
    reader, writer = await asyncio.open_connection(sandbox.host, sandbox.smtp_port)
    await reader.readline()
    writer.write(
        b"EHLO client.example.net\r\n"
        b"MAIL FROM:<sender@example.com>\r\n"
        b"RCPT TO:<one@example.com>\r\n"
        b"RCPT TO:<reject-two@example.com>\r\n"
        b"RCPT TO:<three@example.com>\r\n"
        b"DATA\r\n"
        b"Subject: pipelined\r\n\r\n..stuffed\r\n.\r\n"
        b"MAIL FROM:<>\r\nRCPT TO:<four@example.com>\r\nDATA\r\n.\r\n"
        b"QUIT\r\n"
    )
    replies = (await reader.read()).decode().splitlines()
    writer.close()

    codes = [line[:3] for line in replies if line[3:4] == " "]
    first = ["250", "250", "250", "550", "250", "354", "250"]  # EHLO … DATA, end of data
    second = ["250", "250", "354", "250", "221"]  # an empty message, then QUIT
    assert codes == [*first, *second]
    bodies = {m.to: m.body for m in sandbox.messages(Channel.EMAIL)}
    assert bodies == {
        "one@example.com": "Subject: pipelined\r\n\r\n.stuffed\r\n",
        "three@example.com": "Subject: pipelined\r\n\r\n.stuffed\r\n",
        "four@example.com": "",
    }


# --- sms --------------------------------------------------------------------------------


async def test_sms_is_accepted_and_callbacks_are_signed(
    sandbox: Sandbox, twilio: TwilioProvider, receiver: Receiver
) -> None:
    results = await twilio.send([sms(1, "+821000000001", receiver.url), sms(2, "+15005550006")])

    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    sid = results[0].provider_message_id
    assert sid is not None and sid.startswith("SM") and len(sid) == 34
    first = sandbox.messages("sms")[0]
    assert (first.to, first.ref, first.body) == ("+821000000001", sid, SMS_TEXT)
    async with asyncio.timeout(5):
        await sandbox.settle()
    assert receiver.statuses() == {sid: ["sent", "delivered"]}
    validator = RequestValidator(DEFAULT_AUTH_TOKEN)
    for url, params, signature in receiver.calls:
        assert params["AccountSid"] == DEFAULT_ACCOUNT_SID
        assert params["SmsSid"] == sid and params["ApiVersion"] == "2010-04-01"
        assert validator.validate(url, params, signature)


async def test_forged_callbacks_fail_validation(
    sandbox: Sandbox, twilio: TwilioProvider, receiver: Receiver
) -> None:
    await twilio.send([sms(1, "+821000000002", receiver.url)])
    async with asyncio.timeout(5):
        await sandbox.settle()
    url, params, signature = receiver.calls[-1]

    assert RequestValidator(DEFAULT_AUTH_TOKEN).validate(url, params, signature)
    assert not RequestValidator("another-token").validate(url, params, signature)
    forged = params | {"MessageStatus": "failed"}
    assert not RequestValidator(DEFAULT_AUTH_TOKEN).validate(url, forged, signature)


async def test_undelivered_numbers_get_an_error_code(
    sandbox: Sandbox, twilio: TwilioProvider, receiver: Receiver
) -> None:
    sandbox.faults.update({"sms_undelivered": ["+821000000099"]})
    results = await twilio.send(
        [sms(1, "+15005553003", receiver.url), sms(2, "+821000000099", receiver.url)]
    )
    async with asyncio.timeout(5):
        await sandbox.settle()

    assert all(r.outcome is Outcome.SENT for r in results)
    finals = [p for _, p, _ in receiver.calls if p["MessageStatus"] != "sent"]
    assert [(p["MessageStatus"], p["ErrorCode"]) for p in finals] == [("undelivered", "30003")] * 2
    assert classify_twilio(None, 30003) is Outcome.PERMANENT


@pytest.mark.parametrize(
    ("to", "code"),
    [("+15005550001", 21211), ("+15005550009", 21614), ("+15005550004", 21610)],
)
async def test_magic_numbers_are_refused_permanently(
    sandbox: Sandbox,
    twilio: TwilioProvider,
    caplog: pytest.LogCaptureFixture,
    to: str,
    code: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    [result] = await twilio.send([sms(1, to)])

    assert result.outcome is Outcome.PERMANENT
    assert result.error is not None and result.error.startswith(f"twilio {code} ")
    assert to not in result.error and to not in caplog.text
    assert sandbox.inbox.count(Channel.SMS) == 0
    assert sandbox.inbox.refused(Channel.SMS) == 1


async def test_throttle_mode_gives_throttled_with_retry_after(
    sandbox: Sandbox, twilio: TwilioProvider
) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{sandbox.base_url}/_sandbox/faults"
        async with session.post(url, json={"sms_throttle_rate": 0.5, "sms_retry_after": 2}) as r:
            assert r.status == 200
    results = await twilio.send([sms(n, f"+8210{n:08d}") for n in range(20)])

    throttled = [r for r in results if r.outcome is Outcome.THROTTLED]
    assert len(throttled) == 10
    assert {(r.error, r.retry_after) for r in throttled} == {
        ("twilio 20429 too many requests", 2.0)
    }
    assert sandbox.inbox.count(Channel.SMS) == 10


async def test_throttle_without_retry_after(sandbox: Sandbox, twilio: TwilioProvider) -> None:
    sandbox.faults.update({"sms_throttle_rate": 1.0})
    [result] = await twilio.send([sms(1, "+821000000003")])
    assert result.outcome is Outcome.THROTTLED and result.retry_after is None


async def test_server_errors_are_transient(sandbox: Sandbox, twilio: TwilioProvider) -> None:
    sandbox.faults.update({"sms_error_rate": 1.0})
    [result] = await twilio.send([sms(1, "+821000000004")])
    assert result.outcome is Outcome.TRANSIENT
    assert result.error == "twilio 20500 internal server error"


async def test_wrong_credentials_are_not_blamed_on_the_recipient(settings: Settings) -> None:
    provider = TwilioProvider(settings.replace(twilio_auth_token="rotated"))
    try:
        [result] = await provider.send([sms(1, "+821000000005")])
    finally:
        await provider.close()
    assert result.outcome is Outcome.TRANSIENT
    assert result.error == "twilio 20003 authentication failed"


async def test_messaging_service_instead_of_from(sandbox: Sandbox, settings: Settings) -> None:
    service = settings.replace(twilio_from=None, twilio_messaging_service_sid="MG" + "1" * 32)
    provider = TwilioProvider(service)
    try:
        [result] = await provider.send([sms(1, "+821000000006")])
    finally:
        await provider.close()
    assert result.outcome is Outcome.SENT


async def test_unreachable_api_is_transient(settings: Settings) -> None:
    provider = TwilioProvider(settings.replace(twilio_base_url="http://127.0.0.1:1"))
    try:
        [result] = await provider.send([sms(1, "+821000000007")])
    finally:
        await provider.close()
    assert result.outcome is Outcome.TRANSIENT


async def test_many_sms_with_bounded_concurrency(sandbox: Sandbox, settings: Settings) -> None:
    provider = TwilioProvider(settings.replace(twilio_concurrency=8))
    numbers = [f"+8210{n:08d}" for n in range(300)]
    try:
        results = await provider.send([sms(n, to) for n, to in enumerate(numbers)])
    finally:
        await provider.close()
    assert Counter(r.outcome for r in results) == {Outcome.SENT: 300}
    assert len({r.provider_message_id for r in results}) == 300
    assert Counter(sandbox.recipients(Channel.SMS)) == Counter(numbers)


# --- control API ------------------------------------------------------------------------


async def test_control_api_lists_counts_and_resets(
    sandbox: Sandbox, smtp: SmtpProvider, twilio: TwilioProvider
) -> None:
    await smtp.send([email(1, "kim@example.com"), email(2, "reject-lee@example.com")])
    await twilio.send([sms(3, "+821000000008")])
    base = f"{sandbox.base_url}/_sandbox"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/messages", params={"channel": "sms"}) as r:
            listed = await r.json()
        async with session.get(f"{base}/stats") as r:
            stats = await r.json()
        async with session.post(f"{base}/faults", json={"no_such_knob": 1}) as r:
            assert r.status == 400
        async with session.post(f"{base}/reset") as r:
            assert r.status == 200
        async with session.get(f"{base}/messages") as r:
            after = await r.json()

    assert [(m["channel"], m["to"], m["body"]) for m in listed] == [
        ("sms", "+821000000008", SMS_TEXT)
    ]
    assert listed[0]["sid"].startswith("SM") and isinstance(listed[0]["at"], float)
    assert stats["email"]["received"] == 1 and stats["email"]["refused"] == 1
    assert stats["sms"]["received"] == 1
    assert sum(count for _, count in stats["email"]["per_second"]) == 1
    assert after == []


async def test_bodies_can_be_dropped_for_big_runs(settings: Settings) -> None:
    async with Sandbox(keep_bodies=False) as running:
        provider = SmtpProvider(settings.replace(smtp_port=running.smtp_port))
        try:
            await provider.send([email(1, "mallory@example.com")])
        finally:
            await provider.close()
        [record] = running.messages(Channel.EMAIL)
    assert (record.to, record.ref, record.body) == (
        "mallory@example.com",
        "<notice-1@example.net>",
        None,
    )
