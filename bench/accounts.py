"""Generated affected accounts as a CSV file, written row by row so memory stays flat.

Every value is made up: addresses on example domains, numbers from ranges that phonenumbers
accepts as valid. About 0.1% of the rows are deliberately bad, spaced evenly and cycling
through four kinds, so the upload's validation has real work to do and its counts can be
checked exactly.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

HEADER = "external_id,email,phone,locale,name,account_tier\n"
BAD_KINDS = ("bad_email", "bad_phone", "missing_id", "duplicate_id")
WRITE_BATCH = 10_000

_KO_FAMILY = "김이박최정강조윤장임한오서신권황안송류홍"
_KO_GIVEN = "민서준지현우은하윤도예수연성진영호재아유"
_ROMAN_FAMILY = ("kim", "lee", "park", "choi", "jung", "kang", "cho", "yoon", "jang", "lim")
_ROMAN_GIVEN = ("minjun", "seoyeon", "jiho", "hayoon", "doyoon", "jiwoo", "seojun", "haeun")
_EN_FIRST = ("Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn")
_EN_LAST = ("Lee", "Park", "Smith", "Brown", "Clark", "Lewis", "Walker", "Young", "Hill")
_JA_FAMILY = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤")
_JA_GIVEN = ("陽翔", "蓮", "結衣", "葵", "湊", "陽菜", "樹", "凛", "悠真", "美咲")
# (domain, cumulative weight)
_DOMAINS = (
    ("example.com", 0.40),
    ("mail.example.co.kr", 0.70),
    ("example.net", 0.85),
    ("example.org", 1.0),
)
_TIERS = (("basic", 0.6), ("plus", 0.9), ("premium", 1.0))
_US_AREAS = ("202", "212", "312", "415", "617")
_JP_PREFIXES = ("90", "80", "70")
# Multiplying by a number coprime with 70,000,000 permutes 0…69,999,999, so the first
# 70 million rows get distinct subscriber numbers that still look scattered.
_SPREAD = 7_368_787
_SUBSCRIBERS = 70_000_000
# First digits of a Korean mobile subscriber number: 5 is left out because phonenumbers
# rejects +82 10 597x… to 599x… (that block is not assigned to mobiles).
_LEADING = "2346789"


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """What an upload of the file to a campaign must report."""

    accepted: int
    rejected: int
    duplicates: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountsFile:
    """A generated file: where it is, how many data rows, and the bad rows by kind."""

    path: Path
    rows: int
    size_bytes: int
    bad: dict[str, int]

    def expected(self, channels: Collection[str]) -> Expected:
        """The upload's counts for a campaign on these channels: a bad email only matters
        when the campaign sends email, a bad phone only when it sends SMS."""
        rejected = self.bad["missing_id"]
        if "email" in channels:
            rejected += self.bad["bad_email"]
        if "sms" in channels:
            rejected += self.bad["bad_phone"]
        duplicates = self.bad["duplicate_id"]
        return Expected(
            accepted=self.rows - rejected - duplicates, rejected=rejected, duplicates=duplicates
        )

    def as_json(self) -> dict[str, object]:
        return {"rows": self.rows, "bytes": self.size_bytes, "bad_rows": dict(self.bad)}


def bad_interval(rows: int) -> int:
    """Every how many rows one is bad: 1 in 1,000, denser in small files so that each kind
    appears at least twice from 8 rows on."""
    return max(2, min(1000, rows // 8))


def _pick(options: tuple[tuple[str, float], ...], x: float) -> str:
    for value, upto in options:
        if x < upto:
            return value
    return options[-1][0]


def _subscriber(i: int) -> str:
    """Eight digits, never starting 0, 1 or 5: valid after +82 10 and after +81 90/80/70."""
    k = (i * _SPREAD) % _SUBSCRIBERS
    return f"{_LEADING[k // 10_000_000]}{k % 10_000_000:07d}"


def phone_for(i: int, x: float) -> str:
    """Row i's number: ~70% Korean E.164, ~15% Korean national format, ~15% US, JP, GB."""
    s = _subscriber(i)
    if x < 0.70:
        return f"+8210{s}"
    if x < 0.85:
        return f"010-{s[:4]}-{s[4:]}"
    kind = i % 3
    if kind == 0:
        return f"+1{_US_AREAS[i % len(_US_AREAS)]}5550{100 + i % 100}"
    if kind == 1:
        return f"+81{_JP_PREFIXES[i % len(_JP_PREFIXES)]}{s}"
    return f"+44740{s[1:]}"


def email_for(i: int, rng: random.Random) -> str:
    """Row i's address: varied local parts, example domains; the row number keeps it unique."""
    first = _ROMAN_GIVEN[rng.randrange(len(_ROMAN_GIVEN))]
    last = _ROMAN_FAMILY[rng.randrange(len(_ROMAN_FAMILY))]
    style = rng.randrange(5)
    if style == 0:
        local = f"{first}.{last}{i}"
    elif style == 1:
        local = f"{first[0]}{last}.{i}"
    elif style == 2:
        local = f"{last}_{first}{i % 97}.{i}"
    elif style == 3:
        local = f"{first}{i}+notice"
    else:
        local = f"user{i:07d}"
    return f"{local}@{_pick(_DOMAINS, rng.random())}"


def _name(locale: str, rng: random.Random) -> str:
    if locale == "ko":
        given = _KO_GIVEN[rng.randrange(20)] + _KO_GIVEN[rng.randrange(20)]
        return _KO_FAMILY[rng.randrange(len(_KO_FAMILY))] + given
    if locale == "ja":
        return _JA_FAMILY[rng.randrange(10)] + " " + _JA_GIVEN[rng.randrange(10)]
    last, first = _EN_LAST[rng.randrange(9)], _EN_FIRST[rng.randrange(9)]
    # Some names hold a comma, so the CSV has quoted values to read too.
    return f'"{last}, {first}"' if rng.random() < 0.3 else f"{first} {last}"


def _lines(rows: int, seed: int, bad: dict[str, int]) -> Iterator[str]:
    rng = random.Random(seed)
    every = bad_interval(rows)
    for i in range(rows):
        x = rng.random()
        locale = "ko" if x < 0.70 else ("en" if x < 0.85 else "ja")
        external_id = f"acct-{i:08d}"
        email = email_for(i, rng)
        phone = phone_for(i, rng.random())
        tier = _pick(_TIERS, rng.random())
        if i % every == every // 2:
            kind = BAD_KINDS[(i // every) % len(BAD_KINDS)]
            bad[kind] += 1
            if kind == "bad_email":
                email = email.replace("@", ".at.")
            elif kind == "bad_phone":
                phone = "+82 10 123"
            elif kind == "missing_id":
                external_id = ""
            else:  # the row before is always a good one, so this is exactly one duplicate
                external_id = f"acct-{i - 1:08d}"
        yield f"{external_id},{email},{phone},{locale},{_name(locale, rng)},{tier}\n"


def write_accounts(path: Path, rows: int, seed: int = 2025) -> AccountsFile:
    """Write `rows` data rows (plus the header) to `path`; the same seed, the same file."""
    bad = dict.fromkeys(BAD_KINDS, 0)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        batch: list[str] = []
        for line in _lines(rows, seed, bad):
            batch.append(line)
            if len(batch) >= WRITE_BATCH:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
    return AccountsFile(path=path, rows=rows, size_bytes=path.stat().st_size, bad=bad)
