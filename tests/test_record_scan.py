"""The record scan by line (one record per line, judged by polars' streaming engine: files without
a quote character, and files with quotes whose lines are each a whole record) finds exactly what
the block-by-block scan finds."""

from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from audit import records

FIXTURES = Path(__file__).parent / "fixtures"


def _scans(path: Path, separator: str = ",", long_lines: frozenset[int] = frozenset()):
    data = path.read_bytes()
    fields = data.split(b"\n")[0].count(separator.encode()) + 1
    block = records.scan_blocks(path, separator, fields, long_lines)  # the general scan
    fast = records.scan_records(path, separator, fields, long_lines, quotes=False)
    return block, fast


def _assert_same(block: records.RecordScan, fast: records.RecordScan) -> None:
    assert (fast.header_line, fast.header_fields, fast.records, fast.broken_quoting) == (
        block.header_line, block.header_fields, block.records, block.broken_quoting)
    assert_frame_equal(fast.skipped.sort("row"), block.skipped.sort("row"), check_dtypes=False)
    assert _lines_of_rows(fast) == _lines_of_rows(block)


def _lines_of_rows(scan: records.RecordScan) -> list[int]:
    """The file line of every parser row, as `audit.load` reads it from the offsets (the scans may
    note the same mapping at different rows)."""
    rows = scan.records + scan.skipped.filter(pl.col("reason") == records.BLANK).height
    frame = pl.DataFrame({"row": list(range(rows))}, schema={"row": pl.Int64})
    return frame.join_asof(scan.offsets, on="row", strategy="backward").select(
        pl.col("line") + pl.col("row") - pl.col("offset_row"))["line"].to_list()


def _fixtures(quoted: bool):
    """The fixtures that reach the scan (UTF-8 without NUL bytes, and not only a BOM: audit.load
    refuses or converts the others first), with or without a quote character."""
    for path in sorted(FIXTURES.glob("*.csv")):
        data = path.read_bytes()
        if ((b'"' in data) != quoted or b"\x00" in data or data.startswith(b"\xef\xbb\xbf")
                or path.name == "bom_only.csv"):
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        yield path


@pytest.mark.parametrize("path", list(_fixtures(quoted=False)), ids=lambda p: p.name)
def test_fast_scan_matches_the_block_scan_on_every_unquoted_fixture(path):
    _assert_same(*_scans(path))


@pytest.mark.parametrize("path", list(_fixtures(quoted=True)), ids=lambda p: p.name)
def test_a_file_with_quotes_is_scanned_by_line_to_what_the_block_scan_finds(path):
    """A file with quotes is scanned line by line where each line is a whole record, and block by
    block where one is not (a quoted field spanning lines, broken quoting): the same either way."""
    fields = path.read_bytes().split(b"\n")[0].count(b",") + 1
    _assert_same(records.scan_blocks(path, ",", fields), records.scan_records(path, ",", fields, quotes=True))


QUOTED_LINE = st.sampled_from(['"1","2","3"', '"a,b",c,d', '"a""b",c,d', '1,"2",3', '"",,""', '"1","2"',
                               '"1","2","3","4"', '"a', 'b",c,d', 'a"b,c,d', '"x"y,z,w', '1,2,3', "", '""'])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(QUOTED_LINE, max_size=30), crlf=st.booleans(), sample=st.sampled_from([1 << 18, 16]))
def test_a_scan_by_line_of_quoted_lines_finds_what_the_block_scan_finds(tmp_path, lines, crlf, sample):
    """Quoted fields with separators, doubled quotes, a record spanning lines, stray quotes,
    field counts off: by line or block by block, the same records and reasons. `sample`: the
    bytes that decide whether to try by line (16: a file's first lines are whole records, and a
    later one shows that it is not so)."""
    end = "\r\n" if crlf else "\n"
    path = tmp_path / "export.csv"
    path.write_bytes((end.join(['"H1","H2","H3"', *lines]) + end).encode())
    limit = records.SAMPLE_BLOCK
    try:
        records.SAMPLE_BLOCK = sample
        _assert_same(records.scan_blocks(path, ",", 3), records.scan_records(path, ",", 3, quotes=True))
    finally:
        records.SAMPLE_BLOCK = limit


def test_fast_scan_finds_blank_ragged_and_long_lines(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("\n \nA,B,C\n1,2,3\n\n4,5\n6,7,8,9\n  \n10,11,12\n\x01\n")
    block, fast = _scans(path, long_lines=frozenset({10}))
    _assert_same(block, fast)
    assert fast.header_line == 3 and fast.records == 5
    assert dict(fast.skipped.select("line", "reason").iter_rows()) == {
        5: records.BLANK, 6: "malformed row: 2 fields where the header has 3",
        7: "malformed row: 4 fields where the header has 3", 8: records.BLANK, 10: records.LONG_FIELD_REASON}


LINE = st.sampled_from(["1,2,3", "a,b,c", "", " ", "1,2", "1,2,3,4", ",,", "x;y,z,w"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, min_size=1, max_size=30), crlf=st.booleans(), final_newline=st.booleans())
def test_a_big_file_is_counted_by_streaming_its_lines_to_the_same_count(tmp_path, lines, crlf, final_newline):
    """Above MAPPED_COUNT_BYTES a file's lines are counted by streaming them (polars' own count
    maps the whole file into memory): the same count, blank lines and a missing last newline
    included."""
    path = tmp_path / "lines.csv"
    end = "\r\n" if crlf else "\n"
    path.write_bytes((end.join(lines) + (end if final_newline else "")).encode())
    assume(path.stat().st_size)  # (an empty file has no lines to count: the scan stops before it counts)
    mapped = records._line_count(path)
    limit = records.MAPPED_COUNT_BYTES
    try:
        records.MAPPED_COUNT_BYTES = -1
        assert records._line_count(path) == mapped
    finally:
        records.MAPPED_COUNT_BYTES = limit


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, max_size=30), header_after=st.integers(0, 3), crlf=st.booleans(),
       final_newline=st.booleans())
