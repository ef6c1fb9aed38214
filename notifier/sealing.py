"""Contact details sealed at rest: authenticated encryption with keys from configuration.

A recipient's email address and phone number are stored together as one sealed value,
AES-256-GCM under the current data key, bound to the campaign and the account id (so a
sealed value moved to another row does not open). Beside it, each contact has a keyed hash
(BLAKE2b under a separate lookup key) that finds or compares a contact without opening
anything; it also tells, without opening, whether a recipient has an email or a phone.

Keys come from two settings:

- NOTIFIER_DATA_KEYS: comma-separated `id:key` pairs, each key 32 bytes in base64. The
  first seals; all of them open. To rotate, put a new key first, keep the old ones, run
  `notifier seal` (which re-seals every row under the first key), then drop the old ones.
- NOTIFIER_LOOKUP_KEY: 32 bytes in base64, for the keyed hashes.

`notifier keys new-data-key` prints a fresh key in the form the settings take.

The layout of a sealed value: version byte 1, key id length, key id (ASCII), a 12-byte
nonce, then the ciphertext of "<email>\\0<phone>" (an absent one empty) with its 16-byte tag.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import uuid
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from notifier.db import Conn, queries
from notifier.settings import Settings, SettingsError

VERSION = 1
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_NONCE = 12
_NONCE_BATCH = 4096


class SealError(Exception):
    """A sealed value that does not open: another key, another row, or changed bytes."""


def _key(name: str, text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name}: a key must be base64") from None
    if len(key) != 32:
        raise SettingsError(f"{name}: a key must be 32 bytes (base64 of 32 random bytes)")
    return key


def parse_data_keys(text: str) -> list[tuple[str, bytes]]:
    """`id:key,id:key` → [(id, key)], the sealing key first."""
    keys: list[tuple[str, bytes]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        key_id, sep, key = part.strip().partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise SettingsError(
                "NOTIFIER_DATA_KEYS: expected id:base64key pairs, comma-separated, each id "
                "1-16 letters, digits, - or _"
            )
        if any(key_id == seen for seen, _ in keys):
            raise SettingsError(f"NOTIFIER_DATA_KEYS: key id {key_id!r} appears twice")
        keys.append((key_id, _key("NOTIFIER_DATA_KEYS", key)))
    if not keys:
        raise SettingsError("NOTIFIER_DATA_KEYS: no key given")
    return keys


def new_data_key(key_id: str) -> str:
    """A fresh key as NOTIFIER_DATA_KEYS takes it."""
    if not _KEY_ID.match(key_id):
        raise SettingsError("a key id is 1-16 letters, digits, - or _")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def with_local_keys(settings: Settings) -> Settings:
    """The settings, with fresh random keys where none are configured: for the demo, the
    benchmark and the tests, whose data lives only as long as the run."""
    return settings.replace(
        data_keys=settings.data_keys or new_data_key("local"),
        lookup_key=settings.lookup_key or base64.b64encode(secrets.token_bytes(32)).decode(),
    )


class Sealer:
    """Seals and opens contact pairs, and computes their keyed hashes."""

    def __init__(self, keys: Sequence[tuple[str, bytes]], lookup_key: bytes) -> None:
        if not keys:
            raise ValueError("at least one data key")
        self._current_id = keys[0][0]
        self._current = AESGCM(keys[0][1])
        self._prefix = bytes([VERSION, len(self._current_id)]) + self._current_id.encode()
        self._opening = {key_id.encode(): AESGCM(key) for key_id, key in keys}
        # Keyed once; each lookup hashes on a copy (cheaper than keying every time).
        self._lookup = hashlib.blake2b(key=lookup_key, digest_size=16)
        # Random nonces drawn from the OS in bulk, one system call per _NONCE_BATCH seals.
        self._nonces = b""
        self._next_nonce = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer:
        """The sealer the settings describe; names the missing setting if there is none."""
        if not settings.data_keys:
            raise SettingsError(
                "NOTIFIER_DATA_KEYS is not set: contact details are stored encrypted, and "
                "`notifier keys new-data-key` prints a key to set it to"
            )
        if not settings.lookup_key:
            raise SettingsError(
                "NOTIFIER_LOOKUP_KEY is not set: 32 random bytes in base64 "
                "(`notifier keys new-data-key` prints some)"
            )
        return cls(
            parse_data_keys(settings.data_keys), _key("NOTIFIER_LOOKUP_KEY", settings.lookup_key)
        )

    @property
    def prefix(self) -> bytes:
        """How every value sealed under the current key begins."""
        return self._prefix

    @staticmethod
    def _bound_to(campaign_id: uuid.UUID, external_id: str) -> bytes:
        return campaign_id.bytes + external_id.encode()

    def seal(
        self, campaign_id: uuid.UUID, external_id: str, email: str | None, phone: str | None
    ) -> bytes | None:
        """The sealed pair, or None when there is neither."""
        if email is None and phone is None:
            return None
        if self._next_nonce >= len(self._nonces):
            self._nonces, self._next_nonce = os.urandom(_NONCE * _NONCE_BATCH), 0
        nonce = self._nonces[self._next_nonce : self._next_nonce + _NONCE]
        self._next_nonce += _NONCE
        plain = f"{email or ''}\0{phone or ''}".encode()
        bound = self._bound_to(campaign_id, external_id)
        return self._prefix + nonce + self._current.encrypt(nonce, plain, bound)

    def open(
        self, campaign_id: uuid.UUID, external_id: str, sealed: bytes
    ) -> tuple[str | None, str | None]:
        """(email, phone) from a sealed value; SealError if it does not open."""
        if len(sealed) < 2 or sealed[0] != VERSION:
            raise SealError("not a sealed value of a known version")
        end = 2 + sealed[1]
        aead = self._opening.get(sealed[2:end])
        if aead is None:
            raise SealError(f"sealed with key {sealed[2:end].decode(errors='replace')!r}, not set")
        try:
            plain = aead.decrypt(
                sealed[end : end + _NONCE],
                sealed[end + _NONCE :],
                self._bound_to(campaign_id, external_id),
            )
        except InvalidTag:
            raise SealError("the sealed value does not open (changed, or another row's)") from None
        email, _, phone = plain.decode().partition("\0")
        return email or None, phone or None

    def lookup(self, kind: str, value: str | None) -> bytes | None:
        """The keyed hash of one contact ("email" or "phone"), 16 bytes; None for none."""
        if value is None:
            return None
        digest = self._lookup.copy()
        digest.update(f"{kind}:{value}".encode())
        return digest.digest()


async def reseal(conn: Conn, sealer: Sealer, *, batch: int = 5000) -> tuple[int, int]:
    """Seal every recipient still in plaintext, and re-seal under the current key every one
    sealed under an older key, a batch per transaction. Returns (were plaintext, re-sealed)."""
    plain = resealed = 0
    after: tuple[uuid.UUID, int] = (uuid.UUID(int=0), 0)
    while True:
        rows = await conn.fetch(queries["to_seal"], *after, sealer.prefix, batch)
        if not rows:
            return plain, resealed
        ids: list[uuid.UUID] = []
        numbers: list[int] = []
        sealed: list[bytes | None] = []
        email_hashes: list[bytes | None] = []
        phone_hashes: list[bytes | None] = []
        for row in rows:
            cid, external_id = row["campaign_id"], row["external_id"]
            if row["contact_sealed"] is not None:
                email, phone = sealer.open(cid, external_id, row["contact_sealed"])
                resealed += 1
            else:
                email, phone = row["email"], row["phone"]
                plain += 1
            ids.append(cid)
            numbers.append(row["id"])
            sealed.append(sealer.seal(cid, external_id, email, phone))
            email_hashes.append(sealer.lookup("email", email))
            phone_hashes.append(sealer.lookup("phone", phone))
        await conn.execute(
            queries["store_sealed"], ids, numbers, sealed, email_hashes, phone_hashes
        )
        after = (rows[-1]["campaign_id"], rows[-1]["id"])
