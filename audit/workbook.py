"""findings.xlsx: the findings, episode statuses and rejected rows as a workbook a coding manager
opens in Excel without it mangling them.

Excel reading a CSV turns a 12-digit EPIKEY into 9.00000E+11 and drops leading zeros; here every
text cell is written as text (never as a number or a formula), dates as dates, counts as
numbers, with a frozen header row and a filter on every column.

An .xlsx file is a zip of a few XML parts (ECMA-376 Office Open XML, SpreadsheetML). The sheet
XML is built with vectorised polars string expressions, a whole batch of rows at a time, rather
than cell by cell in Python: at 1M episodes a per-cell writer was the largest single cost of a
run (xlsxwriter, 5-16 s for 15-36k findings), this takes a fraction of a second.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl

from audit.zipped import ZipWriter

EXCEL_MAX_ROWS = 1_048_576  # the header row included (Excel's limit per sheet)
# Rows written per sheet. Excel itself slows to a crawl well before its limit, so a sheet stops
# here; the CSV and Parquet files hold every row, and summary.json says how many were left out.
SHEET_ROWS = 250_000
BATCH_ROWS = 50_000  # rows turned into XML at a time: memory stays bounded whatever the sheet
EXCEL_EPOCH = datetime(1899, 12, 30).date()  # day 0 of Excel's 1900 date system, as Excel counts it
# Cell styles, indexes into cellXfs of STYLES: 0 plain, 1 header (bold, bottom border), 2 date.
HEADER_STYLE, DATE_STYLE = 1, 2
SELECTED = ' tabSelected="1"'

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
STYLES = (
    f'<styleSheet xmlns="{MAIN}"><numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border>'
    '<border><left/><right/><top/><bottom style="thin"><color auto="1"/></bottom><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="1" xfId="0" applyFont="1" applyBorder="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
)
# XML 1.0 allows no control character but tab, line feed and carriage return; Excel writes the
# others (and carriage return, which an XML reader would turn into a line feed) as _xHHHH_, and an
# "_xHHHH_" already in the text as _x005F_xHHHH_ so that it reads back as written (ECMA-376
# Part 1, 22.9.2.19 ST_Xstring).
CONTROL = [chr(c) for c in range(0x20) if c not in (0x09, 0x0A)]
ESCAPES = ["&", "<", ">", *CONTROL]
ESCAPED = ["&amp;", "&lt;", "&gt;", *[f"_x{ord(c):04X}_" for c in CONTROL]]


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


NEEDS_ESCAPE = r"[&<>\x00-\x08\x0B-\x1F]|_x[0-9A-Fa-f]{4}_"
EDGE_SPACE = r"^\s|\s$"  # leading or trailing white space
HEX_ESCAPE = r"_(x[0-9A-Fa-f]{4}_)"  # text that reads as an escape: its "_" is escaped in turn


def xml_text(expr: pl.Expr) -> pl.Expr:
    """Text as the content of an XML element, escaped as Excel escapes it. Most cells need no
    escaping: testing for it first is three times faster than escaping every cell."""
    escaped = expr.str.replace_all(HEX_ESCAPE, "_x005F_$1").str.replace_many(ESCAPES, ESCAPED)
    return pl.when(expr.str.contains(NEEDS_ESCAPE)).then(escaped).otherwise(expr)


_HEX_ESCAPE = re.compile(HEX_ESCAPE)
_XML_TABLE = str.maketrans(dict(zip(ESCAPES, ESCAPED)))


def xml_escaped(text: str) -> str:
    """`xml_text` for one string (a header or sheet name) in plain Python: a polars query per name
    cost a millisecond each, 50 ms a workbook (tests/test_spreadsheets.py keeps the two equal)."""
    return _HEX_ESCAPE.sub(r"_x005F_\1", text).translate(_XML_TABLE)


def _kind(dtype: pl.DataType) -> str:
    if dtype == pl.Date:
        return "date"
    if dtype.is_numeric() and dtype != pl.Boolean:
        return "number"
    return "text"


def _cell(name: str, dtype: pl.DataType, letter: str, row: pl.Expr) -> pl.Expr:
    """One cell's XML (null for an empty cell, which is left out). Text is always an inline string:
    Excel never reads it as a number, a date or a formula."""
    column = pl.col(name)
    ref = pl.concat_str(pl.lit(f'<c r="{letter}'), row)
    kind = _kind(dtype)
    if kind == "date":
        days = (column - pl.lit(EXCEL_EPOCH)).dt.total_days().cast(pl.String)
        return pl.concat_str(ref, pl.lit(f'" s="{DATE_STYLE}"><v>'), days, pl.lit("</v></c>"))
    if kind == "number":
        finite = column.is_finite() if dtype.is_float() else pl.lit(True)
        value = pl.when(finite).then(column.cast(pl.String))  # NaN and infinity: no number Excel reads
        return pl.concat_str(ref, pl.lit('"><v>'), value, pl.lit("</v></c>"))
    text = column.cast(pl.String) if dtype != pl.String else column
    # xml:space keeps leading and trailing spaces, which Excel would otherwise drop
    opening = pl.when(text.str.contains(EDGE_SPACE)).then(pl.lit('<t xml:space="preserve">')).otherwise(pl.lit("<t>"))
    special = pl.concat_str(ref, pl.lit('" t="inlineStr"><is>'), opening, xml_text(text), pl.lit("</t></is></c>"))
    # Nearly every cell needs neither: one test finds the few that do (two per cell cost a third more).
    plain = pl.concat_str(ref, pl.lit('" t="inlineStr"><is><t>'), text, pl.lit("</t></is></c>"))
    return pl.when(text.str.contains(f"{EDGE_SPACE}|{NEEDS_ESCAPE}")).then(special).otherwise(plain)


def _rows_xml(frame: pl.DataFrame, first_row: int) -> bytes:
    """The <row> elements of `frame`, its first row numbered `first_row` (1-based), as UTF-8. Bytes
    straight from polars: a Python str of the batch's XML cost a decode and an encode of it."""
    if not frame.height:
        return b""
    number = "#row" + "#" * max((len(c) for c in frame.columns), default=0)  # no column's name
    row = pl.col(number)  # the row number, written in every cell: computed once per row
    cells = [_cell(name, dtype, column_letter(i), row) for i, (name, dtype) in enumerate(frame.schema.items())]
    xml = pl.concat_str(pl.lit('<row r="'), row, pl.lit('">'), *cells, pl.lit("</row>"), ignore_nulls=True)
    numbered = frame.lazy().with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + first_row).cast(pl.String).alias(number))
    # Lazily, so that polars computes the parts the cells' two spellings share once (a DataFrame's
    # own `select` runs without that optimisation): 10M episodes' findings sheet 1.03 -> 0.83 s.
    return numbered.select(xml.str.join("").cast(pl.Binary)).collect().item()


