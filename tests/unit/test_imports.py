"""Recipient uploads: what is accepted, what is refused and why, by line, at any chunking."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import AsyncIterator, Iterable, Iterator

import orjson
import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from notifier.contacts import _UNDECIDED, PhoneNormalizer, normalize_email
from notifier.errors import MalformedUpload
from notifier.imports.rows import MAX_ERRORS, RecipientRules, Row
from notifier.imports.upload import RecipientImport

RULES = RecipientRules(
    channels=frozenset({"email", "sms"}),
    locales=frozenset({"ko", "en", "zh-Hant"}),
    default_locale="ko",
    default_region="KR",
    variables=frozenset({"name"}),
)
SMS_ONLY = RecipientRules(
    channels=frozenset({"sms"}), locales=frozenset({"ko"}), default_locale="ko", default_region="KR"
)
HEADER = "external_id,email,phone,locale,name\n"


def mobile(i: int) -> str:
    """A Korean mobile number phonenumbers accepts, distinct for each i < 10**7."""
    return f"+8210{20_000_000 + i:08d}"


async def pieces(data: bytes, size: int | None = None) -> AsyncIterator[bytes]:
    step = size or max(len(data), 1)
    for start in range(0, len(data), step):
        yield data[start : start + step]


async def read(
    data: bytes | str, fmt: str = "csv", rules: RecipientRules = RULES, size: int | None = None
) -> tuple[list[Row], RecipientImport]:
    raw = data.encode() if isinstance(data, str) else data
    upload = RecipientImport(pieces(raw, size), fmt, rules)
    rows = [row async for row in upload.rows()]
    assert upload.accepted_candidates == len(rows)
    return rows, upload


async def refused(
    data: bytes | str, fmt: str = "csv", rules: RecipientRules = RULES, size: int | None = None
) -> str:
    """The reason a whole upload is refused; it must be refused before any row is yielded."""
    raw = data.encode() if isinstance(data, str) else data
    upload = RecipientImport(pieces(raw, size), fmt, rules)
    rows = upload.rows()
    with pytest.raises(MalformedUpload) as caught:
        await anext(rows)
    return caught.value.detail


# Accepted rows.


async def test_valid_rows_come_out_normalized_with_their_line_numbers() -> None:
    rows, upload = await read(
        HEADER
        + "a1,User.One@EXAMPLE.com,+82 10-2000-0001,,Kim\n"
        + "a2,,010-2000-0002,ko-KR,Lee\n"
        + "a3,three@example.com,,ZH-hant-tw,Park\n"
        + "a4,,+1 (415) 555-0134,en,Choi\n"
    )
    assert rows == [
        (2, "a1", "User.One@example.com", "+821020000001", "ko", '{"name":"Kim"}'),
        (3, "a2", None, "+821020000002", "ko", '{"name":"Lee"}'),
        (4, "a3", "three@example.com", None, "zh-Hant", '{"name":"Park"}'),
        (5, "a4", None, "+14155550134", "en", '{"name":"Choi"}'),
    ]
    assert (upload.rejected, upload.errors) == (0, [])


async def test_short_rows_read_missing_values_as_empty_and_columns_may_be_absent() -> None:
    rules = RecipientRules(
        channels=frozenset({"email"}), locales=frozenset({"ko"}), default_locale="ko"
    )
    rows, upload = await read("email,external_id\nx@example.com,a1\ny@example.com\n", rules=rules)
    assert rows == [(2, "a1", "x@example.com", None, "ko", "{}")]
    assert upload.errors == [{"line": 3, "message": "external_id: missing"}]


async def test_contacts_for_channels_the_campaign_does_not_use_are_not_stored() -> None:
    rows, _ = await read(
        f"external_id,email,phone\na1,not-an-address,{mobile(1)}\n", rules=SMS_ONLY
    )
    assert rows == [(2, "a1", None, mobile(1), "ko", "{}")]


async def test_undeclared_columns_are_neither_checked_as_variables_nor_stored() -> None:
    rows, _ = await read(f"external_id,phone,name,notes\na1,{mobile(1)},Kim,free text\n")
    assert rows[0][5] == '{"name":"Kim"}'


# Rejected rows: counted, reported by line, never the whole upload.

LONG = "x" * 1001
REJECTIONS = [
    (f",a@example.com,{mobile(1)},ko,n", "external_id: missing"),
    (f"   ,a@example.com,{mobile(1)},ko,n", "external_id: missing"),
    (f"{'i' * 256},a@example.com,,ko,n", "external_id: longer than 255 characters"),
    ("a1,,,ko,n", "no email or phone for this campaign's channels"),
    (f"a1,not-an-address,{mobile(1)},ko,n", "email: An email address must have an @-sign."),
    (
        f'a1,"a@example.com\r\nBcc: b@example.com",{mobile(1)},ko,n',
        "email: The email address contains control characters.",
    ),
    ("a1,a@example.com,12345,ko,n", "phone: not a valid number"),
    ("a1,a@example.com,010-9,ko,n", "phone: not a valid number"),
    ("a1,a@example.com,+82 10 1234 5678 ext 9\x0b,ko,n", "phone: not a valid number"),
    ("a1,a@example.com,,fr,n", "locale: no template for 'fr'"),
    ("a1,a@example.com,,de-DE,n", "locale: no template for 'de-DE'"),
    (f"a1,a@example.com,,ko,{LONG}", "name: value longer than 1000 characters"),
    (f"a1,a@example.com,,ko,n,{LONG}", "6 values but the header has 5 columns"),
    ("a1,a@example.com,,ko,n,extra", "6 values but the header has 5 columns"),
    ("a1,a@example.com,,ko,n\x00m", "name: contains a NUL character"),
    (
        'a1,a@example.com,,ko,"n"""x\ry',
        "not valid CSV (new-line character seen in "
        "unquoted field - do you need to open the file with newline=''?)",
    ),
]


