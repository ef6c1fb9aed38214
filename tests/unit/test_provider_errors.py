"""Provider error tables, reasons and the small parsers around them (no I/O)."""

from __future__ import annotations

import email.utils

import pytest
from twilio.request_validator import RequestValidator

from notifier import messageid
from notifier.providers import Outcome, scrub
from notifier.providers import smtp as smtp_provider
from notifier.providers import twilio as twilio_provider
from notifier.providers.twilio import callback_signature, callback_signed
from notifier.tooling.sandbox.faults import Faults
from notifier.tooling.sandbox.twilio import segments


@pytest.mark.parametrize(
    ("code", "message", "outcome"),
    [
        (250, "2.0.0 OK", Outcome.SENT),
        (550, "5.1.1 <a@example.com>: User unknown", Outcome.PERMANENT),
        (551, "5.1.6 User not local", Outcome.PERMANENT),
        (552, "5.2.2 Mailbox full", Outcome.PERMANENT),
        (553, "5.1.3 Bad address syntax", Outcome.PERMANENT),
        (554, "5.7.1 Message rejected as spam", Outcome.PERMANENT),
        (599, "", Outcome.PERMANENT),
        (421, "4.7.0 Try again later, closing connection", Outcome.TRANSIENT),
        (450, "4.2.0 Greylisted", Outcome.TRANSIENT),
        (451, "4.3.0 Temporary failure", Outcome.TRANSIENT),
        (452, "4.5.3 Too many recipients", Outcome.TRANSIENT),
        (499, "", Outcome.TRANSIENT),
        (421, "4.7.28 Our system has detected an unusual rate", Outcome.THROTTLED),
        (535, "5.7.8 Authentication credentials invalid", Outcome.TRANSIENT),
        (530, "5.7.0 Authentication required", Outcome.TRANSIENT),
        (None, "", Outcome.TRANSIENT),
    ],
)
def test_smtp_replies_are_classified(code: int | None, message: str, outcome: Outcome) -> None:
    assert smtp_provider.classify(code, message) is outcome


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (429, 20429, Outcome.THROTTLED),
        (429, None, Outcome.THROTTLED),
        (400, 21611, Outcome.THROTTLED),
        (500, 20500, Outcome.TRANSIENT),
        (503, None, Outcome.TRANSIENT),
        (None, None, Outcome.TRANSIENT),
        (401, 20003, Outcome.TRANSIENT),
        (400, 21211, Outcome.PERMANENT),
        (400, 21408, Outcome.PERMANENT),
        (400, 21610, Outcome.PERMANENT),
        (400, 21612, Outcome.PERMANENT),
        (400, 21614, Outcome.PERMANENT),
        (400, 99999, Outcome.PERMANENT),
        (404, None, Outcome.PERMANENT),
        (201, None, Outcome.SENT),
    ],
)
def test_twilio_errors_are_classified(
    status: int | None, code: int | None, outcome: Outcome
) -> None:
    assert twilio_provider.classify(status, code) is outcome


@pytest.mark.parametrize("code", range(30003, 30009))
def test_undelivered_callback_codes_are_permanent(code: int) -> None:
    assert twilio_provider.classify(None, code) is Outcome.PERMANENT


def test_twilio_reasons_are_short_and_name_nobody() -> None:
    assert (
        twilio_provider.describe(
            400, 21211, "Unable to create record: The 'To' number +15005550001"
        )
        == "twilio 21211 invalid 'To' phone number"
    )
    unknown = twilio_provider.describe(400, 63999, "Unable to create record: +821012345678 is odd")
    assert unknown == "twilio 63999 <redacted> is odd"
    assert twilio_provider.describe(502, 502, "Bad Gateway") == "twilio http 502 Bad Gateway"


def test_scrub_removes_addresses_and_numbers() -> None:
    text = scrub("5.1.1 <dana@example.com>: unknown;  call +82 10-1234-5678\r\nnow")
    assert text == "5.1.1 <redacted>: unknown; call <redacted> now"
    assert "example.com" not in scrub("rcpt dana@example.com refused")
    assert len(scrub("x" * 1000)) == 160