def _sheet_head(frame: pl.DataFrame, last_row: int, selected: bool) -> str:
    last = f"{column_letter(max(frame.width - 1, 0))}{last_row}"
    widths = "".join(f'<col min="{i}" max="{i}" width="{min(max(len(name) + 2, 12), 40)}" customWidth="1"/>'
                     for i, name in enumerate(frame.columns, start=1))
    header = "".join(
        f'<c r="{column_letter(i)}1" s="{HEADER_STYLE}" t="inlineStr"><is><t xml:space="preserve">'
        f'{xml_escaped(name)}</t></is></c>'
        for i, name in enumerate(frame.columns))
    return (f'{DECLARATION}<worksheet xmlns="{MAIN}" xmlns:r="{RELS}"><dimension ref="A1:{last}"/>'
            f'<sheetViews><sheetView{SELECTED if selected else ""} workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft"/></sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>'
            f'<cols>{widths}</cols><sheetData><row r="1">{header}</row>')


def _filter_ref(frame: pl.DataFrame, rows: int) -> str:
    return f"A1:{column_letter(max(frame.width - 1, 0))}{max(rows, 1) + 1}"


def _package_parts(names: list[str], filters: list[str], created: datetime) -> dict[str, str]:
    """Every part but the sheets: content types, relationships, workbook, styles, properties."""
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    sheets = "".join(f'<sheet name="{xml_escaped(n).replace(chr(34), "&quot;")}" sheetId="{i}" r:id="rId{i}"/>'
                     for i, n in enumerate(names, start=1))
    # Excel keeps each sheet's filter range as this hidden name; without it the filter still works
    # but Excel "repairs" nothing, as long as the name and the sheet's autoFilter agree.
    defined = "".join(
        f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
        f"'{xml_escaped(n.replace(chr(39), chr(39) * 2))}'!{_absolute(ref)}</definedName>"
        for i, (n, ref) in enumerate(zip(names, filters)))
    overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{SHEET_TYPE}"/>'
                        for i in range(1, len(names) + 1))
    sheet_rels = "".join(f'<Relationship Id="rId{i}" Type="{RELS}/worksheet" Target="worksheets/sheet{i}.xml"/>'
                         for i in range(1, len(names) + 1))
    titles = "".join(f"<vt:lpstr>{xml_escaped(n)}</vt:lpstr>" for n in names)
    return {
        "[Content_Types].xml": (
            f'{DECLARATION}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/docProps/app.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
            '<Override PartName="/docProps/core.xml" '
            'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            f"{overrides}</Types>"),
        "_rels/.rels": (
            f'{DECLARATION}<Relationships xmlns="{PACKAGE_RELS}">'
            f'<Relationship Id="rId1" Type="{RELS}/officeDocument" Target="xl/workbook.xml"/>'
            f'<Relationship Id="rId2" Type="{PACKAGE_RELS}/metadata/core-properties" Target="docProps/core.xml"/>'
            f'<Relationship Id="rId3" Type="{RELS}/extended-properties" Target="docProps/app.xml"/>'
            "</Relationships>"),
        "docProps/app.xml": (
            f'{DECLARATION}<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties" '
            'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
            "<Application>nice-audit</Application><HeadingPairs><vt:vector size=\"2\" baseType=\"variant\">"
            f"<vt:variant><vt:lpstr>Worksheets</vt:lpstr></vt:variant><vt:variant><vt:i4>{len(names)}</vt:i4>"
            f'</vt:variant></vt:vector></HeadingPairs><TitlesOfParts><vt:vector size="{len(names)}" '
            f'baseType="lpstr">{titles}</vt:vector></TitlesOfParts></Properties>'),
        "docProps/core.xml": (
            f'{DECLARATION}<cp:coreProperties '
            'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:title>nice-audit findings</dc:title>'
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
            f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified></cp:coreProperties>'),
        "xl/_rels/workbook.xml.rels": (
            f'{DECLARATION}<Relationships xmlns="{PACKAGE_RELS}">{sheet_rels}'
            f'<Relationship Id="rId{len(names) + 1}" Type="{RELS}/styles" Target="styles.xml"/></Relationships>'),
        "xl/workbook.xml": (
            f'{DECLARATION}<workbook xmlns="{MAIN}" xmlns:r="{RELS}"><bookViews><workbookView/></bookViews>'
            f"<sheets>{sheets}</sheets><definedNames>{defined}</definedNames></workbook>"),
        "xl/styles.xml": DECLARATION + STYLES,
    }


def _absolute(ref: str) -> str:
    """A1:Q20 -> $A$1:$Q$20."""
    return re.sub(r"([A-Z]+)([0-9]+)", r"$\1$\2", ref)


def _sheet_rows(frame: pl.DataFrame) -> int:
    return min(frame.height, SHEET_ROWS, EXCEL_MAX_ROWS - 1)


def rows_left_out(sheets: dict[str, pl.DataFrame]) -> dict[str, int]:
    """The rows `write_workbook` leaves out of each sheet (they are in the CSV files), known
    before it runs: summary.json is written while the workbook still is."""
    return {name: frame.height - _sheet_rows(frame) for name, frame in sheets.items()}


def _sheet_xml(frame: pl.DataFrame, rows: pl.DataFrame, ref: str, selected: bool) -> Iterator[bytes]:
    """A sheet's XML, a batch of rows at a time: memory stays bounded whatever the sheet."""
    yield _sheet_head(frame, rows.height + 1, selected).encode("utf-8")
    for start in range(0, rows.height, BATCH_ROWS):
        yield _rows_xml(rows.slice(start, BATCH_ROWS), start + 2)
    yield (f'</sheetData><autoFilter ref="{ref}"/><pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" '
           'header="0.3" footer="0.3"/></worksheet>').encode("utf-8")


def write_workbook(path: Path, sheets: dict[str, pl.DataFrame], created: datetime) -> dict[str, int]:
    """Write one sheet per frame; returns the rows left out of each sheet beyond SHEET_ROWS
    (`rows_left_out`). `created`: the run's start, recorded in the file (and its zip entries) so
    a re-run with a pinned clock gives the same bytes."""
    created = created.replace(tzinfo=None)
    when = created.timetuple()[:6]
    shown = {name: frame.head(_sheet_rows(frame)) for name, frame in sheets.items()}
    filters = [_filter_ref(frame, shown[name].height) for name, frame in sheets.items()]
    with open(path, "wb") as handle:
        book = ZipWriter(handle, when)
        for part, text in _package_parts(list(sheets), filters, created).items():
            book.add(part, [text.encode("utf-8")])
        for number, ((name, frame), ref) in enumerate(zip(sheets.items(), filters), start=1):
            book.add(f"xl/worksheets/sheet{number}.xml", _sheet_xml(frame, shown[name], ref, number == 1))
        book.close()
    return rows_left_out(sheets)
