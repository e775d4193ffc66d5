"""Guidance rules over index-code occurrences: each fires, and each stays quiet on good coding."""

import pytest

from audit import judge
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
        # qualifier-order: V55, then Y, then Z site, then Z94 (nice-coding.md section 3, "PYZ order":
        # the NHS Digital sequencing consultation [V], and IPG319's list V52.2, V55, Y10.2, Y53, Z99).
        (["V522", "V551", "Y102", "Z992", "Y534"], [("qualifier-order", "IPG319", 5, "error")]),
        (["V522", "V551", "Y102", "Y534", "Z942", "Z992"], [("qualifier-order", "IPG319", 6, "error")]),
        # Several pairs out of order: the finding names the first code that breaks the order.
        (["V522", "V551", "Z992", "Y102", "Y534"], [("qualifier-order", "IPG319", 4, "error")]),
        (["V522", "V551", "Z992", "Y102", "Z942", "Y534"], [("qualifier-order", "IPG319", 4, "error")]),
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


def test_a_pair_is_judged_the_same_whatever_order_its_occurrences_come_in(tmp_path):
    # Two IPG319 occurrences of V52.2 (its index code: the IPG319 page, shared/seeds), the first
    # dated before the guidance (published 2009: audit/guidance/ipg319.toml), the second after:
    # the pair takes its first occurrence's date (audit.judge), however the occurrences are ordered.
    result = audit_long(tmp_path, f"""
        {HEADER}
        | E1 | 1 | V522 | 2001-03-14 |
        | E1 | 2 | V551 | 2001-03-14 |
        | E1 | 3 | V522 | 2012-03-14 |
        | E1 | 4 | V552 | 2012-03-14 |
        | E2 | 1 | V522 | 2012-03-14 |
        | E2 | 2 | V551 | 2012-03-14 |
        | E2 | 3 | Y102 | 2012-03-14 |
        | E2 | 4 | Y534 | 2012-03-14 |
        | E2 | 5 | Z992 | 2012-03-14 |
    """)
    assert result.occurrences.height == 3
    shuffled = result.occurrences.reverse()
    assert judge.judge(shuffled, result.findings, result.catalogue).equals(result.episodes)
    assert status_of(result, "E1", "IPG319") == "predates-guidance"


def test_an_occurrence_two_code_sets_match_takes_the_first_in_catalogue_order(tmp_path):
    # IPG421's code sets share the index code K26.2 and tell its approaches apart (Y79.-
    # transluminal, Y49.4 transapical: the IPG421 page as recorded in shared/reference/
    # nice-coding.md section 2, audit/guidance/ipg421.toml). An episode coding both matches both;
    # it is audited against the first in file order (audit/guidance/README.md, code sets).
    result = audit_long(tmp_path, episode("K262", "Y791", "Y494", "Z341", date="2013-01-14"))
    occurrences = result.occurrences.filter(guidance_id="IPG421")
    assert occurrences.select("position", "code_set").rows() == [(1, "transluminal")]


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


# --- An error on the guidance's own operation (issue 10 point 2) ---------------------------------


@pytest.mark.parametrize(
    "sequence, findings, status",
    [
        # Y53.2 coded before V40.1, with no action before it: V40.1's own image-control code in the
        # wrong place (a subsidiary code in primary position), so not compliant with IPG366.
        (["Y532", "V401", "V553", "Z676"],
         [("subsidiary-code-primary", None, 1, "error"), ("approach-missing", "IPG366", 2, "warning")],
         "non-compliant"),
        # Control: the same codes in PYZ order.
        (["V401", "V553", "Y532", "Z676"], [], "compliant"),
        # An invalid code among V40.1's qualifiers is on its operation too ...
        (["V401", "V553", "Y5", "Y534", "Z676"], [("invalid-code", None, 3, "error")], "non-compliant"),
        # ... but not one on another operation coded after it.
        (["V401", "V553", "Y534", "Z676", "W371", "Y5"], [("invalid-code", None, 6, "error")], "compliant"),
        # Codes before V40.1 that follow an earlier action describe that action, not V40.1.
        (["W371", "Y5", "Y534", "V401", "V553", "Y534", "Z676"], [("invalid-code", None, 2, "error")], "compliant"),
    ],
)
def test_errors_on_the_guidance_operation_count_against_it(tmp_path, sequence, findings, status):
    result = audit_long(tmp_path, episode(*sequence))
    assert (findings_of(result), status_of(result, "E1", "IPG366")) == (findings, status)


