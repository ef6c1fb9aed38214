"""The sandbox's SMTP server: a plain asyncio.Protocol that speaks enough ESMTP for aiosmtplib.

It is written against the protocol rather than on aiosmtpd because benchmarks push thousands
of messages a second through it on the same two cores as the service: input is buffered and
split by lines, so pipelined commands work, and each read is answered with one write.

Fault injection by the recipient's local part (case-insensitive), at RCPT unless noted:

- ``reject-…``   → ``550 5.1.1`` user unknown (permanent)
- ``tempfail-…`` → ``451 4.3.0`` temporary failure (transient)
- ``greylist-…`` → ``450 4.2.0`` the first time per address, accepted afterwards
- ``drop-…``     → the server closes the connection without replying (broken connection)
- ``spam-…``     → accepted at RCPT, then ``554 5.7.1`` after DATA (content refused)

plus the runtime knobs ``smtp_tempfail_rate`` and ``smtp_disconnect_rate`` (see faults.py).
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import ssl
from typing import Literal, cast

from notifier.messageid import find as message_id
from notifier.models import Channel
from notifier.tooling.sandbox.faults import Faults
from notifier.tooling.sandbox.inbox import Inbox

log = logging.getLogger(__name__)

TlsMode = Literal["none", "starttls", "tls"]

_MAX_LINE = 4096
_OK = b"250 2.0.0 OK\r\n"


class SmtpServer:
    """Listens for SMTP and records every accepted message in the inbox."""

    def __init__(
        self,
        inbox: Inbox,
        faults: Faults,
        *,
        hostname: str = "sandbox.localhost",
        tls: TlsMode = "none",
        ssl_context: ssl.SSLContext | None = None,
        max_message_size: int = 32 * 1024 * 1024,
    ) -> None:
        if tls != "none" and ssl_context is None:
            raise ValueError("an ssl_context is needed for tls or starttls")
        self.inbox = inbox
        self.faults = faults
        self.hostname = hostname
        self.tls: TlsMode = tls
        self.ssl_context = ssl_context
        self.max_message_size = max_message_size
        self.greylisted: set[str] = set()
        self.sessions: set[SmtpSession] = set()
        self.queued = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Bind and listen; returns the bound port (useful when `port` is 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SmtpSession(self),
            host,
            port,
            ssl=self.ssl_context if self.tls == "tls" else None,
            reuse_address=True,
        )
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        """Stop listening and close every open session."""
        if self._server is None:
            return
        self._server.close()
        for session in list(self.sessions):
            session.close()
        await self._server.wait_closed()
        self._server = None

    def ehlo_reply(self, client: bytes, *, tls_active: bool) -> bytes:
        """The EHLO answer. SIZE is left out on purpose: aiosmtplib would then re-scan every
        message to compute it, a client-side cost the benchmark should not be paying here."""
        lines = [
            b"%s Hello %s" % (self.hostname.encode(), client or b"client"),
            b"PIPELINING",
            b"8BITMIME",
            b"SMTPUTF8",
            b"ENHANCEDSTATUSCODES",
            b"AUTH PLAIN LOGIN",
        ]
        if self.tls == "starttls" and not tls_active:
            lines.append(b"STARTTLS")
        lines.append(b"HELP")
        head = b"".join(b"250-" + line + b"\r\n" for line in lines[:-1])
        return head + b"250 " + lines[-1] + b"\r\n"


class SmtpSession(asyncio.Protocol):
    """One client connection: a line-buffered command loop and a DATA collector."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        # While DATA is being read, the message collects here, prefixed with CRLF so that the
        # end marker and dot-unstuffing need no special case for the first line.
        self._message: bytearray | None = None
        self._scan = 0
        self._too_big = False
        self._greeted = False
        self._authenticated = False
        self._auth_step: str | None = None
        self._tls_active = server.tls == "tls"
        self._closing = False
        # What to do once the replies to this read are written: hang up, upgrade to TLS, or
        # go silent for good (a fault: the client is left to time out).
        self._then: Literal["close", "starttls", "silent"] | None = None
        self._upgrading = False
        self._upgrade_task: asyncio.Task[None] | None = None
        self._sender: str | None = None
        self._recipients: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server.sessions.add(self)
        self._transport.write(b"220 %s ESMTP sandbox ready\r\n" % self._server.hostname.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._server.sessions.discard(self)

    def close(self) -> None:
        """Close the connection without a reply."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._closing or self._then == "silent":
            return
        if self._upgrading:
            # Decrypted data can arrive before start_tls() returns the new transport.
            self._buffer += data
            return
        if self._message is not None:
            self._message += data
        else:
            self._buffer += data
        replies: list[bytes] = []
        self._process(replies)
        transport = self._transport
        if transport is None:
            return
        if replies:
            transport.write(b"".join(replies))
        if self._then == "close":
            self.close()
        elif self._then == "starttls":
            # Commands pipelined after STARTTLS were sent in clear text: drop them (the
            # classic STARTTLS command-injection hole).
            self._buffer.clear()
            self._upgrading = True
            context = cast(ssl.SSLContext, self._server.ssl_context)
            # Held so the task is not garbage-collected mid-handshake.
            self._upgrade_task = asyncio.get_running_loop().create_task(
                self._upgrade(transport, context)
            )

    def _process(self, replies: list[bytes]) -> None:
        position = 0
        while self._then is None:
            if self._message is not None:
                if not self._collect(replies):
                    break
                continue
            buffer = self._buffer
            newline = buffer.find(b"\n", position)
            if newline < 0:
                if len(buffer) - position > _MAX_LINE:
                    replies.append(b"500 5.5.2 Line too long\r\n")
                    position = len(buffer)
                break
            line = bytes(buffer[position:newline]).rstrip(b"\r")
            position = newline + 1
            replies.append(self._command(line))
            if self._message is not None:
                # Pipelined message data after DATA belongs to the message.
                self._message += buffer[position:]
                self._buffer = bytearray()
                position = 0
        if position:
            del self._buffer[:position]

    def _collect(self, replies: list[bytes]) -> bool:
        """Look for the end of DATA; True once the message is complete."""
        message = cast(bytearray, self._message)
        end = message.find(b"\r\n.\r\n", self._scan)
        if end < 0:
            self._scan = max(0, len(message) - 4)
            if len(message) > self._server.max_message_size:
                # Keep reading to the end marker but stop holding the content.
                self._too_big = True
                del message[2:-4]
                self._scan = 0
            return False
        rest = message[end + 5 :]
        raw = bytes(message[: end + 2])
        self._message = None
        self._scan = 0
        self._buffer = rest
        replies.append(self._deliver(raw))
        return True

    def _deliver(self, raw: bytes) -> bytes:
        recipients, self._recipients, self._sender = self._recipients, [], None
        inbox = self._server.inbox
        if self._too_big:
            self._too_big = False
            for _ in recipients:
                inbox.refuse(Channel.EMAIL)
            return b"552 5.3.4 Message size exceeds fixed limit\r\n"
        if any(_local_part(rcpt).startswith("spam-") for rcpt in recipients):
            for _ in recipients:
                inbox.refuse(Channel.EMAIL)
            return b"554 5.7.1 Message rejected as spam\r\n"
        if b"\n.." in raw:
            raw = raw.replace(b"\r\n..", b"\r\n.")
        data = raw[2:]
        ref = message_id(data)
        body = data if inbox.keep_bodies else None
        for rcpt in recipients:
            inbox.add(Channel.EMAIL, rcpt, ref, body)
        self._server.queued += 1
        if self._server.faults.hit("smtp_hang_rate"):
            self._then = "silent"  # taken, but the client will never hear so
            return b""
        return b"250 2.0.0 OK queued as %X\r\n" % self._server.queued

    def _command(self, line: bytes) -> bytes:
        if self._auth_step is not None:
            return self._auth_continue(line)
        verb = line[:4].upper()
        if verb == b"MAIL":
            return self._mail(line)
        if verb == b"RCPT":
            return self._rcpt(line)
        if verb == b"DATA":
            if not self._recipients:
                return b"554 5.5.1 No valid recipients\r\n"
            self._message = bytearray(b"\r\n")
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb == b"RSET":
            self._sender, self._recipients = None, []
            return _OK
        if verb == b"NOOP":
            return _OK
        if verb in (b"EHLO", b"HELO"):
            self._greeted = True
            self._sender, self._recipients = None, []
            client = line[5:].strip()[:255]
            if verb == b"HELO":
                return b"250 %s\r\n" % self._server.hostname.encode()
            return self._server.ehlo_reply(client, tls_active=self._tls_active)
        if verb == b"QUIT":
            self._then = "close"
            return b"221 2.0.0 Bye\r\n"
        if verb == b"AUTH":
            return self._auth(line)
        if verb == b"VRFY":
            return b"252 2.5.0 Cannot VRFY user, but will accept message\r\n"
        if line[:8].upper() == b"STARTTLS":
            return self._starttls()
        return b"500 5.5.2 Command not recognized\r\n"

    def _mail(self, line: bytes) -> bytes:
        if not self._greeted:
            return b"503 5.5.1 Send EHLO first\r\n"
        if self._sender is not None:
            return b"503 5.5.1 Nested MAIL command\r\n"
        if line[4:10].upper() != b" FROM:":
            return b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
        if self._server.faults.hit("smtp_disconnect_rate"):
            self._then = "close"
            return b""
        if self._server.faults.hit("smtp_stall_rate"):
            self._then = "silent"
            return b""
        self._sender = _address(line[10:])
        return b"250 2.1.0 OK\r\n"

    def _rcpt(self, line: bytes) -> bytes:
        if self._sender is None:
            return b"503 5.5.1 Need MAIL command\r\n"
        if line[4:8].upper() != b" TO:":
            return b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"
        address = _address(line[8:])
        local = _local_part(address)
        refusal: bytes | None = None
        if local.startswith("reject-"):
            refusal = b"550 5.1.1 <%s>: Recipient address rejected: User unknown\r\n"
        elif local.startswith("tempfail-"):
            refusal = b"451 4.3.0 <%s>: Temporary failure, try again later\r\n"
        elif local.startswith("greylist-") and address.lower() not in self._server.greylisted:
            self._server.greylisted.add(address.lower())
            refusal = b"450 4.2.0 <%s>: Recipient address rejected: Greylisted\r\n"
        elif local.startswith("drop-"):
            self._server.inbox.refuse(Channel.EMAIL)
            self._then = "close"
            return b""
        elif self._server.faults.hit("smtp_tempfail_rate"):
            refusal = b"451 4.7.1 <%s>: Try again later\r\n"
        if refusal is not None:
            self._server.inbox.refuse(Channel.EMAIL)
            return refusal % address.encode("utf-8", "replace")
        self._recipients.append(address)
        return b"250 2.1.5 OK\r\n"

    def _auth(self, line: bytes) -> bytes:
        parts = line.split()
        if not self._greeted:
            return b"503 5.5.1 Send EHLO first\r\n"
        if self._authenticated:
            return b"503 5.5.1 Already authenticated\r\n"
        if len(parts) < 2:
            return b"501 5.5.4 Syntax: AUTH mechanism\r\n"
        mechanism = parts[1].upper()
        if mechanism == b"PLAIN":
            if len(parts) > 2:
                return self._auth_done(parts[2])
            self._auth_step = "plain"
            return b"334 \r\n"
        if mechanism == b"LOGIN":
            if len(parts) > 2:
                if not _is_base64(parts[2]):
                    return b"501 5.5.2 Cannot decode response\r\n"
                self._auth_step = "password"
                return b"334 UGFzc3dvcmQ6\r\n"
            self._auth_step = "username"
            return b"334 VXNlcm5hbWU6\r\n"
        return b"504 5.5.4 Unrecognized authentication type\r\n"

    def _auth_continue(self, line: bytes) -> bytes:
        step, self._auth_step = self._auth_step, None
        if line.strip() == b"*":
            return b"501 5.7.0 Authentication aborted\r\n"
        if step == "username":
            if not _is_base64(line):
                return b"501 5.5.2 Cannot decode response\r\n"
            self._auth_step = "password"
            return b"334 UGFzc3dvcmQ6\r\n"
        return self._auth_done(line)

    def _auth_done(self, response: bytes) -> bytes:
        # Any credentials are accepted: the sandbox checks that login happens, not who it is.
        if not _is_base64(response):
            return b"501 5.5.2 Cannot decode response\r\n"
        self._authenticated = True
        return b"235 2.7.0 Authentication successful\r\n"

    def _starttls(self) -> bytes:
        if self._server.tls != "starttls" or self._tls_active:
            return b"502 5.5.1 STARTTLS not available\r\n"
        self._then = "starttls"
        return b"220 2.0.0 Ready to start TLS\r\n"

    async def _upgrade(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        try:
            upgraded = await asyncio.get_running_loop().start_tls(
                transport, self, context, server_side=True
            )
        except (OSError, ssl.SSLError, ConnectionError):
            log.info("smtp sandbox: TLS handshake failed")
            self.close()
            return
        if upgraded is None:
            self.close()
            return
        self._transport = upgraded
        self._upgrading = False
        self._then = None
        self._tls_active = True
        # RFC 3207: after the upgrade the client starts over with EHLO.
        self._greeted = self._authenticated = False
        self._sender, self._recipients = None, []
        if self._buffer:
            self.data_received(b"")


def _address(argument: bytes) -> str:
    text = argument.decode("utf-8", "replace").strip()
    if text.startswith("<"):
        end = text.find(">")
        return text[1:end] if end > 0 else text[1:]
    return text.split(" ", 1)[0]


def _local_part(address: str) -> str:
    return address.rsplit("@", 1)[0].strip('"').lower()


def _is_base64(value: bytes) -> bool:
    try:
        binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error:
        return False
    return True
