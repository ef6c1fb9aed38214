"""Sealed contact details: they open only in their own row, with a configured key."""

from __future__ import annotations

import base64
import uuid

import pytest

from notifier.sealing import Sealer, SealError, new_data_key, parse_data_keys
from notifier.settings import Settings, SettingsError

CID = uuid.UUID("00000000-0000-4000-8000-000000000001")
LOOKUP = bytes(range(32))


def _sealer(*keys: str) -> Sealer:
    return Sealer(parse_data_keys(",".join(keys)), LOOKUP)


def test_a_sealed_pair_opens_in_its_own_row_only() -> None:
    sealer = _sealer(new_data_key("k1"))
    sealed = sealer.seal(CID, "acct-1", "user@example.com", "+821012345678")
    assert sealed is not None and b"user@example.com" not in sealed and b"1012345678" not in sealed
    assert sealer.open(CID, "acct-1", sealed) == ("user@example.com", "+821012345678")
    with pytest.raises(SealError, match="another row"):
        sealer.open(CID, "acct-2", sealed)
    with pytest.raises(SealError):
        sealer.open(uuid.uuid4(), "acct-1", sealed)
    changed = bytearray(sealed)
    changed[-1] ^= 1
    with pytest.raises(SealError, match="changed"):
        sealer.open(CID, "acct-1", bytes(changed))


def test_either_contact_may_be_absent_and_each_seal_differs() -> None:
    sealer = _sealer(new_data_key("k1"))
    assert sealer.seal(CID, "a", None, None) is None
    only_phone = sealer.seal(CID, "a", None, "+15005550006")
    assert only_phone is not None
    assert sealer.open(CID, "a", only_phone) == (None, "+15005550006")
    assert sealer.seal(CID, "a", "x@example.com", None) != sealer.seal(
        CID, "a", "x@example.com", None
    )


def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    old, new = new_data_key("old"), new_data_key("new")
    before = _sealer(old).seal(CID, "a", "x@example.com", None)
    assert before is not None
    rotated = _sealer(new, old)
    assert rotated.open(CID, "a", before) == ("x@example.com", None)
    after = rotated.seal(CID, "a", "x@example.com", None)
    assert after is not None and after.startswith(rotated.prefix) and b"new" in rotated.prefix
    with pytest.raises(SealError, match="'old', not set"):
        _sealer(new).open(CID, "a", before)


def test_lookup_hashes_are_keyed_and_kind_specific() -> None:
    sealer = _sealer(new_data_key("k1"))
    other = Sealer(parse_data_keys(new_data_key("k1")), bytes(32))
    digest = sealer.lookup("email", "x@example.com")
    assert digest == sealer.lookup("email", "x@example.com") and len(digest or b"") == 16
    assert digest != other.lookup("email", "x@example.com")
    assert digest != sealer.lookup("phone", "x@example.com")
    assert sealer.lookup("phone", None) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "no key"),
        ("nocolon", "id:base64key"),
        ("bad id!:" + base64.b64encode(bytes(32)).decode(), "id:base64key"),
        ("k1:not base64", "base64"),
        ("k1:" + base64.b64encode(bytes(16)).decode(), "32 bytes"),
        (
            f"k1:{base64.b64encode(bytes(32)).decode()},k1:{base64.b64encode(bytes(32)).decode()}",
            "twice",
        ),
    ],
)
def test_bad_keys_are_refused_by_name(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_data_keys(value)


def test_missing_keys_are_named() -> None:
    with pytest.raises(SettingsError, match="NOTIFIER_DATA_KEYS is not set"):
        Sealer.from_settings(Settings())
    with pytest.raises(SettingsError, match="NOTIFIER_LOOKUP_KEY is not set"):
        Sealer.from_settings(Settings(data_keys=new_data_key("k1")))