def test_retry_after_reads_seconds_and_dates() -> None:
    assert twilio_provider.retry_after("2") == 2.0
    assert twilio_provider.retry_after("0.5") == 0.5
    assert twilio_provider.retry_after(None) is None
    assert twilio_provider.retry_after("soon") is None
    later = email.utils.formatdate(1_000_030, usegmt=True)
    assert twilio_provider.retry_after(later, now=1_000_000) == 30.0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"Subject: x\r\nMessage-ID: <a1@example.net>\r\n\r\nbody", "<a1@example.net>"),
        (b"message-id:   <b2@example.net>  \r\nSubject: y\r\n\r\n", "<b2@example.net>"),
        (b"Subject: z\r\nMessage-Id:\r\n <c3@example.net>\r\n\r\n", "<c3@example.net>"),
        (b"Subject: none\r\n\r\nMessage-ID: <in-body@example.net>\r\n", None),
        (b"Subject: bare\nMessage-ID: <d4@example.net>\n\nbody", "<d4@example.net>"),
    ],
)
def test_message_id_is_found_in_the_header_only(data: bytes, expected: str | None) -> None:
    assert messageid.find(data) == expected


def test_callback_signature_matches_twilio_validator() -> None:
    url = "https://notifier.example.com/webhooks/twilio?campaign=7"
    params = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered", "To": "+15005550006"}
    signature = callback_signature(url, params, "token")

    validator = RequestValidator("token")
    assert signature == validator.compute_signature(url, params)
    assert validator.validate(url, params, signature)
    assert not validator.validate(url, params | {"MessageStatus": "failed"}, signature)


@pytest.mark.parametrize(
    ("signed_url", "checked_url"),
    [
        ("https://n.example.com/w?c=1", "https://n.example.com/w?c=1"),
        ("https://n.example.com:443/w?c=1", "https://n.example.com/w?c=1"),
        ("https://n.example.com/w?c=1", "https://n.example.com:443/w?c=1"),
        ("http://127.0.0.1:8080/w", "http://127.0.0.1:8080/w"),
        ("http://127.0.0.1/w", "http://127.0.0.1:80/w"),
    ],
)
def test_callback_check_agrees_with_twilio_validator(signed_url: str, checked_url: str) -> None:
    params = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "sent", "Body": "한국어 é"}
    signature = RequestValidator("token").compute_signature(signed_url, params)

    assert RequestValidator("token").validate(checked_url, params, signature)
    assert callback_signed(checked_url, params, "token", signature)
    assert not callback_signed(checked_url, params, "other-token", signature)
    changed = params | {"MessageStatus": "failed"}
    assert not callback_signed(checked_url, changed, "token", signature)
    assert not callback_signed(checked_url + "&x=1", params, "token", signature)
    assert not callback_signed(checked_url, params, "token", "")
    assert not callback_signed(checked_url, params, "token", signature[:-2])


def test_fault_rates_are_exact_and_spread_evenly() -> None:
    faults = Faults()
    faults.update({"sms_throttle_rate": 0.25})
    hits = [faults.hit("sms_throttle_rate") for _ in range(100)]
    assert sum(hits) == 25
    assert hits[:8] == [False, False, False, True] * 2
    faults.update({"smtp_tempfail_rate": 0.1})
    assert sum(faults.hit("smtp_tempfail_rate") for _ in range(100)) == 10


@pytest.mark.parametrize(
    "changes",
    [
        {"no_such_knob": 1},
        {"sms_error_rate": 2},
        {"sms_error_rate": "high"},
        {"sms_undelivered": 5},
    ],
)
def test_fault_knobs_are_validated(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Faults().update(changes)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("{" * 80, 1),  # extended GSM characters take two units each
        ("{" * 81, 2),
        ("가" * 70, 1),  # anything outside GSM-7 makes the whole message UCS-2
        ("가" * 71, 2),
        ("가" * 134, 2),
    ],
)
def test_sms_segments_follow_gsm7_and_ucs2(body: str, expected: int) -> None:
    assert segments(body) == expected
