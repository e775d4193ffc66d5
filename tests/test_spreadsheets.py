"""Outputs a coding manager opens in Excel: no formulas run, ids survive, UTF-8 is read as such."""

import json
import re
import zipfile
from datetime import datetime
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


def test_a_sheet_past_its_row_cap_says_how_many_rows_were_left_out(tmp_path, monkeypatch):
    from datetime import datetime

    from audit import workbook

    monkeypatch.setattr(workbook, "SHEET_ROWS", 3)
    frame = pl.DataFrame({"episode_id": [f"{n:012d}" for n in range(5)]})
    sheets = {"findings": frame, "rejected": frame.head(2)}
    left_out = workbook.write_workbook(tmp_path / "w.xlsx", sheets, datetime(2026, 11, 21))
    assert left_out == {"findings": 2, "rejected": 0}
    assert workbook.rows_left_out(sheets) == left_out  # what summary.json says before the workbook is written
    rows = sheet_cells(tmp_path / "w.xlsx", 1)
    assert [r["A"][1] for r in rows] == ["episode_id", "000000000000", "000000000001", "000000000002"]


def test_a_run_past_the_row_cap_says_so_in_its_summary(tmp_path, monkeypatch):
    """summary.json is written while the workbook still is: its count must be the workbook's."""
    from audit import workbook

    monkeypatch.setattr(workbook, "SHEET_ROWS", 2)
    export = tmp_path / "hes.csv"
    export.write_text(HEADER + "".join(f"90000000000{n},Y534,,2012-01-01,RRK,C1\n" for n in range(4)),
                      encoding="utf-8")
    result = run_cli("run", str(export), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["xlsx_rows_left_out"] == {"findings": 2}  # four findings (Y53.4 first), no matched episode
    assert len(sheet_cells(tmp_path / "out" / "findings.xlsx", 1)) == 3  # the header and two rows


AWKWARD_TEXT = ["a & b <c> \"d\"", "\x01bell\x07 and \x1f", "_x0041_ stays as written", "  leading and trailing  ",
                "line\nbreak\ttab\rreturn", "Zoë 😀 \u202emirrored", "]]>", ""]


def excel_text(text: str) -> str:
    """A cell's text as Excel reads it: _xHHHH_ is the character HHHH (ECMA-376 ST_Xstring)."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def test_xlsx_cells_are_valid_xml_whatever_the_text_and_keep_their_types(tmp_path):
    from datetime import date, datetime

    from audit import workbook

    frame = pl.DataFrame({
        "text": AWKWARD_TEXT,
        "count": list(range(len(AWKWARD_TEXT))),
        "day": [date(2012, 1, 1)] * (len(AWKWARD_TEXT) - 1) + [None],
        "share": [0.5, float("nan")] + [1.25] * (len(AWKWARD_TEXT) - 2),
    })
    workbook.write_workbook(tmp_path / "w.xlsx", {"odd & <names>": frame}, datetime(2026, 11, 21))
    rows = sheet_cells(tmp_path / "w.xlsx", 1)  # parses: the XML is well formed
    assert rows[0]["A"] == ("inlineStr", "text")
    assert [excel_text(r["A"][1]) for r in rows[1:]] == AWKWARD_TEXT
    assert {r["A"][0] for r in rows} == {"inlineStr"}
    assert [r["B"] for r in rows[1:3]] == [("n", "0"), ("n", "1")]
    assert rows[1]["C"] == ("n", "40909")  # 2012-01-01 as an Excel day number, shown with a date format
    assert "C" not in rows[-1] and "D" not in rows[2]  # no value, no cell: NaN is no number Excel reads
    with zipfile.ZipFile(tmp_path / "w.xlsx") as book:
        for name in book.namelist():
            if name.endswith((".xml", ".rels")):
                ElementTree.fromstring(book.read(name))  # every part well formed
        assert re.findall(r'<sheet name="([^"]+)"', book.read("xl/workbook.xml").decode()) == ["odd &amp; &lt;names&gt;"]


def test_names_are_escaped_as_cells_are():
    """Header and sheet names are escaped in plain Python (`xml_escaped`), cells by the polars
    expression (`xml_text`): the two agree on every awkward text."""
    from audit import workbook

    texts = pl.Series("text", [*AWKWARD_TEXT, "_x0041_ & _X00e9_ _x12_", "\x0b\r\x1f<&>"], pl.String)
    assert [workbook.xml_escaped(t) for t in texts] == pl.select(workbook.xml_text(pl.lit(texts))).to_series().to_list()


def test_xlsx_bytes_are_the_same_for_the_same_run(tmp_path):
    from datetime import datetime, timezone

    from audit import workbook

    frame = pl.DataFrame({"episode_id": ["000000000042", "1"], "errors": [1, 0]})
    when = datetime(2026, 11, 21, 2, tzinfo=timezone.utc)
    workbook.write_workbook(tmp_path / "a.xlsx", {"findings": frame}, when)
    workbook.write_workbook(tmp_path / "b.xlsx", {"findings": frame}, when)
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()


def test_xlsx_opens_in_an_independent_reader_with_its_types_freeze_and_filter(run):
    # The workbook's XML is written by our own code (audit/workbook.py): openpyxl, which reads
    # files the way spreadsheet programs do, must open it without a warning and see the same cells.
    openpyxl = pytest.importorskip("openpyxl")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        book = openpyxl.load_workbook(run / "findings.xlsx")
    assert book.sheetnames == ["findings", "episodes", "rejected"]
    sheet = book["findings"]
    header = [c.value for c in sheet[1]]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref.startswith("A1:")
    rows = [dict(zip(header, r)) for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert {r["episode_id"] for r in rows} == {"900000000001", "000000000042", "000000000043"}
    assert all(isinstance(r["episode_id"], str) for r in rows)  # never a number: leading zeros kept
    assert all(r["position"] is None or isinstance(r["position"], int) for r in rows)


@pytest.mark.parametrize("created, stamped", [
    (datetime(2026, 11, 21, 9, 30, 15), (2026, 11, 21, 9, 30, 14)),  # zip times keep two-second steps
    (datetime(1970, 1, 1), (1980, 1, 1, 0, 0, 0)),  # before zip times begin (SOURCE_DATE_EPOCH=0)
    (datetime(2200, 6, 1), (2107, 12, 31, 23, 59, 58)),  # after they end
])
def test_the_workbook_is_a_valid_zip_whatever_its_clock(tmp_path, created, stamped):
    from audit import workbook

    frame = pl.DataFrame({"episode_id": [str(n) for n in range(3000)], "message": ["text & <more>"] * 3000})
    workbook.write_workbook(tmp_path / "w.xlsx", {"findings": frame}, created)
    with zipfile.ZipFile(tmp_path / "w.xlsx") as book:
        assert book.testzip() is None  # every part's CRC-32 and sizes are right
        assert {info.date_time for info in book.infolist()} == {stamped}
        assert book.namelist()[-1] == "xl/worksheets/sheet1.xml"
    assert [row["B"] for row in sheet_cells(tmp_path / "w.xlsx", 1)[1:3]] == [("inlineStr", "text & <more>")] * 2