@pytest.mark.parametrize(("row", "message"), REJECTIONS)
async def test_each_rejection_names_its_reason_and_line(row: str, message: str) -> None:
    good = f"ok,ok@example.com,{mobile(2)},ko,n\n"
    rows, upload = await read(HEADER + good + row + "\n" + good)
    assert [r[0] for r in rows] == [2, 4 + row.count("\n")]
    assert upload.rejected == 1
    assert upload.errors[0]["line"] == 3
    assert upload.errors[0]["message"].startswith(message.split(" (")[0])


async def test_an_invalid_email_refuses_the_row_even_when_the_phone_is_fine() -> None:
    rows, upload = await read(HEADER + f"a1,user@@example.com,{mobile(1)},ko,n\n")
    assert rows == []
    assert upload.errors[0]["message"].startswith("email: ")


async def test_a_line_that_is_not_utf8_refuses_only_its_record() -> None:
    data = (
        (HEADER + "a1,a@example.com,,ko,n\n").encode()
        + b"a2,b@example.com,,ko,\xff\xfe\n"
        + b'a3,c@example.com,,ko,"two\n'
        + b'lines \xc3"\n'
        + "a4,d@example.com,,ko,한\n".encode()
    )
    for size in (None, 1, 5):
        rows, upload = await read(data, size=size)
        assert [r[0] for r in rows] == [2, 6]
        assert upload.errors == [
            {"line": 3, "message": "not valid UTF-8"},
            {"line": 4, "message": "not valid UTF-8"},
        ]


async def test_a_megabyte_value_is_one_rejected_row() -> None:
    big = "v" * (1024 * 1024 - 100)
    rows, upload = await read(
        HEADER + f"a1,a@example.com,,ko,{big}\na2,b@example.com,,ko,n\n", size=64 * 1024
    )
    assert [r[1] for r in rows] == ["a2"]
    assert upload.errors == [{"line": 2, "message": "name: value longer than 1000 characters"}]


@pytest.mark.parametrize("size", [None, 64 * 1024, 1000])
async def test_a_line_over_a_megabyte_is_skipped_and_reading_goes_on(size: int | None) -> None:
    big = "v" * (1024 * 1024 + 10)
    rows, upload = await read(
        HEADER + f"a1,a@example.com,,ko,{big}\na2,b@example.com,,ko,n\n", size=size
    )
    assert [(r[0], r[1]) for r in rows] == [(3, "a2")]
    assert upload.errors == [{"line": 2, "message": "longer than 1024 KB"}]


async def test_a_long_line_right_after_a_record_split_over_chunks_is_only_that_line() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield (HEADER + 'a1,a@example.com,,ko,"two\n').encode()
        yield b'lines"\n' + b"v" * 1000
        for _ in range(20):
            yield b"v" * 64 * 1024
        yield b"\na2,b@example.com,,ko,n\n"

    upload = RecipientImport(body(), "csv", RULES)
    rows = [row async for row in upload.rows()]
    assert [(r[0], r[1], r[5]) for r in rows] == [
        (2, "a1", '{"name":"two\\nlines"}'),
        (5, "a2", '{"name":"n"}'),
    ]
    assert upload.errors == [{"line": 4, "message": "longer than 1024 KB"}]


