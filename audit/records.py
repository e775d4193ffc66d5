"""Stage 1a: every physical record of a CSV export, found and checked without the CSV parser.

The CSV parser reads only the columns the audit needs, so on its own it cannot see a row with a
field too many after the last column read (the values shift silently), nor tell a blank line from
a row of empty fields. This stage reads each *line* of the file as one string (polars, batched, no
quoting, a separator the file cannot contain), joins the lines of a record whose quoted field spans
line ends, and checks every record with vectorised expressions:

- its field count against the header's (separators outside quotes, plus one);
- its quoting (RFC 4180: a field is wholly quoted, with `""` for a quote, or unquoted, where
  quotes may only come in pairs with no separator between them);
- its length: a line over `FIELD_LIMIT` bytes (shortened by `audit.load` before polars sees it)
  or a record of several lines over it is rejected, so no field over the limit is ever held;
- in a file whose every line is a record (no quotes, or no quoted field spanning lines), its
  date fields: the rows with one that is not blank or a plain real ISO date are noted, so that
  only they get the full date test after parsing (audit.canonical); and its procedure fields,
  given patterns of clean coding (audit.prefilter.plain_coding): the rows that do not match them
  are noted, so that only they are triaged after parsing.

The result is an independent count of the file's records and the list of records the audit must
set aside, with their line numbers and a reason. Blank lines are not records.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from audit.dates import plain_date

FIELD_LIMIT = 1 << 20  # bytes in one field: far above any real episode value (a code is 4)
MAX_RECORD_LINES = 256  # a quote left open longer than this is taken as broken, not as a field
EXACT_PATTERN_FIELDS = 1_000  # above this many columns rows are checked by counting separators
LINE_BLOCK = 8 << 20  # bytes of lines per batch: bounds the scan's memory
HEADER_BLOCK = 64 << 10  # bytes of lines read at a time while looking for the header
SAMPLE_BLOCK = 256 << 10  # bytes of lines from the top of a file that decide whether its coding is tested
TRIAGE_SHARE = 0.2  # above this share of those lines failing it, it is not (`_often_fails`)
# A smaller file's coding is not tested on its lines: compiling the test's pattern (55 kB for a
# HES export, 28-47 ms on each thread that runs it) costs more than the test saves (a narrow
# parse, rows certified without triage) until some 200,000 HES rows (37 MB). Whole runs without
# it (session 26, alternating pairs): 100 to 50,000 episodes 0.06-0.15 s faster, 100,000 (18 MB)
# 0.06 s, 200,000 even, 1M 0.58 s slower. A trust's nightly export of a day or a month is below it.
LINE_CODING_FROM = 24 << 20
LINE_SEPARATOR = "\x00"  # never in a file that reaches here (NUL bytes are refused as binary)

BLANK = "blank"  # not a row: skipped, not counted
FIELDS_REASON = "malformed row: {found} fields where the header has {expected}"
QUOTING_REASON = "malformed row: broken quoting (a stray quote inside an unquoted field, or one never closed)"
LONG_FIELD_REASON = f"a field longer than {FIELD_LIMIT:,} bytes (the limit)"
LONG_LINE_PLACEHOLDER = "\x01"  # what `audit.load` leaves of a line over the limit (see there)


QUOTED_FIELD = '"(?:[^"]|"")*"'


def _field(sep: str) -> str:
    """One well-formed field: quoted throughout (`""` for a quote), or unquoted. An unquoted field
    may hold quotes in pairs with no separator between them (`=HYPERLINK("x")`): readers, polars
    included, take those as text, and they cannot shift or merge anything."""
    return f'(?:{QUOTED_FIELD}|(?:[^"{sep}](?:[^"{sep}]|"[^"{sep}]*")*)?)'


def _well_formed(separator: str) -> str:
    """A whole record of well-formed fields (`_field`), however many."""
    sep = re.escape(separator) if separator != "\t" else r"\t"
    field = _field(sep)
    return f"^{field}(?:{sep}{field})*$"


@dataclass(frozen=True)
class RecordScan:
    """What the line-level pass found in one file.

    `records`: the data records (header and blank lines excluded). `skipped`: the parser's data
    rows to leave out (`row`, 0-based, counting every line record the parser sees after the header,
    blank ones included), with `line` (1-based line in the file where the record starts) and
    `reason` (`BLANK`, or why it is rejected). `offsets`: (`row`, `line`) wherever the line number
    stops being `row + header_line + 1` (after a record spanning lines): the line of any row is
    that of the last offset at or before it. `broken_quoting`: the parser cannot read the file as
    it is; `audit.load` has it parse a copy in which those records are blank lines.
    """

    header_line: int
    header_fields: int
    records: int
    skipped: pl.DataFrame
    offsets: pl.DataFrame
    broken_quoting: bool
    # The data rows (`row`, as in `skipped`) with a date field that is neither blank nor a plain
    # real ISO date (`audit.dates.odd_date`): the only rows whose dates need the full validity
    # test. None where the scan did not look (a file scanned block by block, or no date fields named). Where
    # it tested the coding too, the rows that failed either test: `to_triage`, a superset.
    odd_dates: pl.Series | None = None
    # The data rows that did not match the clean-coding patterns the scan was given
    # (audit.prefilter.plain_coding), or whose dates are odd: the only rows the prefilter must
    # triage. None where the scan did not test the coding.
    to_triage: pl.Series | None = None
    # Where it tested the coding: `triage_lines`, the lines (`row`, `line`, `text`) of the `to_triage`
    # rows, below the `header_text`; and where it tested the dates against a run's as-of date
    # too, that date (`until`): no row it certifies has a date after it.
    until: date | None = None
    header_text: str | None = None
    triage_lines: pl.DataFrame | None = None

    def rejected(self) -> pl.DataFrame:
        return self.skipped.filter(pl.col("reason") != BLANK)


def line_batches(source: Path, block: int = LINE_BLOCK) -> Iterator[pl.DataFrame]:
    """The file's lines, a block of whole lines at a time. polars' own streaming reader keeps
    hundreds of megabytes in flight; this keeps about three blocks."""
    with open(source, "rb") as handle:
        rest = b""
        while True:
            data = handle.read(block)
            chunk, rest = rest + data, b""
            if data:
                end = chunk.rfind(b"\n")
                if end < 0:
                    rest = chunk  # a line longer than a block: read on
                    continue
                chunk, rest = chunk[:end + 1], chunk[end + 1:]
            if chunk:
                yield pl.read_csv(chunk, has_header=False, separator=LINE_SEPARATOR, quote_char=None,
                                  infer_schema=False, new_columns=["text"])
            if not data:
                return


def lines(source: Path) -> pl.LazyFrame:
    return pl.scan_csv(
        source, has_header=False, separator=LINE_SEPARATOR, quote_char=None, infer_schema=False,
        new_columns=["text"],
    )


def numbered_lines(source: Path) -> pl.LazyFrame:
    """The file's lines with `line`, their 1-based number in the file."""
    return lines(source).with_row_index("line", offset=1).with_columns(pl.col("line").cast(pl.Int64))