def test_worksheet_card_status_matches_its_errors(tmp_path):
    result = audit_long(tmp_path, episode("Y532", "V401", "V553", "Z676"))
    assert result.episodes.select("status", "errors").row(0) == ("non-compliant", 1)


def test_ipg387_errors_on_its_companion_action_count(tmp_path):
    # IPG387's code set spans V33.8 and V38.8: an invalid code after V38.8 is on its operation.
    result = audit_long(tmp_path, episode("V338", "V551", "Y534", "V388", "V551", "Y5", "Y534", "Z676"))
    assert findings_of(result) == [("invalid-code", None, 6, "error")]
    assert status_of(result, "E1", "IPG387") == "non-compliant"


# --- No NICE match without the page's evidence (issue 10 point 3) --------------------------------


@pytest.mark.parametrize(
    "sequence, matched, possible",
    [
        # IPG319: V52.2 "Destruction of intervertebral disc NEC" with another Chapter Y destruction
        # method is another procedure (Y11.4 radiofrequency: the IPG83/IPG545 lineage) ...
        (["V522", "V551", "Y114", "Y534", "Z992"], set(), {"IPG319"}),
        (["V522", "V551", "Y081", "Y534", "Z992"], set(), {"IPG319"}),
        # ... with the page's Y10.2, or with no method at all, it is IPG319 (method-missing).
        (["V522", "V551", "Y102", "Y534", "Z992"], {"IPG319"}, set()),
        (["V522", "V551", "Y534", "Z992"], {"IPG319"}, set()),
        # IPG387: a lone V33.8 is an ordinary lumbar discectomy; V38.8 later identifies IPG387.
        (["V338", "V551", "Y534", "Z676"], set(), {"IPG387"}),
        (["V338", "V551", "Y534", "V388", "V551", "Y534", "Z676"], {"IPG387"}, set()),
        # IPG306 is for the lumbar spine: cervical V36.1 is not IPG306 (and not possible either).
        (["V361", "V551"], set(), set()),
        (["V363", "V551"], {"IPG306"}, set()),
        # IPG352: K35.8 "other specified" needs the mitral valve site Z32.1.
        # IPG309 (leaflet repair, also K35.8) needs its Y07.2 clip: without it, possible only.
        (["K358", "Y022", "Y534"], set(), {"IPG352", "IPG309"}),
        (["K358", "Y022", "Y534", "Z321"], {"IPG352"}, {"IPG309"}),
        # IPG78: K35.5 needs the aortic valve site Z32.2.
        (["K355", "Y534"], set(), {"IPG78"}),
        (["K355", "Y534", "Z322"], {"IPG78"}, set()),
        # IPG179: W35.1 is identified only by a diagnosis the audit does not read; W35.5 is audited.
        (["W351", "Y534"], set(), {"IPG179"}),
        (["W355", "Y534"], {"IPG179"}, set()),
    ],
)
def test_match_needs_the_identifying_evidence(tmp_path, sequence, matched, possible):
    result = audit_long(tmp_path, episode(*sequence))
    assert set(result.episodes["guidance_id"]) == matched
    assert set(result.possible["guidance_id"]) == possible
    assert not result.findings.filter(result.findings["guidance_id"].is_in(list(possible))).height


def test_possible_is_counted_in_the_summary(tmp_path):
    from audit.outputs import summary

    result = audit_long(tmp_path, episode("V338", "V551", "Y534", "Z676") + "\n" + "\n".join(
        f"| E2 | {n} | {code} | 2012-03-14 |" for n, code in enumerate(["V338", "V551", "Y534", "Z676"], 1)))
    assert summary(result)["possible_not_audited"] == {"IPG387": 2}