async def test_a_quote_left_open_at_the_end_refuses_that_record_only() -> None:
    rows, upload = await read(HEADER + 'a1,a@example.com,,ko,n\na2,b@example.com,,ko,"open\nx\n')
    assert [r[1] for r in rows] == ["a1"]
    assert upload.errors == [
        {"line": 3, "message": "a quoted value is not closed before the end of the file"}
    ]


async def test_a_quote_left_open_for_over_a_megabyte_refuses_the_upload() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield (HEADER + 'a1,a@example.com,,ko,"never closed\n').encode()
        for _ in range(40):
            yield b"filler line without any quote character\n" * 1000

    upload = RecipientImport(body(), "csv", RULES)
    with pytest.raises(MalformedUpload, match="line 2: a record runs past 1024 KB"):
        async for _ in upload.rows():
            pass


async def test_sms_only_campaigns_refuse_rows_with_only_an_email() -> None:
    rows, upload = await read(
        f"external_id,email,phone\na1,a@example.com,\na2,,{mobile(2)}\n", rules=SMS_ONLY
    )
    assert [r[1] for r in rows] == ["a2"]
    assert upload.errors == [
        {"line": 2, "message": "no email or phone for this campaign's channels"}
    ]


# Chunking, line endings, byte order mark.


def sample_csv(newline: str) -> bytes:
    text = (
        newline.join(
            [
                "\ufeffexternal_id,email,phone,locale,name",
                f"k1,한글@example.com,{mobile(1)},ko,김철수",
                f'k2,b@example.com,,en,"multi{newline}line, with comma and ""quotes"""',
                "k3,bad-email,,ko,이영희",
                "",
                f'"k4",d@example.com,"{mobile(4)}",zh-Hant-TW,"{newline}{newline}"',
                "k5,e@example.com,,ko,끝",
            ]
        )
        + newline
    )
    return text.encode()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
async def test_every_chunking_gives_the_same_result(newline: str) -> None:
    data = sample_csv(newline)
    expected, upload = await read(data)
    assert [r[:2] for r in expected] == [(2, "k1"), (3, "k2"), (7, "k4"), (10, "k5")]
    assert orjson.loads(expected[1][5]) == {"name": f'multi{newline}line, with comma and "quotes"'}
    assert orjson.loads(expected[2][5]) == {"name": newline * 2}
    assert expected[0][2] == "한글@example.com"
    assert upload.errors == [{"line": 5, "message": upload.errors[0]["message"]}]
    for size in (1, 2, 3, 4, 7, 13, 64):
        rows, again = await read(data, size=size)
        assert rows == expected, size
        assert again.errors == upload.errors


async def test_a_chunk_boundary_inside_a_character_or_the_byte_order_mark_is_harmless() -> None:
    data = b"\xef\xbb\xbf" + f"external_id,phone,name\n가,{mobile(1)},나다\n".encode()
    for size in range(1, 8):
        rows, _ = await read(data, size=size)
        assert rows == [(2, "가", None, mobile(1), "ko", '{"name":"나다"}')]


# Whole-upload failures, raised before any row.


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the upload is empty"),
        (b"\xef\xbb\xbf", "the upload is empty"),
        (b"\n\r\n\n", "the upload is empty"),
        (b"a1,a@example.com,x,ko\n", "with an 'external_id' column"),
        (b"email,phone\nx@example.com,\n", "with an 'external_id' column"),
        (b"external_id,email,Email,name\n", "the header repeats column 'email'"),
        (b"external_id,email,name,name\n", "the header repeats column 'name'"),
        (b"external_id,email,,name\n", "header column 3 has no name"),
        (b"external_id,email\n", "the header lacks columns the templates use: name"),
        (b"external_id,name,other\n", "the header has no 'email' or 'phone' column"),
        (b"external_id,\xff\xfeemail,name\n", "line 1: the file is not UTF-8 text"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd\xc9\xc9\x07\x00", "not UTF-8"),
        (b'external_id,"email\n' + b"x" * 70_000, "longer than 64 KB"),
        (b'"external_id,email,name\n', "a quoted value is not closed before the end of the file"),
        (
            ("external_id,email,name," + ",".join(f"c{i}" for i in range(10_000)) + "\n").encode(),
            "the header has 10003 columns; at most 200 are allowed",
        ),
        (
            ("external_id,email,name," + ",".join(f"column_{i:05}" for i in range(6000))).encode(),
            "longer than 64 KB",
        ),
        (("external_id,email,name," + "c" * 70_000 + "\n").encode(), "longer than 64 KB"),
    ],
)
async def test_unreadable_files_are_refused_whole(data: bytes, reason: str) -> None:
    for size in (None, 3):
        assert reason in await refused(data, size=size)


