"""Contact details: email addresses and phone numbers, validated and normalized.

phonenumbers and email_validator decide what is valid; each has a fast path for plainly
written values that reproduces the library's own steps with patterns compiled once, and
hands anything else to the library. The tests compare both on many inputs.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, EmailSyntaxError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    SUPPORTED_REGIONS,
    PhoneMetadata,
    PhoneNumberDesc,
)

CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
_EMAIL_SHAPE = re.compile(
    r"([A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
)
_CASELESS_MAILBOXES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_LONGEST_CASELESS = max(map(len, _CASELESS_MAILBOXES))
_EMAIL_MAX = 254


@functools.lru_cache(maxsize=4096)
def _email_domain(domain: str) -> tuple[str, str] | None:
    """The normalized and ASCII forms email_validator gives a domain; None sends the whole
    address down the slow path (for its exact reason)."""
    try:
        checked = validate_email("a@" + domain, check_deliverability=False)
    except EmailNotValidError:
        return None
    return checked.domain, checked.ascii_domain


def normalize_email(value: str) -> str:
    """email_validator's normalized form of an address; raises EmailNotValidError."""
    shape = _EMAIL_SHAPE.fullmatch(value)
    if shape is not None:
        at = shape.end(1)
        forms = _email_domain(value[at + 1 :])
        if forms is not None:
            local = value[:at]
            # A plain dot-atom local part is kept as written, except RFC 2142 role names.
            if at <= _LONGEST_CASELESS and local.lower() in _CASELESS_MAILBOXES:
                local = local.lower()
            address = f"{local}@{forms[0]}"
            size = len(address) if address.isascii() else len(address.encode())
            if (
                len(value) <= _EMAIL_MAX
                and size <= _EMAIL_MAX
                and at + 1 + len(forms[1]) <= _EMAIL_MAX
            ):
                return address
    if CONTROL_CHARACTERS.search(value):
        raise EmailSyntaxError("The email address contains control characters.")
    return validate_email(value, check_deliverability=False).normalized


_PHONE_START = frozenset("+0123456789")
_UNDECIDED = "undecided"
_CALLING_CODES = {str(code): code for code in COUNTRY_CODE_TO_REGION_CODE}
_MAX_NSN = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


def _validity(
    general: PhoneNumberDesc | None, types: list[tuple[tuple[int, ...], str]], size: int
) -> re.Pattern[str] | None:
    """_is_number_matching_desc of the general desc and of any type, for one length."""
    if (
        general is None
        or not general.national_number_pattern
        or (general.possible_length and size not in general.possible_length)
    ):
        return None
    alternatives = [
        f"(?:{pattern})" for lengths, pattern in types if not lengths or size in lengths
    ]
    if not alternatives:
        return None
    return re.compile(f"(?=(?:{general.national_number_pattern})\\Z)(?:{'|'.join(alternatives)})")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """One region's metadata as phonenumbers' parse() and is_valid_number() use it."""

    country_code: int
    general: re.Pattern[str] | None
    # By length of the national number: "the general pattern matches and so does the pattern
    # of some number type", as one expression (None: no number of that length is valid).
    valid_by_size: tuple[re.Pattern[str] | None, ...]
    lengths: tuple[int, ...]
    local_lengths: frozenset[int]
    prefix: re.Pattern[str] | None
    transform: str | None
    leading: re.Pattern[str] | None
    idd: re.Pattern[str] | None

    @classmethod
    def of(cls, metadata: PhoneMetadata | None) -> _Plan | None:
        if metadata is None or metadata.country_code is None:
            return None
        general = metadata.general_desc
        # _number_type_helper's order; mobile only when its pattern differs from fixed line.
        descs = [
            metadata.premium_rate,
            metadata.toll_free,
            metadata.shared_cost,
            metadata.voip,
            metadata.personal_number,
            metadata.pager,
            metadata.uan,
            metadata.voicemail,
            metadata.fixed_line,
        ]
        if not metadata.same_mobile_and_fixed_line_pattern:
            descs.append(metadata.mobile)
        types = [
            (d.possible_length, d.national_number_pattern)
            for d in descs
            if d is not None and d.national_number_pattern
        ]
        idd = metadata.international_prefix
        return cls(
            country_code=metadata.country_code,
            general=_compile(general.national_number_pattern) if general else None,
            valid_by_size=tuple(_validity(general, types, size) for size in range(_MAX_NSN + 1)),
            lengths=tuple(general.possible_length if general else ()),
            local_lengths=frozenset(general.possible_length_local_only if general else ()),
            prefix=_compile(metadata.national_prefix_for_parsing),
            transform=metadata.national_prefix_transform_rule,
            leading=re.compile(metadata.leading_digits)
            if metadata.leading_digits is not None
            else None,
            idd=re.compile(idd) if idd is not None else None,
        )

    def is_valid(self, nsn: str) -> bool:
        """_number_type_helper(nsn, metadata) != UNKNOWN, for at most _MAX_NSN digits."""
        pattern = self.valid_by_size[len(nsn)]
        return pattern is not None and pattern.fullmatch(nsn) is not None

    def strip_national_prefix(self, number: str) -> str:
        """parse()'s national prefix and carrier code step, kept only when the rest has a
        possible length; _UNDECIDED where the library itself would fail."""
        candidate, prefix = number, self.prefix
        match = prefix.match(number) if prefix is not None and number else None
        if prefix is not None and match is not None:
            general = self.general
            viable = general is not None and general.fullmatch(number) is not None
            groups = match.groups()
            if not self.transform:
                candidate = number[match.end() :]
            elif not groups:
                return _UNDECIDED
            elif groups[-1] is None:
                candidate = number[match.end() :]
            else:
                candidate = prefix.sub(self.transform, number, count=1)
            if viable and (general is None or general.fullmatch(candidate) is None):
                candidate = number
        size, lengths = len(candidate), self.lengths
        if size in self.local_lengths or size < lengths[0]:
            return number
        if size == lengths[0] or size > lengths[-1] or size in lengths[1:]:
            return candidate
        return number


