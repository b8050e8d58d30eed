"""Phone numbers to E.164: national (French, or Swiss for eCall), ``00``-, ``+``- and bare
international forms; a value that cannot be read as a number is kept as given."""

from __future__ import annotations

import re

import phonenumbers

_PHONE_CHARS = re.compile(r"[\s.\-/()]")
_COUNTRY_CODES = {"FR": "33", "CH": "41"}
_NATIONAL = re.compile(r"0([1-9]\d{8})")
_INTERNATIONAL = re.compile(r"(?:\+|00)?(33|41)([1-9]\d{8})")


def to_e164(value: str | None, region: str = "FR") -> str | None:
    """A phone number in E.164 when it can be read as one, else the value as given (stripped).

    Accepts national (``0612345678``), ``00``-international (``0041791234567``), ``+``-international
    and bare international (``33612345678``) forms. ``region`` is the country of national numbers.
    """
    given = "" if value is None else value.strip()
    if not given:
        return None
    # The forms most callbacks carry, French and Swiss (nine significant digits), read without
    # phonenumbers' full parse: it gives the same answer (a test holds them together). First
    # as given, with no separator to take out (the international forms are longer than the
    # national one, so the order of the two tests below does not matter to them).
    if international := _INTERNATIONAL.fullmatch(given):
        return f"+{international.group(1)}{international.group(2)}"
    digits = _PHONE_CHARS.sub("", given)
    if (national := _NATIONAL.fullmatch(digits)) and region in _COUNTRY_CODES:
        return f"+{_COUNTRY_CODES[region]}{national.group(1)}"
    if international := _INTERNATIONAL.fullmatch(digits):
        return f"+{international.group(1)}{international.group(2)}"
    if digits.startswith("00"):
        candidate = "+" + digits[2:]
    elif digits.startswith("+") or digits.startswith("0"):
        candidate = digits
    elif digits.isdigit() and len(digits) >= 10:
        candidate = "+" + digits
    else:
        return given
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return given
    if not phonenumbers.is_possible_number(number):
        return given
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