async def test_sms_only_campaigns_need_a_phone_column() -> None:
    assert "no 'phone' column" in await refused(b"external_id,email\n", rules=SMS_ONLY)


# NDJSON.


async def test_ndjson_rows_lines_and_reasons() -> None:
    lines = [
        {"external_id": "n1", "email": "a@example.com", "name": "Kim"},
        {"external_id": 42, "phone": 821020000002, "locale": "en", "name": 1.5},
        {"external_id": "n3", "email": None, "phone": mobile(3)},
        {"external_id": "n4", "email": "a@example.com", "name": True},
        {"external_id": "n5", "email": "a@example.com", "name": {"first": "x"}},
        [1, 2],
        {"external_id": "n7", "email": "a@example.com", "name": "a\u0000b"},
        {"external_id": "n8", "email": "a@example.com", "name": "x" * 1001},
    ]
    body = b"\n".join(orjson.dumps(line) for line in lines[:3]) + b"\n\n   \r\n"
    body += b"\n".join(orjson.dumps(line) for line in lines[3:]) + b"\n{not json\n"
    body += b'{"external_id": "\xff"}\r\n' + orjson.dumps(lines[0]) + b"\r\n"
    for size in (None, 1, 10):
        rows, upload = await read(body, "ndjson", size=size)
        assert rows == [
            (1, "n1", "a@example.com", None, "ko", '{"name":"Kim"}'),
            (2, "42", None, "+821020000002", "en", '{"name":"1.5"}'),
            (3, "n3", None, mobile(3), "ko", '{"name":""}'),
            (13, "n1", "a@example.com", None, "ko", '{"name":"Kim"}'),
        ]
        assert upload.errors == [
            {"line": 6, "message": "name: must be a string or a number"},
            {"line": 7, "message": "name: must be a string or a number"},
            {"line": 8, "message": "not a JSON object"},
            {"line": 9, "message": "name: contains a NUL character"},
            {"line": 10, "message": "name: value longer than 1000 characters"},
            {"line": 11, "message": "not a JSON object"},
            {"line": 12, "message": "not valid UTF-8"},
        ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the upload is empty"),
        (b"\n \n", "the upload is empty"),
        (b'[{"external_id": "a"}]\n', "line 1 is not a JSON object"),
        (b"\n\x89PNG\r\n\x1a\n\x00\x00", "line 2 is not valid UTF-8"),
        (b"external_id,email\na,b@example.com\n", "line 1 is not a JSON object"),
    ],
)
async def test_unreadable_ndjson_is_refused_whole(data: bytes, reason: str) -> None:
    assert reason in await refused(data, "ndjson")


# Memory and error bounds.


