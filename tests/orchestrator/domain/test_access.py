from __future__ import annotations

import pytest

from orchestrator.domain.access import (
    AccessError,
    RateLimit,
    Scope,
    format_scopes,
    grants,
    parse_rate,
    parse_scopes,
    validate_key_name,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/s", RateLimit(10, "second")),
        ("10/second", RateLimit(10, "second")),
        ("100 / minute", RateLimit(100, "minute")),
        ("100/m", RateLimit(100, "minute")),
        ("1000/h", RateLimit(1000, "hour")),
        ("5/10s", RateLimit(5, "second", per=10)),
        ("7/days", RateLimit(7, "day")),
    ],
)
def test_rates_parse(text: str, expected: RateLimit) -> None:
    assert parse_rate(text) == expected
    assert parse_rate(str(expected)) == expected  # the stored form reads back


@pytest.mark.parametrize("text", ["", "10", "ten/s", "10/fortnight", "0/s", "5/0s", "-1/s"])
def test_bad_rates_name_the_field(text: str) -> None:
    with pytest.raises(AccessError, match=r"^rate: "):
        parse_rate(text)


def test_scopes_parse_from_a_list_or_commas_in_a_stable_order() -> None:
    assert parse_scopes("submit, read") == {Scope.SUBMIT, Scope.READ}
    assert format_scopes(parse_scopes(["cancel", "read", "submit"])) == [
        "read",
        "submit",
        "cancel",
    ]


@pytest.mark.parametrize("text", ["", ",", "read,write", "ADMIN"])
def test_bad_scopes_name_the_field(text: str) -> None:
    with pytest.raises(AccessError, match=r"^scopes: "):
        parse_scopes(text)


def test_admin_implies_every_scope_and_the_others_only_themselves() -> None:
    assert all(grants(frozenset({Scope.ADMIN}), scope) for scope in Scope)
    read_only = frozenset({Scope.READ})
    assert grants(read_only, Scope.READ)
    assert not grants(read_only, Scope.SUBMIT)
    assert not grants(read_only, Scope.CANCEL)
    assert not grants(read_only, Scope.ADMIN)


@pytest.mark.parametrize("name", ["dashboard", "svc-a", "team.vision_2", "a"])
def test_key_names(name: str) -> None:
    assert validate_key_name(name) == name


@pytest.mark.parametrize("name", ["", "Dash", "-a", "a-", "a b", "x" * 65, "admin", "cli"])
def test_bad_or_reserved_key_names_name_the_field(name: str) -> None:
    with pytest.raises(AccessError, match=r"^name: "):
        validate_key_name(name)
