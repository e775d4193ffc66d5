"""Rules that apply to every episode, matched or not."""

import pytest

from tests.conftest import audit_long, findings_of

HEADER = "| episode_id | position | code |"


def episode(*codes_: str) -> str:
    return "\n".join([HEADER, *[f"| E1 | {n} | {code} |" for n, code in enumerate(codes_, 1)]])


def dated(*codes_: str, when: str = "2012-03-14") -> str:
    """An episode dated when the spinal guidances (IPG319, IPG366, IPG387) were all in force."""
    rows = [f"| E1 | {n} | {code} | {when} |" for n, code in enumerate(codes_, 1)]
    return "\n".join(["| episode_id | position | code | procedure_date |", *rows])


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


# --- V55 after every spinal operation (issue 10 point 1) -----------------------------------------
# Both seed pages: "Codes within category V55.- are assigned in second place each time a spinal
# operation is coded". Spinal operations are the Chapter V categories in audit/spinal_operations.csv.


@pytest.mark.parametrize(
    "sequence, expected",
    [
        # A correctly coded spinal operation that no NICE guidance covers raises nothing ...
        (["V331", "V551", "Z676"], []),
        # ... and the same without its V55 is levels-not-second, with no guidance.
        (["V331", "Z676"], [("levels-not-second", None, 2, "error")]),
        (["V331"], [("levels-not-second", None, 1, "error")]),
        (["V251", "Y534", "V551", "Z676"], [("levels-not-second", None, 2, "error")]),
        # Skull and face operations (V01-V21) are not spinal: no V55 is asked for.
        (["V031", "Z011"], []),
        # Two spinal operations: each is followed directly by its own V55.
        (["V251", "V552", "V331", "V551", "Z676"], []),
        (["V251", "V552", "V331", "Z676"], [("levels-not-second", None, 4, "error")]),
        # V55 is only ever in second place: in the primary position it is a subsidiary code.
        (["V551", "V331", "V551", "Z676"], [("subsidiary-code-primary", None, 1, "error")]),
        # Two V55 codes in a row give two conflicting level counts for one operation.
        (["V331", "V551", "V552", "Z676"], [("levels-repeated", None, 3, "error")]),
        (["V331", "V551", "Y534", "V552"], []),  # not directly after the first: not a repeat
    ],
)
def test_v55_after_every_spinal_operation(tmp_path, sequence, expected):
    assert findings_of(audit_long(tmp_path, episode(*sequence))) == expected


def test_v55_missing_after_a_nice_index_code_is_one_finding_with_its_guidance(tmp_path):
    # IPG366's levels component and the generic rule ask for the same V55: one finding, for IPG366.
    result = audit_long(tmp_path, dated("V401", "Y534", "Z676"))
    assert findings_of(result) == [("levels-not-second", "IPG366", 2, "error")]


def test_second_operation_of_ipg387_worked_sequence_needs_its_own_v55(tmp_path):
    # IPG387's worked sequence: V33.8 V55.1 Y53.4 V38.8 V55.1 Y53.4 Z67.6; here the second V55.1 is
    # missing. No guidance matched V38.8 itself, so the finding carries no guidance id, but it lies
    # within IPG387's operation, so the episode is not compliant with IPG387.
    result = audit_long(tmp_path, dated("V338", "V551", "Y534", "V388", "Y534", "Z676"))
    assert findings_of(result) == [("levels-not-second", None, 5, "error")]
    assert result.episodes.select("guidance_id", "status").rows() == [("IPG387", "non-compliant")]


def test_other_spinal_operation_in_an_episode_with_a_nice_procedure(tmp_path):
    result = audit_long(tmp_path, dated("V522", "V551", "Y102", "Y534", "Z992", "V251", "Z676"))
    assert findings_of(result) == [("levels-not-second", None, 7, "error")]
    assert result.episodes.select("guidance_id", "status").rows() == [("IPG319", "compliant")]


# --- HES conventions (issue 10 point 6) ----------------------------------------------------------


