"""Outputs a coding manager opens in Excel: no formulas run, ids survive, UTF-8 is read as such."""

import json
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import polars as pl
import pytest

from tests.conftest import run_cli

NS = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
HEADER = "EPIKEY,OPERTN_01,OPERTN_02,OPDATE_01,PROCODE3,CONSULT\n"


def sheet_cells(path: Path, sheet: int) -> list[dict[str, tuple[str, str]]]:
    """Column letter -> (type, text) of every cell of a worksheet, row by row, read with the
    standard library so the test does not trust the writer: type "s"/"inlineStr"/"str" is text,
    "n" a number. Empty cells are absent."""
    with zipfile.ZipFile(path) as book:
        shared = []
        if "xl/sharedStrings.xml" in book.namelist():
            root = ElementTree.fromstring(book.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{{{NS['x']}}}t")) for si in root.findall("x:si", NS)]
        root = ElementTree.fromstring(book.read(f"xl/worksheets/sheet{sheet}.xml"))
    rows = []
    for row in root.iter(f"{{{NS['x']}}}row"):
        cells = {}
        for cell in row.findall("x:c", NS):
            kind = cell.get("t", "n")
            if kind == "s":
                text = shared[int(cell.find("x:v", NS).text)]
            elif kind == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{{{NS['x']}}}t"))
            else:
                value = cell.find("x:v", NS)
                text = value.text if value is not None else ""
            assert cell.find("x:f", NS) is None, "no cell may hold a formula"
            cells[re.match(r"[A-Z]+", cell.get("r")).group()] = (kind, text)
        rows.append(cells)
    return rows


@pytest.fixture
def run(tmp_path):
    export = tmp_path / "hes.csv"
    # A 12-digit EPIKEY, one with leading zeros, and values a spreadsheet would run as formulas.
    export.write_text(HEADER + "900000000001,Y534,,2012-01-01,=HYPERLINK(\"x\"),C1\n"
                      "000000000042,Y534,,2012-01-01,RRK,@SUM(A1)\n"
                      "000000000043,-,W371,2012-01-01,+RRK,-C2\n", encoding="utf-8")
    result = run_cli("run", str(export), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    return tmp_path / "out"


def test_csv_outputs_carry_a_bom_and_neutralise_formula_cells(run):
    raw = (run / "findings.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    for name in ("findings.csv", "episodes.csv", "rejected.csv", "sequences.csv"):
        assert (run / name).read_bytes().startswith(b"\xef\xbb\xbf"), name
    findings = pl.read_csv(run / "findings.csv", infer_schema=False)
    cells = [v for column in findings.columns for v in findings[column].drop_nulls().to_list()]
    assert not [v for v in cells if re.match(r"[=+\-@\t\r]", v) and v != "-"]
    assert "'=HYPERLINK(\"x\")" in findings["provider"].to_list()
    assert "'@SUM(A1)" in findings["consultant"].to_list() and "'-C2" in findings["consultant"].to_list()
    sequences = pl.read_csv(run / "sequences.csv", infer_schema=False)
    assert "-" in sequences["code"].to_list()  # the HES no-operation marker stays readable


def test_findings_gain_episode_date_status_and_source_row(run):
    findings = pl.read_csv(run / "findings.csv", infer_schema=False)
    assert findings.columns[-4:] == ["episode_date", "status", "source_row", "first_seen"]
    row = findings.filter(pl.col("episode_id") == "000000000043").row(0, named=True)
    assert row["source_row"] == "3" and row["rule_id"] == "no-operation-with-codes"
    parquet = pl.read_parquet(run / "findings.parquet")
    assert parquet.schema["first_seen"] == pl.Date and parquet.schema["episode_date"] == pl.Date


def test_summary_records_absolute_input_paths(run):
    summary = json.loads((run / "summary.json").read_text())
    assert all(Path(i["path"]).is_absolute() for i in summary["inputs"])


def test_xlsx_holds_findings_episodes_and_rejected_with_ids_as_text(run):
    book = run / "findings.xlsx"
    with zipfile.ZipFile(book) as z:
        workbook = z.read("xl/workbook.xml").decode()
        sheet1 = z.read("xl/worksheets/sheet1.xml").decode()
    assert [m for m in re.findall(r'<sheet name="([^"]+)"', workbook)] == ["findings", "episodes", "rejected"]
    assert "<pane " in sheet1 and 'state="frozen"' in sheet1 and "<autoFilter " in sheet1
    rows = sheet_cells(book, 1)
    column = {text: letter for letter, (_, text) in rows[0].items()}
    ids = {text: kind for kind, text in (r[column["episode_id"]] for r in rows[1:])}
    assert ids.keys() == {"900000000001", "000000000042", "000000000043"}
    assert set(ids.values()) <= {"s", "inlineStr", "str"}  # text, never a number
    providers = [r[column["provider"]][1] for r in rows[1:] if column["provider"] in r]
    assert '=HYPERLINK("x")' in providers  # written as text: Excel shows it, never runs it


def test_report_reads_the_bom_csvs_back(run):
    result = run_cli("report", str(run))
    assert result.exit_code == 0, result.stderr
    html = (run / "report.html").read_text()
    assert "=HYPERLINK(&#34;x&#34;)" in html or "=HYPERLINK(&quot;x&quot;)" in html
    assert "'=HYPERLINK" not in html
