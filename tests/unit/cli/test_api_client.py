"""The API client's pure parts: error bodies made readable, URLs, no key in sight."""

from __future__ import annotations

import pytest

from services.cli.api_client import ApiClient, RequestRefused, describe_detail, path_part


def test_rule_errors_read_like_the_match_command() -> None:
    detail = {
        "errors": [
            {"rule_id": "bad", "where": "query", "position": 10, "message": "expected a term"},
            {"rule_id": "x", "where": "severity", "position": None, "message": "unknown"},
        ]
    }
    assert describe_detail(detail) == [
        "rule bad: query at position 10: expected a term",
        "rule x: severity: unknown",
    ]


def test_validation_errors_name_the_field() -> None:
    detail = [
        {"loc": ["body", "filter", "min_severity"], "msg": "Input should be 'info'", "type": "x"},
        {"msg": "line 2 is not valid JSON"},
    ]
    assert describe_detail(detail) == [
        "body.filter.min_severity: Input should be 'info'",
        "line 2 is not valid JSON",
    ]


@pytest.mark.parametrize(
    ("detail", "expected"),
    [("no rule 'x'", ["no rule 'x'"]), (None, ["no detail given"]), (42, ["42"])],
)
def test_other_details_are_shown_as_they_are(detail: object, expected: list[str]) -> None:
    assert describe_detail(detail) == expected


def test_a_refusal_with_one_reason_is_one_line() -> None:
    error = RequestRefused(404, "no rule 'x'")
    assert (error.message, error.lines, error.exit_code) == ("no rule 'x' (404 Not Found)", [], 2)


def test_a_refusal_with_several_reasons_lists_them() -> None:
    error = RequestRefused(422, [{"loc": ["a"], "msg": "m"}, {"loc": ["b"], "msg": "n"}])
    assert error.message == "the API refused the request (422 Unprocessable Entity):"
    assert error.lines == ["a: m", "b: n"]


def test_ids_cannot_escape_their_path_segment() -> None:
    assert path_part("../rules?x=1#y") == "..%2Frules%3Fx%3D1%23y"


def test_the_client_never_shows_its_key() -> None:
    client = ApiClient("http://127.0.0.1:8080/", "na_secret-0123456789abcdef")
    assert "na_secret" not in repr(client)
    assert "na_secret" not in str(vars(client).get("url"))


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="http://host"):
        ApiClient("file:///etc/passwd", "k")