@pytest.mark.parametrize(
    "sequence, expected",
    [
        # '-' between real codes contradicts them ...
        (["W371", "-", "Z943"], [("no-operation-between-codes", None, 2, "error")]),
        (["W371", "-", "-", "Z943"], [("no-operation-between-codes", None, 2, "error"),
                                      ("no-operation-between-codes", None, 3, "error")]),
        # ... but '-' in every slot after the last real code is padding.
        (["W371", "Z943", "-", "-", "-"], []),
        # '&' (not known) in the primary position with real codes after it.
        (["&", "W371", "Z943"], [("not-known-with-codes", None, 1, "error")]),
        (["&"], []),
        (["&", "-"], []),
        (["W371", "&"], []),
    ],
)
def test_hes_fillers(tmp_path, sequence, expected):
    assert findings_of(audit_long(tmp_path, episode(*sequence))) == expected


@pytest.mark.parametrize(
    "rows, expected",
    [
        # A blank OPERTN_01: the first filled slot is the primary.
        ([(2, "Y534"), (3, "W371")], [("subsidiary-code-primary", None, 2, "error")]),
        ([(2, "W371"), (3, "Y534")], []),
        ([(2, "-"), (3, "W371")], [("no-operation-with-codes", None, 2, "error")]),
        ([(3, "&"), (4, "W371")], [("not-known-with-codes", None, 3, "error")]),
    ],
)
def test_first_filled_slot_is_the_primary(tmp_path, rows, expected):
    text = "\n".join([HEADER, *[f"| E1 | {n} | {code} |" for n, code in rows]])
    assert findings_of(audit_long(tmp_path, text)) == expected


def test_blank_first_slot_in_a_wide_export(tmp_path):
    from datetime import datetime, timezone

    from audit.catalogue import load_catalogue
    from audit.pipeline import AuditOptions, run_audit

    path = tmp_path / "hes.csv"
    path.write_text("EPIKEY,OPERTN_01,OPERTN_02,OPERTN_03\nE1,,Z942,W371\nE2,W371,Z942,\n", encoding="utf-8")
    result = run_audit(AuditOptions(inputs=[path]), load_catalogue(), datetime.now(timezone.utc))
    assert findings_of(result) == [("subsidiary-code-primary", None, 2, "error")]


# --- Overflow codes (issue 10 point 5) -----------------------------------------------------------
# O16.1 Pelvis NEC is a Chapter Z body-region site (shared/reference/nice-coding.md s4;
# audit/overflow_categories.csv).


@pytest.mark.parametrize(
    "sequence, expected",
    [
        (["O161", "W371"], [("subsidiary-code-primary", None, 1, "error")]),  # a site: never primary
        (["W371", "O161"], []),
    ],
)
def test_overflow_site_code(tmp_path, sequence, expected):
    assert findings_of(audit_long(tmp_path, episode(*sequence))) == expected


def test_findings_are_the_same_when_every_episode_id_hashes_alike(tmp_path, monkeypatch):
    """A rule's messages are evaluated over its failing rows' whole episodes, picked by the ids'
    hashes (audit.rules.base.findings_from): a colliding episode comes whole and adds nothing."""
    rows = [HEADER]
    for number, codes_ in enumerate([("-", "W371", "Z942"), ("W371", "Z943"), ("Y534", "W371"), ("V255", "Y534"),
                                     ("W371", "V5"), ("-", "&"), ("V384", "V553", "Z943")]):
        rows += [f"| E{number} | {n} | {code} |" for n, code in enumerate(codes_, 1)]
    expected = audit_long(tmp_path, "\n".join(rows)).findings
    assert expected.height >= 4 and expected["episode_id"].n_unique() >= 4
    import polars as pl

    monkeypatch.setattr(pl.Series, "hash", lambda self, *args, **kwargs: pl.Series(self.name, [0] * self.len(), pl.UInt64))
    assert audit_long(tmp_path, "\n".join(rows)).findings.equals(expected)
