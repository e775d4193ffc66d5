"""Guidance rules over index-code occurrences: each fires, and each stays quiet on good coding."""

import pytest

from tests.conftest import audit_long, findings_of, status_of

HEADER = "| episode_id | position | code | procedure_date |"


def episode(*codes_: str, date: str = "2012-03-14", episode_id: str = "E1") -> str:
    rows = [f"| {episode_id} | {n} | {code} | {date} |" for n, code in enumerate(codes_, 1)]
    return "\n".join([HEADER, *rows])


def test_compliant_ipg319_has_no_findings(tmp_path):
    result = audit_long(tmp_path, episode("V522", "V551", "Y102", "Y534", "Z992"))
    assert findings_of(result) == []
    assert status_of(result, "E1", "IPG319") == "compliant"


@pytest.mark.parametrize(
    "sequence, expected",
    [
        # levels-not-second: V55 must directly follow the index code.
        (["V522", "Y102", "Y534", "Z992"], [("levels-not-second", "IPG319", 2, "error")]),
        (["V522"], [("approach-missing", "IPG319", 1, "error"), ("levels-not-second", "IPG319", 1, "error"),
                    ("method-missing", "IPG319", 1, "error"), ("site-missing", "IPG319", 1, "error")]),
        (["V522", "V559", "Y102", "Y534", "Z992"], [("levels-unspecified", "IPG319", 2, "warning")]),
        # approach: Y53 among the qualifiers; inherent for IPG319, so an error. Y68 is accepted only
        # where a source allows it (IPG421, PCSK1), not for IPG319.
        (["V522", "V551", "Y102", "Z992"], [("approach-missing", "IPG319", 1, "error")]),
        (["V522", "V551", "Y102", "Y681", "Z992"], [("approach-missing", "IPG319", 1, "error")]),
        (["V522", "V551", "Y102", "Y539", "Z992"], [("approach-unspecified", "IPG319", 4, "warning")]),
        (["V522", "V551", "Y534", "Z992"], [("method-missing", "IPG319", 1, "error")]),
        # site: any Chapter Z site (not Z94 laterality) is required; Z99 is only recommended.
        (["V522", "V551", "Y102", "Y534"], [("site-missing", "IPG319", 1, "error")]),
        (["V522", "V551", "Y102", "Y534", "Z942"], [("site-missing", "IPG319", 1, "error")]),
        (["V522", "V551", "Y102", "Y534", "Z676"], [("site-not-recommended", "IPG319", 5, "warning")]),
        (["V522", "V551", "Y102", "Y534", "Z992", "Z942"], []),
        # qualifier-order: V55, then Y, then Z site, then Z94.
        (["V522", "V551", "Y102", "Z992", "Y534"], [("qualifier-order", "IPG319", 5, "error")]),
        (["V522", "V551", "Y102", "Y534", "Z942", "Z992"], [("qualifier-order", "IPG319", 6, "error")]),
    ],
)
def test_ipg319_rules(tmp_path, sequence, expected):
    assert findings_of(audit_long(tmp_path, episode(*sequence))) == expected


@pytest.mark.parametrize(
    "sequence, expected, status",
    [
        (["V401", "V552", "Y534", "Z676"], [], "compliant"),
        # Done open: image control may be absent, so only a warning.
        (["V401", "V552", "Z676"], [("approach-missing", "IPG366", 1, "warning")], "compliant"),
        (["V401", "V552", "Y534"], [("site-missing", "IPG366", 1, "error")], "non-compliant"),
        (["V401", "Y534", "Z676"], [("levels-not-second", "IPG366", 2, "error")], "non-compliant"),
    ],
)
def test_ipg366_rules(tmp_path, sequence, expected, status):
    result = audit_long(tmp_path, episode(*sequence))
    assert (findings_of(result), status_of(result, "E1", "IPG366")) == (expected, status)