def _transitions(lines: pl.DataFrame, separator: str) -> pl.DataFrame:
    """Add `opens` and `stays`: what each line does to the state "inside a quoted field".

    `opens`: the state after the line when it starts outside a field; `stays`: when it starts
    inside one. A quote opens a field only at the start of one, so one stray quote cannot swallow
    the rows after it. Matching every line against the patterns would cost seconds per million
    rows, so only lines that can matter are: those with quotes that are not a whole row (`exact`),
    then those with quotes that start inside a field, until nothing changes (rare lines; every
    other line keeps the state: no quote, or quoted fields opened and closed).
    """
    for name, default in (("opens", False), ("stays", True), ("checked", False)):
        lines = lines.with_columns((pl.col(name) if name in lines.columns else pl.lit(None, pl.Boolean))
                                   .fill_null(default).alias(name))
    text = pl.col("text").fill_null("")
    # A line that is a whole well-formed row cannot open a field; of the others, those with quotes.
    lines = _match_lines(lines, ~pl.col("checked") & ~pl.col("exact") & text.str.contains('"', literal=True),
                         separator)
    while True:
        open_before = _open_after().shift(1, fill_value=False)
        todo = ~pl.col("checked") & open_before & text.str.contains('"', literal=True)
        if not lines.select(todo.any()).item():
            return lines
        lines = _match_lines(lines, todo, separator)


