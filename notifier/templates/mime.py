"""Email on the wire: header values that cannot inject headers, encoded subjects, From,
and MIME body parts."""

from __future__ import annotations

import binascii
import re
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP

# C0 and C1 controls and Unicode line breaks: none may reach a header.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(value: str) -> str:
    """A value safe inside a header: controls and line breaks become single spaces."""
    return " ".join(_CONTROLS.sub(" ", value).split())


def from_header(address: str, name: str | None) -> bytes:
    """The From header, folded, with the display name made safe."""
    message = EmailMessage(policy=SMTP)
    try:
        if _CONTROLS.search(address) or "@" not in address:
            raise ValueError(address)
        message["From"] = Address(display_name=one_line(name or ""), addr_spec=address)
    except (ValueError, IndexError, HeaderParseError):
        raise ValueError("email_from must be a plain address such as notice@example.com") from None
    return SMTP.fold_binary("From", message["From"])


def subject_header(subject: str) -> bytes:
    """The Subject header: plain ASCII folded at 78 characters, else RFC 2047 words."""
    text = one_line(subject)
    if text.isascii() and "=?" not in text:
        lines, line = [], "Subject:"
        for word in text.split(" "):
            if len(line) + 1 + len(word) > 78 and line != "Subject:":
                lines.append(line)
                line = ""
            line += " " + word
        lines.append(line)
        if max(map(len, lines)) <= 78:
            return ("\r\n".join(lines) + "\r\n").encode("ascii")
    # RFC 2047 encoded words of at most 42 bytes each (68 characters encoded), cut only
    # between characters, so every header line stays under 78 characters.
    data = text.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + 42, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        words.append(b"=?utf-8?b?" + binascii.b2a_base64(data[start:end], newline=False) + b"?=")
        start = end
    return b"Subject: " + b"\r\n ".join(words) + b"\r\n"


def body_part(text: str, subtype: bytes) -> bytes:
    """A MIME part's headers and body: quoted-printable for ASCII text, base64 otherwise."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")
    head = b"Content-Type: text/" + subtype + b'; charset="utf-8"\r\n'
    if data.isascii():
        # b2a_qp breaks soft lines with the first line ending it meets, "\n" when none.
        encoded = binascii.b2a_qp(data, istext=True)
        if b"\r\n" not in encoded:
            encoded = encoded.replace(b"\n", b"\r\n")
        if not encoded.endswith(b"\r\n"):
            encoded += b"=\r\n"  # a soft break: the message ends in CRLF, the text does not
        return head + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded
    flat = binascii.b2a_base64(data, newline=False)
    lines = [flat[i : i + 76] for i in range(0, len(flat), 76)]
    return head + b"Content-Transfer-Encoding: base64\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