async def test_two_hundred_thousand_rows_stream_in_bounded_memory() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield HEADER.encode()
        for block in range(200):
            lines = []
            for i in range(block * 1000, block * 1000 + 1000):
                phone = mobile(i) if i % 2 else "not a number"
                lines.append(f"id{i},,{phone},ko,Customer {i}\n")
            yield "".join(lines).encode()

    upload = RecipientImport(body(), "csv", RULES)
    accepted = 0
    try:
        async for _ in upload.rows():
            accepted += 1
            if accepted == 75_000:
                # Errors are capped by now: from here on, nothing may pile up.
                tracemalloc.start()
                baseline = tracemalloc.get_traced_memory()[0]
        grown, peak = (m - baseline for m in tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()
    assert (accepted, upload.rejected) == (100_000, 100_000)
    assert len(upload.errors) == MAX_ERRORS
    assert upload.errors[-1] == {"line": 2 * MAX_ERRORS, "message": "phone: not a valid number"}
    assert grown < 256 * 1024
    assert peak < 4 * 1024 * 1024


def test_unknown_formats_and_regions_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        RecipientImport(pieces(b""), "xlsx", RULES)
    with pytest.raises(ValueError):
        PhoneNormalizer("XX")


# The fast paths give exactly the libraries' answers.


FULL_WIDTH = {ord(digit): ord(digit) + 0xFEE0 for digit in "0123456789"}


def phone_inputs(rnd: random.Random) -> Iterator[str]:
    kinds = [
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.VOIP,
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.UAN,
    ]
    formats = (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in kinds:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for fmt in formats:
                text = phonenumbers.format_number(example, fmt)
                yield text
                yield text[:-1]
                yield text + str(rnd.randrange(10))
                positions = [i for i, c in enumerate(text) if c.isdigit()]
                for _ in range(2):
                    i = rnd.choice(positions)
                    yield text[:i] + str(rnd.randrange(10)) + text[i + 1 :]
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        for size in (6, 8, 10, 12):
            yield f"+{code}" + "".join(str(rnd.randrange(10)) for _ in range(size))
    for size in range(1, 19):
        for _ in range(10):
            digits = "".join(str(rnd.randrange(10)) for _ in range(size))
            yield from (digits, "+" + digits, "0" + digits, "00" + digits)
    yield from [
        "+0101234567",
        "+999 1234 5678",
        "00 82 10 2000 0001",
        "0082 10 2000 0001",
        "82 10",
        "8210 2000 0001",
        "+82 010-2000-0001",
        "(02) 1234-5678",
        "1.2.3",
        "+1 (415) 555-0100",
        "010-0000-0000",
        "12",
        "+12",
        "+1-",
        "1 415 555 0100",
        "+44 (0) 20 7946 0018",
        "+39 06 1234 5678",
        "+800 1234 5678",
        "+7 (495) 123-45-67",
        "8 (495) 123-45-67",
        "0 10 2000 0001",
        "+82 2 1234 5678",
        "02-123-4567",
        "-010-2000-0001",
        "010-2000-0001-",
        "010..2000..0001",
        "+ 82 10 2000 0001",
        "+(82)1020000001",
        "+82+1020000001",
        "010-2000-0001".translate(FULL_WIDTH),
        "010-2000-0001 ext. 12",
        "tel:+82-10-2000-0001",
        "+82 10 2000 0001;ext=1",
        "1-800-FLOWERS",
        "+1 800 356 9377#",
    ]


def test_phone_fast_path_matches_phonenumbers_exactly() -> None:
    inputs = list(dict.fromkeys(phone_inputs(random.Random(7))))
    decided = 0
    for region in (None, "KR", "US", "GB", "IT", "BR", "RU", "AU"):
        normalizer = PhoneNormalizer(region)
        for value in inputs:
            fast = normalizer._fast(value)
            if fast is _UNDECIDED:
                continue
            decided += 1
            assert fast == normalizer.e164_by_library(value), (region, value)
    assert decided > len(inputs) * 6


def test_plain_korean_and_us_numbers_take_the_fast_path() -> None:
    normalizer = PhoneNormalizer("KR")
    for value in (
        "+82 10-2000-0001",
        "010-2000-0001",
        "01020000001",
        "+1 415-555-0134",
        "+1 (415) 555-0134",
        "02-2123-4567",
    ):
        assert normalizer._fast(value) is not _UNDECIDED
        assert normalizer._fast(value) == normalizer.e164_by_library(value)


def email_inputs(rnd: random.Random) -> Iterable[str]:
    domains = [
        "example.com",
        "EXAMPLE.COM",
        "Mail.Example.Co.KR",
        "xn--bcher-kva.example",
        "xn--3e0b707e.kr",
        "mail.local",
        "a.test",
        "b.invalid",
        "localhost",
        "x.onion",
        "a.b.123",
        "-a.com",
        "a-.com",
        "ab--cd.com",
        "xn--abc.com",
        "a" * 63 + ".com",
        "a" * 64 + ".com",
        ".".join(["abcdefghi"] * 25) + ".com",
        "sub.example.arpa",
        "x.y",
        "1.2.3.4",
        "a_b.com",
        "example.c0m",
        "xn--9n2bp8q.xn--9t4b11yi5a",
        "xn--zz.com",
        "한국.kr",
    ]
    locals_ = [
        "user1",
        "Info",
        "POSTMASTER",
        "abuse",
        "a.b",
        "a..b",
        ".a",
        "a.",
        "A+tag",
        "-x",
        "x_y",
        "o'brien",
        "a" * 64,
        "a" * 65,
        "a" * 240,
        '"quoted"',
        "사용자",
        "Security",
        "WWW.x",
    ]
    yield from (f"{local}@{domain}" for local in locals_ for domain in domains)
    for _ in range(3000):
        local = "".join(rnd.choice("abcXYZ019_+-.") for _ in range(rnd.randint(1, 12)))
        yield f"{local}@{rnd.choice(domains)}"
    yield from [
        "a@b@c.com",
        "@x.com",
        "x@",
        "x",
        "a @x.com",
        "a@x.com ",
        "a\x00@x.com",
        "a@x.com\r\nBcc: y@x.com",
        "a@[1.2.3.4]",
        "<a@x.com>",
        "A <a@x.com>",
    ]


def test_email_fast_path_matches_email_validator_exactly() -> None:
    for value in email_inputs(random.Random(3)):
        try:
            expected: str | None = validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError:
            expected = None
        try:
            got: str | None = normalize_email(value)
        except EmailNotValidError:
            got = None
        assert got == expected, value
