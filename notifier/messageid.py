"""The Message-ID of a notice: how it is made, found in a message, and read back.

A notice's Message-ID is `<n{campaign hex}.{delivery id}.{16 random hex}@{sender's domain}>`:
the relay's events name it, and from it alone the service knows which delivery they mean.
"""

from __future__ import annotations

import uuid


def domain_of(email_from: str) -> str:
    """The domain that names Message-IDs: the From address's own."""
    return email_from.rpartition("@")[2] or "localhost"


def ref(campaign_id: uuid.UUID, delivery_id: int) -> str:
    """The start of a notice's Message-ID: which campaign and delivery it is."""
    return f"n{campaign_id.hex}.{delivery_id}"


def local_part(ref_: str) -> bytes:
    """The part before the `@`: the reference and a random tail, unique per message even
    when one delivery is sent twice."""
    tail = uuid.uuid4().hex
    return f"{ref_}.{tail[:16]}".encode("ascii") if ref_ else tail.encode("ascii")


def normalize(message_id: str) -> str:
    """A Message-ID as stored: trimmed, inside one pair of angle brackets."""
    return "<" + message_id.strip().strip("<>") + ">"


def parse(message_id: str) -> tuple[uuid.UUID, int] | None:
    """The campaign and delivery a Message-ID names, or None for one not sent from here."""
    local = message_id.strip().strip("<>").partition("@")[0]
    parts = local.split(".")
    if len(parts) != 3 or not parts[0].startswith("n"):
        return None
    try:
        return uuid.UUID(hex=parts[0][1:]), int(parts[1])
    except ValueError:
        return None


def find(data: bytes) -> str | None:
    """The Message-ID header of a rendered message, found without parsing the message."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    head = data if end < 0 else data[: end + 2]
    lowered = head.lower()
    if lowered.startswith(b"message-id:"):
        start = 0
    else:
        start = lowered.find(b"\nmessage-id:")
        if start < 0:
            return None
        start += 1
    start += len(b"message-id:")
    stop = head.find(b"\n", start)
    # A folded header continues on lines that start with whitespace.
    while 0 <= stop < len(head) - 1 and head[stop + 1] in b" \t":
        stop = head.find(b"\n", stop + 1)
    value = head[start : stop if stop >= 0 else len(head)]
    text = " ".join(value.decode("ascii", "replace").split())
    return text or None