def _match_lines(lines: pl.DataFrame, which: pl.Expr, separator: str) -> pl.DataFrame:
    sep = re.escape(separator) if separator != "\t" else r"\t"
    field = _field(sep)
    inside = '(?:[^"]|"")*'
    numbered = lines.with_row_index("_i")
    matched = numbered.filter(which).select(
        "_i",
        _opens=pl.col("text").fill_null("").str.contains(f'^(?:{field}{sep})*"{inside}$'),
        _stays=pl.col("text").fill_null("").str.contains(f'^{inside}(?:"(?:{sep}{field})*{sep}"{inside})?$'),
    )
    if matched.height == 0:
        return lines
    return (
        numbered.join(matched, on="_i", how="left")
        .with_columns(opens=pl.coalesce("_opens", "opens"), stays=pl.coalesce("_stays", "stays"),
                      checked=pl.col("checked") | pl.col("_opens").is_not_null())
        .drop("_i", "_opens", "_stays")
    )


def _open_after() -> pl.Expr:
    """Whether each line ends inside a quoted field: a sequential fact, computed without a loop.

    Lines whose `opens` and `stays` agree set the state; the others keep it (no quote) or flip it.
    So the state after a line is the last setting line's value, flipped once per flip since.
    """
    opens, stays = pl.col("opens"), pl.col("stays")
    sets, flips = opens == stays, opens & ~stays
    flipped = flips.cast(pl.Int64).cum_sum()
    set_to = pl.when(sets).then(opens).forward_fill().fill_null(False)
    flipped_since = flipped - pl.when(sets).then(flipped).forward_fill().fill_null(0)
    return set_to ^ (flipped_since % 2 == 1)


