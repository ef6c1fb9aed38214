"""Local protocol peers: an SMTP server and a Twilio-compatible HTTP API on 127.0.0.1.

The real aiosmtplib and twilio clients talk to them unchanged; only the SMTP host and port
and the Twilio base URL are pointed here. The same sandbox serves the demo, the tests and
the benchmarks. Defaults: SMTP on 2525, HTTP on 8025.

Fault injection is chosen by the recipient, so a test can mix outcomes in one batch:

Email (recipient's local part, case-insensitive):
    ``reject-…`` → 550 5.1.1, ``tempfail-…`` → 451 4.3.0, ``greylist-…`` → 450 4.2.0 once
    per address then accepted, ``drop-…`` → connection closed without reply, ``spam-…`` →
    554 5.7.1 after DATA.

SMS (Twilio's magic test numbers, plus a few of ours):
    To +15005550001 → 400/21211, +15005550002 → 400/21612, +15005550003 → 400/21408,
    +15005550004 → 400/21610, +15005550009 → 400/21614; To +1500555300N (N = 3…8) → accepted,
    then an "undelivered" callback with ErrorCode 3000N; From +15005550001 → 21212,
    +15005550007 → 21606, +15005550008 → 21611.

Runtime knobs (``POST /_sandbox/faults`` or ``Sandbox.faults``; each documented in
``faults.py``). Email: ``smtp_tempfail_rate`` (451 4.7.1 at RCPT), ``smtp_disconnect_rate``
(connection dropped at MAIL), ``smtp_stall_rate`` (MAIL never answered: nothing taken),
``smtp_hang_rate`` (message taken, final reply never sent). SMS: ``sms_throttle_rate``
(429/20429), ``sms_retry_after``, ``sms_error_rate`` (500/20500), ``sms_disconnect_rate``
(connection dropped, nothing created), ``sms_hang_rate`` with ``hang_seconds`` (created,
answered too late), ``sms_undelivered`` (numbers → undelivered/30003). Callbacks:
``callback_delay``, ``sms_interim_callbacks``, ``callback_duplicate_rate``,
``callback_reorder_rate`` (final status first), ``callback_loss_rate`` (never posted; the
status can still be fetched with ``GET …/Messages/{sid}.json``). Rates apply
deterministically: 0.25 refuses exactly every fourth request.
"""

from notifier.tooling.sandbox.faults import Faults
from notifier.tooling.sandbox.inbox import Inbox, Received
from notifier.tooling.sandbox.server import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_HTTP_PORT,
    DEFAULT_SMTP_PORT,
    Sandbox,
    serve,
)

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_SMTP_PORT",
    "Faults",
    "Inbox",
    "Received",
    "Sandbox",
    "serve",
]