def test_fast_scan_matches_the_block_scan_on_any_mix_of_lines(tmp_path, lines, header_after, crlf, final_newline):
    end = "\r\n" if crlf else "\n"
    text = end.join([""] * header_after + ["H1,H2,H3"] + lines) + (end if final_newline else "")
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode())
    _assert_same(*_scans(path))


def test_a_file_of_blank_lines_has_no_header_and_no_records(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("\n\n  \n")
    block, fast = _scans(path)
    _assert_same(block, fast)
    assert fast.records == 0 and fast.skipped.height == 0
    assert fast.offsets.height == 0


@pytest.mark.parametrize("blank_lines", [0, 3, records.HEADER_BLOCK // 2 + 1, records.HEADER_BLOCK + 5])
def test_the_header_is_found_past_blank_lines_of_any_length(tmp_path, blank_lines):
    """The fast scan looks for the header a small block of lines at a time: past the first block
    (more blank lines than fit in one), it still finds it, at the line the block scan finds."""
    path = tmp_path / "export.csv"
    path.write_text(" \n" * blank_lines + "A,B\n1,2\n3\n")
    block, fast = _scans(path)
    _assert_same(block, fast)
    assert fast.header_line == blank_lines + 1 and fast.records == 2


DATE_VALUES = ["", "2024-01-31", "2023-02-29", "2024-02-29", "2024-02-30", "0000-01-01", "1800-01-01", "01/01/2024",
               " 2024-01-01", "2024-01-01 ", "2024-01-01T10:00", "2024-1-1", "20240101", "x", "-", "9999-12-31",
               "2024-01-31 00:00:00.000", "2024-02-30 10:00", "2024-01-31t10:00",
               "31/01/2024", "29/02/2024", "29/02/2023", "31/04/2024", "1/1/2024", "31/01/2024 00:00"]


@pytest.mark.parametrize("separator", [",", "\t", ";", "|"])
@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("quoted", [False, True])
def test_the_scan_notes_exactly_the_rows_with_an_odd_date(tmp_path, separator, crlf, quoted):
    """The rows the scan says need the full date test are those `odd_date` picks out of the parsed
    date columns, and only those: a date-like value in another column (X) is no date field.
    `quoted`: the fields of every other row are quoted (a quoted date is the same date)."""
    from audit.dates import odd_date

    rows = [(f"e{i}", a, b, c) for i, (a, b, c) in enumerate(
        (a, b, c) for a in DATE_VALUES for b in ("01/01/2024", "") for c in DATE_VALUES[::3])]
    if quoted:
        rows = [tuple(f'"{v}"' for v in row) if i % 2 else row for i, row in enumerate(rows)]
    end = "\r\n" if crlf else "\n"
    text = end.join(separator.join(row) for row in [("ID", "D1", "X", "D2"), *rows]) + end
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode())
    scan = records.scan_records(path, separator, 4, quotes=quoted, date_fields=frozenset({1, 3}))
    parsed = pl.read_csv(path, separator=separator, infer_schema=False).with_row_index("row")
    odd = parsed.filter(pl.any_horizontal(odd_date(pl.col(c), uk=True).fill_null(False) for c in ("D1", "D2")))
    assert sorted(scan.odd_dates.to_list()) == odd["row"].cast(pl.Int64).to_list()
    assert 0 < odd.height < parsed.height and scan.skipped.height == 0 and scan.records == len(rows)


def test_the_scan_notes_no_odd_dates_where_it_did_not_look(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("ID,D1\ne1,1/1/2024\n")
    assert records.scan_records(path, ",", 2, quotes=False).odd_dates is None  # no date field named
    assert records.scan_blocks(path, ",", 2).odd_dates is None
    assert records.scan_records(path, ",", 2, quotes=False, date_fields=frozenset({1})).odd_dates.to_list() == [0]


FIELD_PATTERNS = ["a", "b?", "", "[ab]", "-?", "(?:a|-)"]


@given(st.integers(1, 4).flatmap(lambda width: st.lists(
    st.lists(st.sampled_from(FIELD_PATTERNS), min_size=width, max_size=width), min_size=1, max_size=6)))
@settings(max_examples=200, deadline=None)
def test_alternatives_written_with_their_shared_fields_once_match_what_any_of_them_matches(alternatives):
    """The line pattern of several alternatives (audit.prefilter.plain_coding's) writes the fields
    they share once: it matches exactly the lines one of them, written out in full, matches."""
    from itertools import product

    width = len(alternatives[0])
    lines = pl.Series([",".join(fields) for fields in product(["", "a", "b", "-", "ab"], repeat=width)])
    in_full = "|".join(",".join(alternative) for alternative in alternatives)
    shared = records._shared_once(alternatives, ",")
    assert lines.str.contains(f"^{shared}$").to_list() == lines.str.contains(f"^(?:{in_full})$").to_list()
