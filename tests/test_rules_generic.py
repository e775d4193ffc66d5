"""Rules that apply to every episode, matched or not."""

import pytest

from tests.conftest import audit_long, findings_of

HEADER = "| episode_id | position | code |"


def episode(*codes_: str) -> str:
    return "\n".join([HEADER, *[f"| E1 | {n} | {code} |" for n, code in enumerate(codes_, 1)]])


@pytest.mark.parametrize(
    "sequence, expected",
    [
        (["W371", "Z943"], []),
        (["Y534", "W371"], [("subsidiary-code-primary", None, 1, "error")]),
        (["Z942"], [("subsidiary-code-primary", None, 1, "error")]),
        (["-"], []),
        (["-", "&"], []),
        (["-", "W371", "Z942"], [("no-operation-with-codes", None, 1, "error")]),
        (["W371", "V5"], [("invalid-code", None, 2, "error")]),
        (["W371", "I123", "12345"], [("invalid-code", None, 2, "error"), ("invalid-code", None, 3, "error")]),
        (["&"], []),
    ],
)
def test_generic_rules(tmp_path, sequence, expected):
    assert findings_of(audit_long(tmp_path, episode(*sequence))) == expected


def test_no_operation_message_counts_later_codes(tmp_path):
    result = audit_long(tmp_path, episode("-", "W371", "Z942"))
    assert result.findings["message"].to_list() == ["position 1 says no operation (-) but 2 later position(s) hold codes"]


def test_invalid_code_message_quotes_the_value_and_reason(tmp_path):
    result = audit_long(tmp_path, episode("W371", "I123"))
    assert result.findings["message"].to_list() == [
        "position 2 holds 'I123', which is not an OPCS-4 code: OPCS-4 has no chapter I"
    ]
