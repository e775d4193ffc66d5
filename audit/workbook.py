"""findings.xlsx: the findings, episode statuses and rejected rows as a workbook a coding manager
opens in Excel without it mangling them.

Excel reading a CSV turns a 12-digit EPIKEY into 9.00000E+11 and drops leading zeros; here every
text cell is written as text (never as a number or a formula), dates as dates, counts as
numbers, with a frozen header row and a filter on every column.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import xlsxwriter

EXCEL_MAX_ROWS = 1_048_576  # the header row included (Excel's limit per sheet)


def write_workbook(path: Path, sheets: dict[str, pl.DataFrame], created: datetime) -> dict[str, int]:
    """Write one sheet per frame; returns the rows left out of each sheet beyond Excel's limit
    (they are in the CSV files). `created`: the run's start, recorded in the file (and its zip
    entries) so a re-run with a pinned clock gives the same bytes."""
    workbook = xlsxwriter.Workbook(str(path), {
        "constant_memory": True,  # rows are streamed to disk, so a big run stays in bounded memory
        "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False,
    })
    workbook.set_properties({"title": "nice-audit findings", "created": created.replace(tzinfo=None)})
    header = workbook.add_format({"bold": True, "bottom": 1})
    day = workbook.add_format({"num_format": "yyyy-mm-dd"})
    left_out = {}
    try:
        for name, frame in sheets.items():
            sheet = workbook.add_worksheet(name)
            rows = frame.head(EXCEL_MAX_ROWS - 1)
            left_out[name] = frame.height - rows.height
            for column, title in enumerate(frame.columns):
                sheet.write_string(0, column, title, header)
                sheet.set_column(column, column, min(max(len(title) + 2, 12), 40))
            kinds = [_kind(dtype) for dtype in frame.dtypes]
            for number, values in enumerate(rows.iter_rows(), start=1):
                for column, (value, kind) in enumerate(zip(values, kinds)):
                    if value is None:
                        continue
                    if kind == "date" and isinstance(value, date):
                        sheet.write_datetime(number, column, value, day)
                    elif kind == "number":
                        sheet.write_number(number, column, value)
                    else:
                        sheet.write_string(number, column, str(value))
            sheet.freeze_panes(1, 0)
            sheet.autofilter(0, 0, max(rows.height, 1), max(frame.width - 1, 0))
    finally:
        workbook.close()
    return left_out


def _kind(dtype: pl.DataType) -> str:
    if dtype == pl.Date:
        return "date"
    if dtype.is_numeric() and dtype != pl.Boolean:
        return "number"
    return "text"