@functools.cache
def _region_plan(region: str) -> _Plan | None:
    return _Plan.of(PhoneMetadata.metadata_for_region(region, None))


@functools.cache
def _calling_code_plan(country_code: int) -> _Plan | None:
    regions = COUNTRY_CODE_TO_REGION_CODE[country_code]
    return _Plan.of(PhoneMetadata.metadata_for_region_or_calling_code(country_code, regions[0]))


@functools.cache
def _number_plans(country_code: int) -> tuple[tuple[str, _Plan | None], ...]:
    """is_valid_number's metadata: (region, plan) for each region sharing the code."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if len(regions) == 1:
        return ((regions[0], _calling_code_plan(country_code)),)
    return tuple((region, _region_plan(region.upper())) for region in regions)


@functools.cache
def _compact_plan(country_code: int) -> tuple[re.Pattern[str] | None, re.Pattern[str]] | None:
    """For a calling code of one region: its national prefix pattern, and the national
    numbers valid for their length as one expression. None where that shortcut does not
    apply (a code shared by several regions)."""
    plans = _number_plans(country_code)
    if len(plans) != 1:
        return None
    region, plan = plans[0]
    if plan is None or not plan.lengths or (region != "001" and plan.country_code != country_code):
        return None
    sizes = [
        f"(?=\\d{{{size}}}\\Z)(?:{pattern.pattern})"
        for size, pattern in enumerate(plan.valid_by_size)
        if pattern is not None and size >= 2
    ]
    return plan.prefix, re.compile("|".join(sizes) or "(?!)")


def _is_valid_number(country_code: int, nsn: str) -> bool:
    """phonenumbers.is_valid_number for a parsed number."""
    plans = _number_plans(country_code)
    if len(plans) == 1:
        region, plan = plans[0]
    else:
        # _region_code_for_number_from_list: leading digits where given, else validity.
        chosen = next(
            (
                pair
                for pair in plans
                if pair[1] is not None
                and (
                    pair[1].leading.match(nsn) is not None
                    if pair[1].leading is not None
                    else pair[1].is_valid(nsn)
                )
            ),
            None,
        )
        if chosen is None:
            return False
        region, plan = chosen
    if plan is None or (region != "001" and plan.country_code != country_code):
        return False
    return plan.is_valid(nsn)


class PhoneNormalizer:
    """E.164 form of a number as phonenumbers parses and validates it, or None."""

    def __init__(self, default_region: str | None) -> None:
        region = default_region.upper() if default_region else None
        if region is not None and region not in SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {default_region!r}")
        self._region = region
        self._home = _region_plan(region) if region else None
        self._home_code = str(self._home.country_code) if self._home else ""

    def e164(self, value: str) -> str | None:
        found = self._fast(value)
        if found is not _UNDECIDED:
            return found
        return None if CONTROL_CHARACTERS.search(value) else self.e164_by_library(value)

    def e164_by_library(self, value: str) -> str | None:
        try:
            number = phonenumbers.parse(value, self._region)
            if not phonenumbers.is_valid_number(number):
                return None
        except Exception:  # the library reads untrusted text: any failure means unusable
            return None
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def _fast(self, value: str) -> str | None:
        # Only a leading "+", digits and the separators " ().-": parse() then sees exactly
        # these digits (no extension, RFC 3966 part or letters can be present).
        if len(value) > 64 or value[0] not in _PHONE_START:
            return _UNDECIDED
        # Written as E.164 already, the common case: with no national prefix to strip, one
        # match decides.
        if (
            value[0] == "+"
            and value.isascii()
            and (digits := value[1:]).isdigit()
            and len(digits) >= 3
            and digits[0] != "0"
        ):
            for size in (1, 2, 3):
                code = _CALLING_CODES.get(digits[:size])
                if code is not None:
                    compact, national = _compact_plan(code), digits[size:]
                    if (
                        compact is not None
                        and len(national) >= 2
                        and (compact[0] is None or compact[0].match(national) is None)
                    ):
                        return value if compact[1].fullmatch(national) else None
                    break
        digits = value.replace("-", "").replace(" ", "")
        if value[0] == "+":
            digits = digits[1:]
        if not (digits.isdigit() and digits.isascii()):
            digits = digits.replace("(", "").replace(")", "").replace(".", "")
            if not (digits.isdigit() and digits.isascii()):
                return _UNDECIDED
        if len(digits) < 3:
            return _UNDECIDED
        if value[0] == "+":
            if digits[0] == "0":
                return _UNDECIDED
            for size in (1, 2, 3):
                found = _CALLING_CODES.get(digits[:size])
                if found is not None:
                    break
            else:
                return _UNDECIDED
            country_code = found
            plan, national = _calling_code_plan(country_code), digits[size:]
        elif self._home is None:
            return None  # no region to read a national number in, as parse() refuses
        else:
            plan, national = self._home, digits
            country_code = plan.country_code
            if (plan.idd is not None and plan.idd.match(digits) is not None) or digits.startswith(
                self._home_code
            ):
                return _UNDECIDED
        if plan is None or not plan.lengths:
            return _UNDECIDED
        if len(national) < 2:
            return None
        national = plan.strip_national_prefix(national)
        if national is _UNDECIDED:
            return _UNDECIDED
        if len(national) < 2 or len(national) > _MAX_NSN:
            return None
        return f"+{country_code}{national}" if _is_valid_number(country_code, national) else None