def _split_records(lines: pl.DataFrame, final: bool, separator: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(complete records, lines of the record still open at the end) for a run of lines.

    `lines`: `text`, `line`, `long` (the line was over the limit). A quote left open for more than
    `MAX_RECORD_LINES` lines (or to the end of the file) marks its first line as broken, and the
    scan resumes on the next line as if that quote were not there.
    """
    done: list[pl.DataFrame] = []
    numbered = 0  # records numbered so far, so that parts never share a number
    while lines.height:
        lines = _transitions(lines, separator)
        marked = lines.with_columns(open_after=_open_after())
        marked = marked.with_columns(
            record=(~pl.col("open_after")).shift(1, fill_value=True).cum_sum().cast(pl.Int64) + numbered,
            unclosed=pl.lit(False))
        last = marked.row(-1, named=True)
        tail = marked.filter(pl.col("record") == last["record"])
        too_long = marked.group_by("record").len().filter(pl.col("len") > MAX_RECORD_LINES)["record"]
        if too_long.len() == 0 and not last["open_after"]:
            done.append(marked)
            lines = lines.clear()
            break
        if too_long.len() == 0 and not final and tail.height <= MAX_RECORD_LINES:
            done.append(marked.filter(pl.col("record") != last["record"]))
            lines = lines.tail(tail.height)
            break
        # The first record that never closes: its first line alone is broken; rescan the rest.
        first_bad = int(too_long.min()) if too_long.len() else last["record"]
        start = marked.filter(pl.col("record") < first_bad).height
        done.append(marked.head(start))
        done.append(marked.slice(start, 1).with_columns(unclosed=pl.lit(True)))
        numbered = first_bad
        lines = lines.slice(start + 1)
    return _records(done), lines


def _records(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """One row per record: its text (lines joined), first line, line count, flags."""
    columns = ["record", "text", "line", "lines", "long", "unclosed", "exact"]
    parts = [p for p in parts if p.height]
    if not parts:
        return pl.DataFrame(schema={"text": pl.String, "line": pl.Int64, "lines": pl.UInt32,
                                    "long": pl.Boolean, "unclosed": pl.Boolean, "exact": pl.Boolean})
    marked = pl.concat(parts)
    counts = marked.group_by("record").len("lines")
    multi_ids = counts.filter(pl.col("lines") > 1)
    single = marked.with_columns(lines=pl.lit(1, pl.UInt32)).select(columns)
    if multi_ids.height == 0:
        return single.drop("record")
    single = single.join(multi_ids, on="record", how="anti")
    size = pl.col("text").str.len_bytes().sum()
    multi = (
        marked.join(multi_ids, on="record", how="semi")
        .group_by("record", maintain_order=True)
        .agg(
            # A record over the limit is rejected whole: its lines need not be joined.
            pl.when(size > FIELD_LIMIT).then(pl.lit(None, pl.String))
            .otherwise(pl.col("text").fill_null("").str.join("\n")).alias("text"),
            pl.col("line").first(),
            pl.len().cast(pl.UInt32).alias("lines"),
            (pl.col("long").any() | (size > FIELD_LIMIT)).alias("long"),
            pl.col("unclosed").any(),
            pl.lit(False).alias("exact"),  # judged in full: it spans lines
        )
    )
    return pl.concat([single, multi.select(columns)]).sort("record").drop("record")


def _field_count(separator: str) -> pl.Expr:
    """Separators outside quoted sections, plus one."""
    text = pl.col("text")
    quoted = text.str.contains('"', literal=True).fill_null(False)
    unquoted = pl.when(quoted).then(text.str.replace_all(QUOTED_FIELD, "")).otherwise(text)
    return unquoted.str.count_matches(separator, literal=True) + 1


def _judge(records: pl.DataFrame, separator: str, expected: int) -> pl.DataFrame:
    """`reason` per record: None when it is a well-formed row, `BLANK`, or a rejection."""
    text = pl.col("text")
    quoted = text.str.contains('"', literal=True).fill_null(False)
    fields = _field_count(separator)
    well_formed = ~quoted | text.str.contains(_well_formed(separator))
    reason = (
        # No line over the limit gets here (audit.load shortens it and flags it `long`), so only a
        # record of many lines can be longer, and `_records` flags that too.
        pl.when(pl.col("long")).then(pl.lit(LONG_FIELD_REASON))
        .when((pl.col("lines") == 1) & (text.is_null() | (text.str.strip_chars() == ""))).then(pl.lit(BLANK))
        .when(pl.col("unclosed") | ~well_formed).then(pl.lit(QUOTING_REASON))
        .when(fields != expected).then(
            _fields_reason(fields, expected))
        .otherwise(pl.lit(None, pl.String))
    )
    return records.with_columns(reason=reason)


def _fields_reason(fields: pl.Expr, expected: int) -> pl.Expr:
    return pl.concat_str(pl.lit("malformed row: "), fields.cast(pl.String),
                         pl.lit(f" fields where the header has {expected}"))


def _exact(separator: str, expected: int | None) -> pl.Expr:
    """The line is a whole well-formed row of `expected` fields. One pattern checks quoting and the
    field count at once: a fraction of a second per million rows, where counting separators
    outside quotes takes seconds."""
    if not expected or expected == 1:  # header not seen yet; or one column, where a blank line passes
        return pl.lit(False)
    text = pl.col("text")
    if expected > EXACT_PATTERN_FIELDS:  # a pattern repeated that often is too big to compile
        return (~text.str.contains('"', literal=True)
                & (text.str.count_matches(separator, literal=True) == expected - 1)).fill_null(False)
    sep = re.escape(separator) if separator != "\t" else r"\t"
    field = _field(sep)
    return text.str.contains(f"^{field}(?:{sep}{field}){{{expected - 1}}}$").fill_null(False)


# Alternatives of patterns by field (0-based): a line passes when its fields match every
# pattern of one of them (audit.prefilter.plain_coding).
Coding = tuple[dict[int, str], ...]


def _checks_fields(expected: int, date_fields: frozenset[int], coding: Coding | None) -> bool:
    return bool(date_fields or coding) and 1 < expected <= EXACT_PATTERN_FIELDS


def _plain_row(separator: str, expected: int, date_fields: frozenset[int], coding: Coding | None = None,
               until: date | None = None, quoted: bool = False) -> pl.Expr:
    """`_exact` for a line that is a whole record, which also requires each of `date_fields`
    (0-based) to be blank or a plain real date (`audit.dates.plain_date`: on or before `until`,
    when given) and, given `coding`, the fields it names to match the patterns
    of one of its alternatives. One pattern per line tests the field count, the dates and the
    coding together, for about a third more than the field count alone, where the same tests after
    parsing cost twice the count (27 HES date columns: 0.24 s per million rows; the prefilter's
    joined 24 procedure fields: 0.36 s). Where neither is asked for, or the pattern would be too
    big, `_exact`. `quoted`: the file has quotes (exports from R, pandas or SQL Server may quote
    every field, or every text field), and its lines each hold a whole record (`_scan_by_line`).
    Matching costs by the byte: 1M HES lines 0.32 s, the same quoted throughout (1.7 times the
    bytes) 0.83 s."""
    if not _checks_fields(expected, date_fields, coding):
        return _exact(separator, expected)
    sep = re.escape(separator) if separator != "\t" else r"\t"
    # Any field may be quoted (without a quote inside: a line with one is only judged later), and
    # a date or procedure field is its pattern, or the same wrapped in quotes (their patterns hold
    # none), which the CSV parser reads as the same text.
    field, rest = (f'(?:"[^"]*"|[^"{sep}]*)', f'[^"{sep}]*') if quoted else (f"[^{sep}]*", f"[^{sep}]*")

    def value(pattern: str) -> str:
        return f'(?:{pattern}|"{pattern}")' if quoted else pattern
    date = value(f"(?:{plain_date(until, rest, uk=True)})?")  # (a CSV file's UK dates are plain)
    alternatives = [[value(named[i]) if i in named else date if i in date_fields else field for i in range(expected)]
                    for named in coding or [{}]]
    return pl.col("text").str.contains(f"^{_shared_once(alternatives, sep)}$").fill_null(False)


def _shared_once(alternatives: list[list[str]], sep: str) -> str:
    """One pattern for a line whose fields match those of any of `alternatives` (a pattern per
    field, the same number in each), with the fields they share written once: those at the end
    that all share, then, from the start, each run of fields a group of them shares, before the
    group branches (`(?:...|...)`). Its size grows with where the alternatives differ rather
    than with how many there are (audit.prefilter.plain_coding's padded alternatives differ in
    a few `-` fields each)."""
    unique = list(dict.fromkeys(map(tuple, alternatives)))
    width = len(unique[0])
    shared = next((k for k in range(width) if len({a[width - 1 - k] for a in unique}) > 1), width)
    head = _branching([a[:width - shared] for a in unique], sep)
    tail = sep.join(unique[0][width - shared:])
    return sep.join(([head] if shared < width else []) + ([tail] if shared else []))


def _branching(alternatives: list[tuple[str, ...]], sep: str) -> str:
    """`alternatives` (non-empty, the same length) as a tree: each group sharing a first field
    pattern written as it and then its rests' tree."""
    if not alternatives[0]:
        return ""
    groups: dict[str, list[tuple[str, ...]]] = {}
    for alternative in alternatives:
        groups.setdefault(alternative[0], []).append(alternative[1:])
    branches = [first + (f"{sep}{_branching(rests, sep)}" if rests[0] else "") for first, rests in groups.items()]
    return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"


def _suspect() -> pl.Expr:
    """True for every record `_judge` might not pass (and for blank lines): only those are judged."""
    text = pl.col("text")
    return (
        ~pl.col("exact") | text.is_null() | (text.str.len_bytes() > FIELD_LIMIT)
        | pl.col("long") | pl.col("unclosed") | (pl.col("lines") > 1)
    ).fill_null(True)


def scan_records(source: Path, separator: str, fields: int, long_lines: frozenset[int] = frozenset(),
                 quotes: bool = True, date_fields: frozenset[int] = frozenset(), coding: Coding | None = None,
                 until: date | None = None) -> RecordScan:
    """Count and check every record of `source` (UTF-8, LF or CRLF line ends, no NUL bytes).

    `fields`: the header's field count, as the CSV parser read it. `long_lines`: 1-based lines that `audit.load` found over the limit and shortened. `quotes`:
    the file holds a quote character (without one no record can span lines or be misquoted, and
    the quote bookkeeping is skipped: most exports; with quotes, it is skipped too where every
    line holds a whole record: `_scan_by_line`). `date_fields`: 0-based fields the audit reads
    as dates; where each line is a record the rows with an odd one are noted (`RecordScan.odd_dates`).
    `coding`: patterns of clean coding (audit.prefilter.plain_coding); where each line is a record
    the rows that do not match them are noted (`RecordScan.to_triage`), with their lines; given
    `until` (the run's as-of date) too, so are the rows with a date after it.
    """
    if not quotes or _lines_are_records(source, separator):
        scan = _scan_by_line(source, separator, fields, long_lines, date_fields, coding, until, quotes)
        if scan is not None:
            return scan
    return scan_blocks(source, separator, fields, long_lines)


def scan_blocks(source: Path, separator: str, fields: int, long_lines: frozenset[int] = frozenset()) -> RecordScan:
    """`scan_records` for any file: its lines a block at a time, the lines of a record whose quoted
    field spans line ends joined (`_split_records`), and each record judged (`_judge`)."""
    header_line = header_fields = None
    data_rows = 0  # parser rows after the header, blank ones included
    records = 0
    skipped: list[pl.DataFrame] = []
    offsets: list[pl.DataFrame] = []
    carry = pl.DataFrame(schema={"text": pl.String, "line": pl.Int64, "long": pl.Boolean, "exact": pl.Boolean})
    next_line = 1
    batches = line_batches(source)
    pending = next(batches, None)
    while pending is not None:
        following = next(batches, None)
        batch = pending.with_columns(line=pl.int_range(next_line, next_line + pending.height, dtype=pl.Int64))
        next_line += pending.height
        batch = batch.with_columns(long=pl.col("line").is_in(list(long_lines)) if long_lines else pl.lit(False),
                                   exact=_exact(separator, fields))
        complete, carry = _split_records(pl.concat([carry, batch], how="diagonal"), following is None, separator)
        pending = following
        if header_line is None:
            nonblank = complete.filter(pl.col("text").str.strip_chars().fill_null("") != "")
            if nonblank.height == 0:
                continue  # polars skips blank lines before the header, and so do we
            first = nonblank.row(0, named=True)
            header_line = first["line"]
            header_fields = int(nonblank.head(1).select(_field_count(separator)).item())
            complete = complete.filter(pl.col("line") > header_line)
        numbered = complete.with_row_index("row", offset=data_rows).with_columns(pl.col("row").cast(pl.Int64))
        data_rows += numbered.height
        odd = _judge(numbered.filter(_suspect()), separator, header_fields)
        odd = odd.filter(pl.col("reason").is_not_null())
        records += numbered.height - odd.filter(pl.col("reason") == BLANK).height
        skipped.append(odd.select(
            "row", "line", (pl.col("line") + pl.col("lines").cast(pl.Int64) - 1).alias("last_line"), "reason"))
        # Where the line number stops being the row number plus a constant: at each batch's first
        # row, and after each record that spans several lines.
        offsets.append(numbered.head(1).select("row", "line"))
        offsets.append(numbered.filter(pl.col("lines") > 1).select(
            pl.col("row") + 1, pl.col("line") + pl.col("lines").cast(pl.Int64)))
    if header_line is None:
        header_line, header_fields = 0, 0
    offsets_frame = (pl.concat(offsets).unique("row", keep="last").sort("row") if offsets
                     else pl.DataFrame(schema={"row": pl.Int64, "line": pl.Int64}))
    skipped_frame = (pl.concat(skipped) if skipped
                     else pl.DataFrame(schema={"row": pl.Int64, "line": pl.Int64, "last_line": pl.Int64, "reason": pl.String}))
    return RecordScan(
        header_line=header_line,
        header_fields=header_fields,
        records=records,
        skipped=skipped_frame,
        offsets=offsets_frame.select("row", "line", pl.col("row").alias("offset_row")),
        broken_quoting=bool((skipped_frame["reason"] == QUOTING_REASON).any()),
    )


# Up to this size a file's lines are counted by polars' fast count, which maps the whole file into
# memory: its pages count as the process's own (10M HES episodes: 1.8 GB of a 4.0 GB peak). A
# larger file is counted by streaming its lines: 0.44 s at 10M lines against 0.11 s, in 0.35 GB.
MAPPED_COUNT_BYTES = 256 << 20


def _line_count(source: Path) -> int:
    if source.stat().st_size <= MAPPED_COUNT_BYTES:
        return lines(source).select(pl.len()).collect().item()
    last = lines(source).with_row_index("line").select(pl.col("line").max()).collect(engine="streaming").item()
    return 0 if last is None else last + 1


def _first_nonblank(source: Path, blank: pl.Expr) -> pl.DataFrame:
    """The file's first line that is not `blank` (`line`, 1-based, and `text`), read a small block
    of lines at a time from the start, as the block-by-block scan reads them: the same query over
    the whole file's lines read all of it (0.05 s per million lines) to find one near its top."""
    seen = 0
    for batch in line_batches(source, block=HEADER_BLOCK):
        found = batch.with_row_index("line", offset=seen + 1).filter(~blank).head(1)
        if found.height:
            return found.select(pl.col("line").cast(pl.Int64), "text")
        seen += batch.height
    return pl.DataFrame()


def _lines_are_records(source: Path, separator: str) -> bool:
    """Whether each line in the file's first SAMPLE_BLOCK bytes is a whole well-formed record (or
    blank): no quoted field there spans lines, as in the exports that quote every field or only
    some text. Then the whole file is likely so, and `_scan_by_line` finds out."""
    sample = next(line_batches(source, block=SAMPLE_BLOCK), None)
    return sample is not None and bool(sample.select(pl.col("text").fill_null("").str.contains(
        _well_formed(separator)).all()).item())


def _often_fails(source: Path, header_line: int, plain: pl.Expr) -> bool:
    """Whether more than TRIAGE_SHARE of the data lines in the file's first SAMPLE_BLOCK bytes fail
    the clean-coding pattern: in a targeted extract (most episodes spinal operations), testing it
    on every line would cost more than it saves."""
    sample = next(line_batches(source, block=SAMPLE_BLOCK), None)
    if sample is None:
        return False
    rows = sample.with_row_index("line", offset=1).filter(pl.col("line") > header_line).select(~plain)
    return rows.height > 0 and rows.to_series().mean() > TRIAGE_SHARE


def _scan_by_line(source: Path, separator: str, fields: int, long_lines: frozenset[int],
                  date_fields: frozenset[int] = frozenset(), coding: Coding | None = None,
                  until: date | None = None, quoted: bool = False) -> RecordScan | None:
    """`scan_records` for a file whose every line is one record: a file without a quote character
    (most exports), or, `quoted`, one whose quoted fields never span lines (None when a line
    shows that one does, or is broken: the block-by-block scan judges such a file). Each line is
    judged alone, and polars' streaming engine does it on every core, keeping only the lines that
    may not be well-formed rows (blank, too long, a field count off): a third of the time of the
    block-by-block scan, whose record joining such a file never needs. Memory (the HES
    benchmark, the process whole): 0.59 GB at 1M lines, 0.70 GB at 10M."""
    text = pl.col("text")
    blank = text.is_null() | (text.str.strip_chars() == "")
    long = pl.col("line").is_in(list(long_lines)) if long_lines else pl.lit(False)
    numbered = numbered_lines(source)
    header = _first_nonblank(source, blank) if source.stat().st_size else pl.DataFrame()
    if header.height == 0:  # empty, or blank lines only: no header, no records
        empty = pl.DataFrame(schema={"row": pl.Int64, "line": pl.Int64, "last_line": pl.Int64, "reason": pl.String})
        return RecordScan(0, 0, 0, empty, pl.DataFrame(schema={"row": pl.Int64, "line": pl.Int64, "offset_row": pl.Int64}),
                          False)
    header_line = int(header["line"].item())
    header_fields = int(header.select(_field_count(separator)).item())
    if coding and (source.stat().st_size < LINE_CODING_FROM or _often_fails(
            source, header_line, _plain_row(separator, fields, date_fields, coding, until, quoted))):
        coding = None  # (or most rows are triaged anyway): cheaper from the parsed columns (audit.prefilter)
    # A certified row's dates are needed only to know that none is after `until`: tested here,
    # they need not be parsed (audit.canonical reads their columns from `triage_lines` alone).
    coding_tested = bool(coding) and _checks_fields(fields, date_fields, coding)
    until = until if coding_tested else None
    data = numbered.filter(pl.col("line") > header_line).with_columns(long=long)
    # One query, the suspect lines only, as what judging them needs rather than as text (a row
    # that only fails the dates or the coding is well-formed: a few percent of the file). Counting
    # the lines in the same query (`collect_all`) made polars hold every line the slower branch
    # had not reached: 1.6-1.9 GB at 10M lines, where the line count alone reads no text.
    suspects = data.filter(
        ~_plain_row(separator, fields, date_fields, coding, until, quoted) | pl.col("long") | text.is_null()
        | (text.str.len_bytes() > FIELD_LIMIT)  # (blank lines are among them: they fail every pattern)
    ).select("line", "long", blank.alias("blank"),
             (_field_count(separator) if quoted else text.str.count_matches(separator, literal=True) + 1)
             .alias("fields"),
             # A line that is not a whole record on its own: the file is judged block by block.
             *([text.fill_null("").str.contains(_well_formed(separator)).alias("whole")] if quoted else []),
             # The lines of the rows to triage are kept (7% of the benchmark's: 13 MB per million
             # lines), so their columns are parsed from them alone (audit.load `Export.triage_rows`).
             # Copied: a line as read is a view into the parser's buffers, which the few kept
             # would hold whole (10M lines: 2.2 GB, against 0.7 GB copied).
             *([pl.concat_str(text, pl.lit("")).alias("text")] if coding_tested else [])).collect(engine="streaming")
    if quoted and not suspects["whole"].all():
        return None
    rows = _line_count(source) - header_line
    blanks = int(suspects["blank"].sum())
    # `_judge`'s reasons, for lines that are whole records (no line over the limit gets here: see there).
    judged = suspects.with_columns(reason=pl.when(pl.col("long")).then(pl.lit(LONG_FIELD_REASON))
                                   .when(pl.col("blank")).then(pl.lit(BLANK))
                                   .when(pl.col("fields") != header_fields)
                                   .then(_fields_reason(pl.col("fields"), header_fields))
                                   .otherwise(pl.lit(None, pl.String)))
    row = (pl.col("line") - header_line - 1).alias("row")
    skipped = judged.filter(pl.col("reason").is_not_null()).select(
        row, "line", pl.col("line").alias("last_line"), "reason")
    # A well-formed row that failed the line's pattern has a date that is not plain, or coding
    # that is not plainly clean. Which of the two is left to the full tests after parsing, on
    # these rows only: telling them apart here took a second pattern as dear to compile.
    well_formed = judged.filter(pl.col("reason").is_null())
    failed = well_formed.select(row)["row"]
    checked = _checks_fields(fields, date_fields, coding)
    odd_dates, to_triage = (failed if checked else None), (failed if coding_tested else None)
    return RecordScan(
        header_line=header_line,
        header_fields=header_fields,
        records=int(rows) - int(blanks),
        skipped=skipped,
        # One record per line: a row's line is its number past the header's, throughout.
        offsets=pl.DataFrame({"row": [0], "line": [header_line + 1], "offset_row": [0]},
                             schema={"row": pl.Int64, "line": pl.Int64, "offset_row": pl.Int64}).head(min(rows, 1)),
        broken_quoting=False,
        odd_dates=odd_dates,
        to_triage=to_triage,
        until=until,
        header_text=header["text"].item() if coding_tested else None,
        triage_lines=well_formed.select(row, "line", "text") if coding_tested else None,
    )