def test_index_code_away_from_position_one(tmp_path):
    result = audit_long(tmp_path, """
        | episode_id | position | code  | procedure_date |
        | E1         | 1        | W37.1 | 2012-03-14     |
        | E1         | 2        | Z94.3 | 2012-03-14     |
        | E1         | 3        | V52.2 | 2012-03-14     |
        | E1         | 4        | V55.1 | 2012-03-14     |
        | E1         | 5        | Y10.2 | 2012-03-14     |
        | E1         | 6        | Y53.4 | 2012-03-14     |
        | E1         | 7        | Z99.2 | 2012-03-14     |
    """)
    assert findings_of(result) == []
    assert status_of(result, "E1", "IPG319") == "compliant"


def test_two_guidances_in_one_episode_are_judged_apart(tmp_path):
    # The qualifiers of V52.2 stop at the next action code, V40.1: V52.2 has no site of its own.
    result = audit_long(tmp_path, """
        | episode_id | position | code  | procedure_date |
        | E1         | 1        | V52.2 | 2012-03-14     |
        | E1         | 2        | V55.1 | 2012-03-14     |
        | E1         | 3        | Y10.2 | 2012-03-14     |
        | E1         | 4        | Y53.4 | 2012-03-14     |
        | E1         | 5        | V40.1 | 2012-03-14     |
        | E1         | 6        | V55.2 | 2012-03-14     |
        | E1         | 7        | Y53.4 | 2012-03-14     |
        | E1         | 8        | Z67.6 | 2012-03-14     |
    """)
    assert findings_of(result) == [("site-missing", "IPG319", 1, "error")]
    assert status_of(result, "E1", "IPG319") == "non-compliant"
    assert status_of(result, "E1", "IPG366") == "compliant"


def test_each_occurrence_is_checked(tmp_path):
    result = audit_long(tmp_path, episode("V522", "V551", "Y102", "Y534", "Z992", "V522", "V552", "Y102", "Z992"))
    assert findings_of(result) == [("approach-missing", "IPG319", 6, "error")]


def test_episode_without_index_code_matches_nothing(tmp_path):
    result = audit_long(tmp_path, episode("W371", "V551", "Y534", "Z943"))
    assert result.episodes.height == 0 and findings_of(result) == []


def test_messages_name_position_and_expectation(tmp_path):
    result = audit_long(tmp_path, episode("V52.2", "Y10.2", "V55.1", "Y53.4", "Z99.2"))
    messages = result.findings.filter(result.findings["rule_id"] == "levels-not-second")["message"]
    assert messages.to_list() == [
        "V52.2 at position 1 must be followed directly by a V55 levels-of-spine code; position 2 holds Y10.2"
    ]


def test_expected_sequence_sits_beside_the_actual_one(tmp_path):
    result = audit_long(tmp_path, episode("V522", "Y102", "Y534", "Z676"))
    row = result.episodes.select("actual_sequence", "expected_sequence").row(0)
    assert row == ("V52.2 Y10.2 Y53.4 Z67.6", "V52.2 V55.- Y10.2 Y53.4 Z99.-")


def test_ipg387_worked_sequence_is_compliant(tmp_path):
    # NICE's own worked example: the site is given once, after the second action.
    result = audit_long(tmp_path, episode("V338", "V551", "Y534", "V388", "V551", "Y534", "Z676"))
    assert findings_of(result) == []
    assert status_of(result, "E1", "IPG387") == "compliant"


def test_lone_v338_is_not_ipg387(tmp_path):
    # IPG387 page: the transaxial approach cannot be coded; V33.8 alone is an ordinary lumbar
    # discectomy. Only the worked sequence's fusion V38.8 identifies it: possible, not audited.
    result = audit_long(tmp_path, episode("V338", "V551", "Y534", "Z676"))
    assert findings_of(result) == [] and result.episodes.height == 0
    assert result.possible.rows() == [("E1", "IPG387", 1)]


@pytest.mark.parametrize(
    "sequence, matched",
    [
        (["J032"], set()),  # open excision of a liver lesion: not microwave ablation without Y13.7
        (["J032", "Y137"], {"IPG214", "IPG406"}),  # both list the same code sets (diagnosis differs)
        (["J021"], set()),  # partial liver resection, not radiofrequency-assisted
        (["J021", "Y114"], {"IPG211"}),
    ],
)
def test_identifying_codes_decide_the_match(tmp_path, sequence, matched):
    result = audit_long(tmp_path, episode(*sequence))
    assert set(result.episodes["guidance_id"]) == matched
