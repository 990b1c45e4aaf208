"""Normalisation the matching rules compare on: names, tax ids, emails, phones."""

from __future__ import annotations

import pytest

from concord.identity.normalise import (
    email_domain,
    name_key,
    normalise_email,
    normalise_phone,
    normalise_tax_id,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Acme Corporation", "ACME Corp."),
        ("Acme Corp", "acme"),
        ("Müller & Söhne GmbH", "MULLER UND SOHNE"),
        ("Globex International Ltd", "Globex Intl. Limited"),
        ("The Smith Company", "Smith Co"),
        ("Dupont S.A.", "DUPONT SA"),
        ("Weber GmbH & Co. KG", "Weber"),
    ],
)
def test_name_key_strips_legal_forms_case_and_abbreviations(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)


def test_person_names_ignore_word_order_company_names_keep_it() -> None:
    assert name_key("Schmidt John", True) == name_key("John Schmidt", True)
    assert name_key("Bau Berlin") != name_key("Berlin Bau")


def test_misspelt_long_legal_forms_are_stripped_too() -> None:
    assert name_key("Lucas Software Cokporation") == name_key("Lucas Software")
    assert name_key("Senlu Software Limitd") == "senlu software"


def test_name_key_keeps_a_name_made_only_of_legal_words() -> None:
    assert name_key("Company Limited") != ""


def test_name_key_keeps_distinct_companies_apart() -> None:
    assert name_key("Acme Tools GmbH") != name_key("Acme Foods GmbH")


def test_tax_id_is_validated_and_gets_its_country_prefix() -> None:
    assert normalise_tax_id("de 136.695.976") == "DE136695976"
    assert normalise_tax_id("136695976", "DE") == "DE136695976"
    assert normalise_tax_id("DE136695977") is None  # bad check digit
    assert normalise_tax_id("") is None


def test_free_mail_addresses_do_not_identify_a_company() -> None:
    free = frozenset({"gmail.com"})
    assert normalise_email(" Info@ACME.de ", free) == "info@acme.de"
    assert normalise_email("someone@gmail.com", free) is None
    assert email_domain("x@gmail.com", free) is None
    assert email_domain("x@acme.de", free) == "acme.de"
    assert normalise_email("not-an-email", free) is None


def test_phones_compare_on_their_last_digits() -> None:
    assert normalise_phone("+49 30 1234567") == normalise_phone("030/123 45 67")
    assert normalise_phone("123") is None