def test_possible_only_when_no_occurrence_is_audited(tmp_path):
    # The second V52.2 carries Y10.2: the episode is audited against IPG319, so not "possible".
    result = audit_long(tmp_path, episode("V522", "V551", "Y114", "Y534", "Z992", "V522", "V551", "Y102", "Y534", "Z992"))
    assert set(result.episodes["guidance_id"]) == {"IPG319"} and result.possible.height == 0


# --- Y68 only where a source allows it (issue 10 point 4) ----------------------------------------


@pytest.mark.parametrize(
    "sequence, expected",
    [
        # IPG424 asks for Y53.2 and Y53.7: one Y68 code fills neither (no source allows Y68 here).
        (["M711", "Y532", "Y537"], []),
        (["M711", "Y681"], [("approach-missing", "IPG424", 1, "error"), ("approach-missing", "IPG424", 1, "error")]),
        (["M711", "Y532"], [("approach-missing", "IPG424", 1, "error")]),
        # IPG421 transluminal TAVI: Y68 accepted in place of Y53 (PCSK1, unverified).
        (["K262", "Y791", "Y681"], []),
        (["K262", "Y791", "Y534"], []),
        (["K262", "Y791"], [("approach-missing", "IPG421", 1, "error")]),
    ],
)
def test_image_control_alternatives(tmp_path, sequence, expected):
    assert findings_of(audit_long(tmp_path, episode(*sequence, date="2013-06-01"))) == expected


def test_catalogue_rejects_components_one_code_could_fill_twice(tmp_path):
    from audit.catalogue import CatalogueError, load_catalogue

    path = tmp_path / "ipg999.toml"
    path.write_text("""
id = "IPG999"
title = "Test"
url = "https://example.org"
published = "2012"
code_set_recovered = true
sources = ["test"]
[[code_sets]]
components = [
    { role = "index", codes = ["M71.1"] },
    { role = "approach", codes = ["Y53.-"] },
    { role = "approach", codes = ["Y53.2"] },
]
""", encoding="utf-8")
    with pytest.raises(CatalogueError, match="one recorded code fills at most one component"):
        load_catalogue([path])


# --- Overflow codes (issue 10 point 5) -----------------------------------------------------------


def test_overflow_site_fills_a_site_and_keeps_the_qualifier_window_open(tmp_path):
    # O16.1 Pelvis NEC is a Chapter Z site: it is V40.1's site, and Y53.4 after it still qualifies V40.1.
    result = audit_long(tmp_path, episode("V401", "V552", "O161", "Z942"))
    assert findings_of(result) == [("approach-missing", "IPG366", 1, "warning")]
    assert status_of(result, "E1", "IPG366") == "compliant"
    result = audit_long(tmp_path, episode("V401", "V552", "Y534", "O161"))
    assert findings_of(result) == []


def test_levels_component_on_an_index_code_outside_the_spinal_table(tmp_path):
    # The generic V55 rule covers spinal operations; a user's entry that asks V55 after another
    # code is still checked, by its code set's own levels rule.
    from audit.catalogue import load_catalogue

    path = tmp_path / "ipg998.toml"
    path.write_text("""
id = "IPG998"
title = "Test entry"
url = "https://example.org"
published = "2012"
code_set_recovered = true
sources = ["test"]
[[code_sets]]
components = [{ role = "index", codes = ["W90.3"] }, { role = "levels", codes = ["V55.-"] }]
""", encoding="utf-8")
    catalogue = load_catalogue([path])
    result = audit_long(tmp_path, episode("W903", "Z943", date="2013-01-10"), catalogue=catalogue)
    assert findings_of(result) == [("levels-not-second", "IPG998", 2, "error")]
    result = audit_long(tmp_path, episode("W903", "V551", "Z943", date="2013-01-10"), catalogue=catalogue)
    assert findings_of(result) == []
