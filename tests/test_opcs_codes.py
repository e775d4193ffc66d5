"""--opcs-codes: the user's official OPCS-4 code list (TRUD CODE<TAB>TITLE file)."""

import polars as pl
import pytest

from audit.errors import UserError
from audit.opcs import load_code_list
from tests.conftest import FIXTURES, run_cli

CODE_LIST = FIXTURES / "opcs_code_list.tsv"


def test_code_list_is_normalised_and_categories_are_skipped():
    listed = load_code_list(CODE_LIST)
    assert listed["code"].to_list() == ["A011", "V522", "V551", "W371", "Y102", "Y534", "Z943", "Z992"]
    assert listed.filter(pl.col("code") == "V551")["title"].item() == "One level of spine"


@pytest.mark.parametrize("text, problem", [("", "no OPCS-4 codes found"), ("hello\tworld\n", "no OPCS-4 codes found")])
def test_unusable_code_list(tmp_path, text, problem):
    path = tmp_path / "codes.tsv"
    path.write_text(text)
    with pytest.raises(UserError, match=problem):
        load_code_list(path)


def test_codes_missing_from_the_list_are_reported_with_titles_for_the_rest(tmp_path):
    export = tmp_path / "e.csv"
    # E2 is clean and has no index code: without the list it would be set aside unread.
    export.write_text("EPIKEY,OPERTN_01,OPDATE_01,OPERTN_02,OPDATE_02,OPERTN_03,OPDATE_03\n"
                      "E1,V522,2012-01-01,V551,,Y999,\n"
                      "E2,W371,2012-01-01,Z943,,,\n"
                      "E3,W999,2012-01-01,,,,\n")
    out = tmp_path / "out"
    result = run_cli("run", str(export), "--opcs-codes", str(CODE_LIST), "--out", str(out), "--as-of", "2026-11-21")
    assert result.exit_code == 0, result.stderr
    findings = pl.read_csv(out / "findings.csv", infer_schema=False).filter(pl.col("rule_id") == "code-not-in-opcs")
    assert findings.select("episode_id", "position", "code", "severity").rows() == [
        ("E1", "3", "Y99.9", "warning"), ("E3", "1", "W99.9", "warning")]
    titles = dict(pl.read_csv(out / "code_titles.csv", infer_schema=False).iter_rows())
    assert titles["V55.1"] == "One level of spine"
    assert "Lumbar intervertebral disc" not in (out / "report.html").read_text()  # Z99.2 is not in any sequence
    assert "Destruction of intervertebral disc NEC" in (out / "report.html").read_text()


def test_without_a_list_no_such_rule_runs(tmp_path):
    export = tmp_path / "e.csv"
    export.write_text("EPIKEY,OPERTN_01\nE3,W999\n")
    out = tmp_path / "out"
    assert run_cli("run", str(export), "--out", str(out)).exit_code == 0
    assert pl.read_csv(out / "findings.csv").height == 0
    assert not (out / "code_titles.csv").exists()


def test_missing_code_list_is_a_user_error(tmp_path):
    result = run_cli("run", str(FIXTURES / "utf8_bom.csv"), "--opcs-codes", str(tmp_path / "nope.tsv"),
                     "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "OPCS-4 code list not found" in result.stderr
