"""Stage 1: find the input files, read only the columns the audit needs, as text.

Every value is read as a string so that nothing is lost to type inference (`0101` stays `0101`,
`3.0` stays `3.0`); the canonical stage parses what it needs. Output: one `Export` per file, read in batches with
columns renamed to canonical names (`episode_id`, `code_1`/`date_1`… or `position`/`code`…),
plus `source_file` and `source_row` (the 1-based data row, header excluded).
"""

from __future__ import annotations

import atexit
import codecs
import gzip
import hashlib
import json
import logging
import re
import shutil
import tempfile
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from audit.codes import CodePattern
from audit.dates import england_times, typed_dates
from audit.errors import InputError, UserError
from audit import memory, records
from audit.layouts import DATE_FIELDS, ENCODINGS, ColumnPlan, Mapping, detect_layout, plan_for
from audit.prefilter import plain_coding
from audit.records import (
    BLANK, FIELD_LIMIT, LONG_FIELD_REASON, LONG_LINE_PLACEHOLDER, QUOTING_REASON, RecordScan, scan_records,
)
from audit.validate import REJECTED_SCHEMA

log = logging.getLogger(__name__)

try:  # python-isal, a dependency: ISA-L inflates 2.6 times as fast as zlib (a 1M-episode export's
    # 58 MB: 0.53 -> 0.21 s); the same gzip format, multi-member files included
    from isal import igzip as _gzip
    from isal.igzip_lib import IsalError as _InflateError
except ImportError:  # pragma: no cover - isal ships wheels for the platforms we run on
    _gzip, _InflateError = gzip, zlib.error

EXPORT_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".txt", ".tsv")
READ_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)


CARRY_PREFIX = "carry:"  # carried columns keep their export name behind this prefix
BATCH_ROWS = 500_000  # rows per batch: bounds memory on national-scale files


Extend = Callable[[pl.LazyFrame], pl.LazyFrame]


def _unchanged(query: pl.LazyFrame) -> pl.LazyFrame:
    return query


@dataclass(frozen=True)
class Export:
    """One input file, ready to be read in batches of canonical columns (all text):
    `episode_id`, episode fields, `code_1`/`date_1`… (wide) or `position`/`code_raw`/
    `procedure_date` (long), plus `source_file`, `source_row` (1-based data row: header and
    blank lines excluded) and `source_line` (1-based line of the file where the row starts; null
    for Parquet)."""

    path: Path
    plan: ColumnPlan
    digest: str | Digest  # the sha256 of the file as given (a Digest while it is being computed)
    encoding: str
    source: Path  # what polars reads: the file itself, or a normalised UTF-8 copy of it
    separator: str = ","
    batch_rows: int | None = None  # None: BATCH_ROWS, read when the file is read
    scan: RecordScan | None = None  # CSV only: the independent record count and malformed rows
    # The index codes the scan's clean-coding test was built for (audit.prefilter.plain_coding):
    # its `to_triage` rows hold for an audit with this index only.
    clean_for: tuple[CodePattern, ...] | None = None
    # Parquet only: the columns Spark's schema in the file calls timestamps (`spark_instants`).
    utc_columns: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return display(self.path)

    @property
    def sha256(self) -> str:
        return str(self.digest)

    def structural_rejects(self) -> pl.DataFrame:
        """Rows the record scan found malformed, in the rejected-rows shape."""
        if self.scan is None:
            return pl.DataFrame(schema=REJECTED_SCHEMA)
        bad = self.scan.rejected().select("row", "reason")
        return self._numbered(bad.lazy()).collect().select(
            pl.lit(self.name, pl.String).alias("source_file"), "source_row",
            pl.lit(None, pl.String).alias("episode_id"), "reason", "source_line")

    def _numbered(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """`row` (0-based parser row) -> `source_row` (blank lines not counted) and `source_line`."""
        if self.scan is None:
            return frame.with_columns(source_row=pl.col("row") + 1, source_line=pl.lit(None, pl.Int64))
        blanks = (self.scan.skipped.filter(pl.col("reason") == BLANK).select("row")
                  .with_row_index("blanks", offset=1).with_columns(pl.col("blanks").cast(pl.Int64)))
        offsets = self.scan.offsets
        # Most files have no blank line and one record per line: their numbers need no join
        # (two as-of joins cost 20 ms per 500,000 rows).
        frame = frame.sort("row")  # already in order: a check, not a copy worth noting (one column)
        if blanks.height:
            frame = frame.join_asof(blanks.lazy(), on="row", strategy="backward")
        else:
            frame = frame.with_columns(blanks=pl.lit(None, pl.Int64))
        if offsets.height == 1 and offsets["row"].item() == 0:  # every row's line is row + the first's
            frame = frame.with_columns(line=pl.lit(offsets["line"].item(), pl.Int64), offset_row=pl.lit(0, pl.Int64))
        else:
            frame = frame.join_asof(offsets.lazy(), on="row", strategy="backward")
        return frame.with_columns(
            source_row=pl.col("row") + 1 - pl.col("blanks").fill_null(0),
            source_line=pl.col("line") + pl.col("row") - pl.col("offset_row"),
        ).drop("blanks", "line", "offset_row")

    def _query(self, frame: pl.LazyFrame, first_row: int = 0, narrow: bool = False) -> pl.LazyFrame:
        """The canonical columns of the needed columns, with `row` (0-based parser row); `narrow`:
        the id and the procedure codes only (`batches`)."""
        frame = frame.select(self.plan.source_columns())
        if self.utc_columns:  # instants in UTC, then England's wall time (audit.dates.england_times)
            schema = frame.collect_schema()
            frame = frame.with_columns(pl.col(c).dt.replace_time_zone("UTC") for c in self.utc_columns
                                       if isinstance(schema.get(c), pl.Datetime) and schema[c].time_zone is None)
        frame = _canonical_columns(frame, self.plan, narrow)
        if is_parquet(self.path):
            # Text, as a CSV file's columns are, but the dates the file types (audit.dates.TYPED_DATES):
            # the checks test those as they are, and audit.canonical casts the rows it keeps.
            frame = frame.with_columns(england_times(frame.collect_schema()))
            schema = frame.collect_schema()
            typed = typed_dates(schema)
            frame = frame.with_columns(pl.col(c).cast(pl.String, strict=False) for c, dtype in schema.items()
                                       if dtype != pl.String and c not in typed)
        return frame.with_row_index("row", offset=first_row).with_columns(pl.col("row").cast(pl.Int64))

    def batches(self, extend: Extend | None = None, narrow: bool = False) -> Iterator[pl.DataFrame]:
        """Batches of about `BATCH_ROWS` rows; a long file's batches end where an episode does
        (when the file keeps each episode's rows together, as exports do; audit.canonical does
        not rely on it). Rows the record scan set aside (blank lines, malformed rows) are left out.

        `extend` adds columns to the file's query (audit.canonical's row checks and triage), so
        polars computes them in its streaming engine while it parses, not in passes of their own.

        `narrow` (a CSV file whose coding the record scan tested): only the id and the procedure
        codes are parsed, which is all a row the scan certified needs; the other rows' columns
        come from their lines (`triage_rows`). Parsing costs by the column materialised: at 1M
        rows of the benchmark's export, the id and 24 codes 0.65 s, the 55 columns the audit
        reads 1.28 s. A certified row's codes are only counted (or looked up in the user's code
        list), so they are parsed as categories, not text: a few hundred distinct values in
        millions of fields, each stored once (10M rows: 7.6 -> 5.9 s, CPU 14.0 -> 11.0 s)."""
        rows = self.batch_rows or BATCH_ROWS
        extend = extend or _unchanged
        try:
            if is_parquet(self.path) and rows is not None:
                # One slice per batch, read when it is wanted: polars' batched Parquet reader
                # decodes ahead of its consumer without bound (3M rows audited: 3.4 GB, growing
                # 0.86 GB per million), where a slice decodes only the row groups it covers.
                total = pl.scan_parquet(self.source).select(pl.len()).collect().item()
                batches = (extend(self._query(pl.scan_parquet(self.source).slice(start, rows), start)).collect()
                           for start in range(0, total, rows))
            elif is_parquet(self.path):
                batches = [extend(self._query(pl.scan_parquet(self.source))).collect()]
            else:
                # truncate_ragged_lines: a row with extra fields must not stop the read; the scan
                # has already set it aside, and this keeps the parser's rows in step with it.
                categories = {slot.code: pl.Categorical for slot in self.plan.slots
                              if slot.code != self.plan.episode_id} if narrow else None
                query = self._query(pl.scan_csv(self.source, infer_schema=False, separator=self.separator,
                                                truncate_ragged_lines=True, schema_overrides=categories),
                                    narrow=narrow)
                if self.scan is not None and self.scan.skipped.height:
                    query = query.join(self.scan.skipped.lazy().select("row"), on="row", how="anti")
                query = extend(query)
                batches = [query.collect()] if rows is None else query.collect_batches(chunk_size=rows)
            if self.plan.shape == "long":
                batches = _episode_aligned(batches)
            for batch in batches:
                yield self._with_sources(batch)
        except READ_ERRORS:  # polars' messages may quote file contents: never echo them
            problem = ("cannot be read as Parquet (corrupt or truncated)" if is_parquet(self.path)
                       else "malformed CSV (a row with more fields than the header, or broken quoting)")
            raise InputError(self.path, problem) from None

    def _with_sources(self, batch: pl.DataFrame) -> pl.DataFrame:
        """`row` replaced by `source_row`, `source_line` and `source_file`. Numbered through the
        row column alone (rows come in order): joining the whole batch would copy every column."""
        numbers = self._numbered(batch.select("row").lazy()).collect()
        return batch.drop("row").with_columns(
            numbers["source_row"], numbers["source_line"], source_file=pl.lit(self.name, pl.String))

    def triage_rows(self, lines: pl.Series, extend: Extend | None = None, again: bool = False) -> pl.DataFrame:
        """The rows that start on these `lines` (all among the record scan's `to_triage` rows), in
        every column `batches` gives, parsed from the scan's copy of their lines by the same CSV
        parser (below the file's own header: the same names, the same empty fields as nulls), in
        their order in the file. `again`: rows the scan certified, so did not keep: their lines are
        read again from the file (one streaming pass over its lines)."""
        kept = (self._lines_again(lines) if again
                else self.scan.triage_lines.filter(pl.col("line").is_in(lines.implode())))
        if kept.height != lines.len():  # a bug: rows to triage the scan did not keep
            raise RuntimeError(f"{lines.len()} rows to triage, {kept.height} of their lines kept")
        text = "\n".join([self.scan.header_text, *([kept["text"].str.join("\n").item()] if kept.height else []), ""])
        try:
            parsed = pl.read_csv(text.encode(), infer_schema=False, separator=self.separator)
        except READ_ERRORS:
            raise InputError(self.path, "malformed CSV (a row the record scan passed could not be parsed)") from None
        rows = self._query(parsed.lazy()).with_columns(kept["row"])
        return self._with_sources((extend or _unchanged)(rows).collect())

    def _lines_again(self, lines: pl.Series) -> pl.DataFrame:
        """(`row`, `line`, `text`) of these lines of a file the scan read by line (one record per
        line: a row's number is its line's past the header's)."""
        return records.numbered_lines(self.source).filter(pl.col("line").is_in(lines.implode())).select(
            (pl.col("line") - self.scan.header_line - 1).alias("row"), "line", "text").collect(engine="streaming")


def _episode_aligned(batches) -> Iterator[pl.DataFrame]:
    """Hold back each batch's last episode (ids compared as audit.canonical strips them) and
    put it before the next batch: consecutive rows of one episode never straddle two batches."""
    held = None
    for batch in batches:
        if held is not None:
            batch = pl.concat([held, batch])
        if batch.height == 0:
            held = batch
            continue
        cut = _last_episode_start(batch["episode_id"])
        held = batch.slice(cut)
        if cut:
            yield batch.slice(0, cut)
    if held is not None and held.height:
        yield held


def _last_episode_start(ids: pl.Series, tail: int = 1024) -> int:
    """Where the trailing run of the last id (stripped) starts: just after the last row with
    another id. Looked for in the last `tail` rows, then eight times as many (an episode has a
    few rows): stripping every id of a 500,000-row batch to find it cost 14 ms."""
    while True:
        part = ids.slice(-tail).str.strip_chars()
        last = part[-1]
        others = (part != last) | part.is_null() if last is not None else part.is_not_null()
        if others.any():
            return ids.len() - part.len() + int(others.arg_true().max()) + 1
        if part.len() == ids.len():
            return 0
        tail *= 8


def display(path: Path) -> str:
    """A path as it can be printed and written to UTF-8 files: undecodable bytes in a name
    (a file copied from another system) become escapes instead of failing the run."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; a directory means every export directly inside it, in name order."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(EXPORT_SUFFIXES)
            )
            if not found:
                raise InputError(path, "directory holds no .csv, .csv.gz or .parquet files")
            files += found
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise InputError(path, "not a regular file")
        else:
            raise InputError(path, "no such file or directory")
    if len(set(files)) != len(files):
        raise UserError("the same input file is named more than once")
    return files


def is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PAR1"


READ_CHUNK = 1 << 18  # bytes per read; below FIELD_LIMIT, so only a line crossing reads can be over it
BOMS = (  # longest first: UTF-32 LE starts with the UTF-16 LE mark
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class Content:
    """What one pass over a text file found (before any copy is made)."""

    utf8: bool  # valid UTF-8 throughout (a UTF-8 BOM allowed)
    bom: str | None  # the encoding a byte order mark names, if the file starts with one
    nul: bool  # holds a NUL byte: binary, unless UTF-16/32
    lone_cr: bool  # a CR not followed by LF: a line end we must not let the CSV parser merge
    long_line: bool  # a line over FIELD_LIMIT bytes
    quotes: bool  # holds a quote character (else no record can span lines or be misquoted)


_LONE_CR, _LONE_CR_TEXT = re.compile(rb"\r(?!\n)"), re.compile("\r(?!\n)")


def _inspect(path: Path) -> Content:
    """One streaming pass: the checks that decide whether the file can be parsed as it is (the
    sha256 is computed beside it, in a thread: `Digest`)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, nul, lone_cr, long_line, quotes = True, False, False, False, False
    run, previous_cr, bom = 0, False, None
    with open(path, "rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            if handle.tell() == len(chunk):  # the first read
                bom = next((name for mark, name in BOMS if chunk.startswith(mark)), None)
            nul = nul or b"\x00" in chunk
            quotes = quotes or b'"' in chunk
            # (`in` is a memchr; the pattern's search skips to each CR as fast, where counting CR LFs
            # cost 0.17 s per 180 MB of a Windows export. A CR ending the chunk waits for the next.)
            if not lone_cr and (previous_cr or b"\r" in chunk):
                found = _LONE_CR.search(chunk)
                lone_cr = ((previous_cr and not chunk.startswith(b"\n"))
                           or (found is not None and found.end() < len(chunk)))
                previous_cr = chunk.endswith(b"\r")
            first = chunk.find(b"\n")
            if first < 0:
                run += len(chunk)
            else:
                run, long_line = len(chunk) - chunk.rfind(b"\n") - 1, long_line or run + first > FIELD_LIMIT
            long_line = long_line or run > FIELD_LIMIT
            # ASCII is UTF-8: tested at memory speed, it spares decoding the chunk (unless the last
            # one ended inside a multi-byte character, which the decoder holds).
            if utf8 and not (chunk.isascii() and not decoder.getstate()[0]):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
    lone_cr = lone_cr or previous_cr
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    return Content(utf8, bom, nul, lone_cr, long_line, quotes)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Digest:
    """A file's sha256, computed in a thread while the run reads and audits the file: hashlib
    releases the GIL on large buffers, so on a 2-core machine the hash (0.23 s per 184 MB, a
    million HES episodes) overlaps the parsing instead of adding a serial pass before it.
    `str()` waits for it; it pickles as the finished text. A daemon thread: a run that stops
    on an error does not wait for the hash of a file it will not audit."""

    def __init__(self, path: Path):
        self.path = path
        self._done = threading.Event()
        self._value: str | None = None
        threading.Thread(target=self._hash, name="sha256", daemon=True).start()

    def _hash(self) -> None:
        try:
            self._value = _sha256(self.path)
        except OSError:
            pass
        finally:
            self._done.set()

    def __str__(self) -> str:
        self._done.wait()
        if self._value is None:
            raise InputError(self.path, "could not be read to the end (changed or removed during the run?)")
        return self._value

    def __reduce__(self):
        return (str, (str(self),))


def _temporary(suffix: str) -> Path:
    handle = tempfile.NamedTemporaryFile(prefix="nice-audit-", suffix=suffix, delete=False)
    handle.close()
    path = Path(handle.name)
    _TEMPORARY.append(path)
    return path


_TEMPORARY: list[Path] = []  # copies made this run; removed at exit


@atexit.register
def remove_temporary() -> None:
    for path in _TEMPORARY:
        path.unlink(missing_ok=True)


MAX_EXPANSION = 100  # CSV exports compress 5-20 times; far more is a decompression bomb
MIN_EXPANSION_CAP = 1 << 30  # small files may expand further: up to 1 GiB is always allowed


DISK_CHECK_EVERY = 64 << 20  # bytes decompressed between looks at the temporary folder's free space
DISK_RESERVE = 1 << 30  # leave this much free: a full /tmp breaks the rest of the machine, not only us


def _check_room(path: Path, target: Path, written: int) -> None:
    """Even a plausible expansion may not fit where temporary files go: stop while the disk still
    has room for everything else on the machine, naming the folder (TMPDIR moves it)."""
    if shutil.disk_usage(target.parent).free < DISK_RESERVE:
        raise InputError(path, f"decompressing it needs more room than {target.parent} has (stopped after "
                         f"{written / (1 << 20):,.0f} MB with under {DISK_RESERVE >> 30} GiB left free); "
                         "set TMPDIR to a folder with more space")


def _gunzip(path: Path) -> Path:
    """Decompress to a temporary file, streamed: a 10 GB expansion never sits in memory, and one
    that grows past MAX_EXPANSION times the file's size is stopped as it comes."""
    target = _temporary(".csv")
    cap = max(MAX_EXPANSION * path.stat().st_size, MIN_EXPANSION_CAP)
    written = checked = 0
    try:
        with _gzip.open(path, "rb") as source, open(target, "wb") as out:
            while chunk := source.read(READ_CHUNK):
                written += len(chunk)
                if written > cap:
                    raise InputError(path, f"expands to more than {MAX_EXPANSION} times its size (over "
                                     f"{cap / (1 << 20):,.0f} MB): not a plausible export")
                if written - checked >= DISK_CHECK_EVERY:
                    checked = written
                    _check_room(path, target, written)
                out.write(chunk)
    except (EOFError, OSError, zlib.error, _InflateError, gzip.BadGzipFile):
        raise InputError(path, "truncated or corrupt gzip file") from None
    return target


class _LineCapper:
    """Writes text, replacing each line over FIELD_LIMIT characters by a one-character
    placeholder (plus a quote if the line held an odd number, so quoting stays in step) and
    noting its line number. Holds back at most one line start of under FIELD_LIMIT."""

    def __init__(self, out):
        self.out, self.pending, self.line = out, "", 1
        self.dropping, self.quotes = False, 0
        self.long_lines: set[int] = set()

    def _drop(self, text: str) -> str:
        """Consume the rest of an over-long line; return what follows it."""
        end = text.find("\n")
        self.quotes += text.count('"', 0, None if end < 0 else end)
        if end < 0:
            return ""
        self.out.write(LONG_LINE_PLACEHOLDER + '"' * (self.quotes % 2))
        self.long_lines.add(self.line)
        self.dropping, self.quotes = False, 0
        return text[end:]

    def write(self, text: str) -> None:
        if self.dropping:
            text = self._drop(text)
            if not text:
                return
        text = self.pending + text
        first = text.find("\n")
        if first > FIELD_LIMIT or (first < 0 and len(text) > FIELD_LIMIT):
            self.pending, self.dropping = "", True
            return self.write(text)
        last = text.rfind("\n")
        complete, self.pending = text[:last + 1], text[last + 1:]
        self.line += complete.count("\n")
        self.out.write(complete)

    def close(self) -> None:
        if self.dropping:
            self._drop("\n")
        else:
            self.out.write(self.pending)


LINE_FEED_BYTE = ("utf-8", "cp1252", "latin-1")  # encodings whose byte 0x0A is only ever a line feed


def _normalised(path: Path, raw: Path, encoding: str, content: Content) -> tuple[Path, frozenset[int]]:
    """A UTF-8 copy with no line over FIELD_LIMIT and no lone CR (CR LF or LF line ends), written
    as a stream; and the lines that were over it."""
    target = _temporary(".csv")
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict" if encoding.startswith("utf") else "replace")
    skip = len(next(mark for mark, name in BOMS if name == content.bom)) if content.bom else 0
    previous_cr = False
    try:
        with open(raw, "rb") as source, open(target, "w", encoding="utf-8", newline="") as out:
            source.seek(skip)
            # Lines are measured where the inspection may have missed one over FIELD_LIMIT: it
            # found one, or the encoding is wide (a UTF-16 character's bytes may hold 0x0A). In
            # the others no line is longer in characters than in bytes, and the capper's search
            # and count of every line end cost 0.15 s per million lines with nothing to find.
            capper = _LineCapper(out) if content.long_line or encoding not in LINE_FEED_BYTE else None
            write = capper.write if capper else out.write
            while True:
                chunk = source.read(READ_CHUNK)
                text = decoder.decode(chunk, final=not chunk)
                if previous_cr:
                    text = "\r" + text
                previous_cr = text.endswith("\r") and bool(chunk)
                if previous_cr:
                    text = text[:-1]
                if "\x00" in text:
                    raise InputError(path, "binary content: not a CSV or Parquet export")
                # A lone CR (old Mac exports, stray CRs) ends a line: it becomes LF. CR LF is left
                # as it is, as polars and the record scan read it in a UTF-8 file, a CR LF inside a
                # quoted value too (replacing every CR LF, then every CR, cost 0.34 s per million lines).
                if "\r" in text:
                    text = _LONE_CR_TEXT.sub("\n", text)
                write(text)
                if not chunk:
                    break
            if capper:
                capper.close()
    except UnicodeDecodeError:
        raise InputError(path, f"not valid {encoding} text (try --encoding cp1252)") from None
    return target, frozenset(capper.long_lines if capper else ())


def _csv_source(path: Path, encoding: str) -> tuple[Path, str, Content, frozenset[int]]:
    """(a UTF-8 file polars can scan, the encoding read, what the file holds, over-long lines).

    Windows PAS exports are commonly cp1252; anything that is not valid UTF-8 is read as cp1252
    (with a notice) unless --encoding says otherwise. A byte order mark names its encoding:
    Excel's "Unicode text" is UTF-16 LE with one. Gzip files are decompressed to a temporary file,
    and so is any file that needs changing before polars can read it (another encoding, lone CRs,
    over-long lines): both streamed, so memory stays bounded whatever the size.
    """
    gz = path.name.lower().endswith(".gz")
    raw = _gunzip(path) if gz else path
    content = _inspect(raw)
    wide_bom = content.bom not in (None, "utf-8")
    if content.nul and not wide_bom:
        raise InputError(path, "binary content: not a CSV or Parquet export")
    if encoding == "auto":
        encoding = content.bom if wide_bom else ("utf-8" if content.utf8 else "cp1252")
        if encoding == "cp1252":
            log.warning("%s: not valid UTF-8; read as cp1252 (use --encoding to choose)", display(path))
    if encoding == "utf-8" and not content.utf8:
        raise InputError(path, "not valid utf-8 text (try --encoding cp1252)")
    if encoding == "utf-8" and not (content.lone_cr or content.long_line):
        return raw, encoding, content, frozenset()
    # A UTF-8 BOM before a cp1252 body: the mark is dropped, the body read as cp1252.
    source, long_lines = _normalised(path, raw, encoding, content)
    return source, encoding, content, long_lines


SEPARATORS = (",", "\t", ";", "|")


def _first_line(source: Path) -> str:
    with open(source, "rb") as handle:
        head = handle.read(65536)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    return text.splitlines()[0] if text.strip() else ""


def _separator(line: str) -> str:
    """Commas, unless the header plainly uses tabs, semicolons (Excel in many locales) or pipes."""
    counts = {sep: line.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] > counts[","] else ","


# A column name as exports write them: a letter or underscore, then letters, digits, spaces and a
# little punctuation. A data line (ids, dates, codes: `100000000001,2012-01-01,V522`) fails it.
HEADER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .()#/\-]*$")


def looks_like_header(names: list[str]) -> bool:
    """Only a first line that passes this may be quoted back in a message (issue 12: a headerless
    export's first line is episode data)."""
    return all(HEADER_NAME.match(name.strip()) for name in names)


def _read_header(path: Path, source: Path, separator: str) -> list[str]:
    try:
        header = pl.read_csv(source, n_rows=0, infer_schema=False, separator=separator).columns
    except pl.exceptions.NoDataError:
        raise InputError(path, "file is empty") from None
    except READ_ERRORS:  # polars' messages may quote file contents: never echo them
        raise InputError(path, "cannot be parsed as CSV (check the delimiter and quoting)") from None
    if not any(name.strip() for name in header):
        raise InputError(path, "file is empty (no header line)")
    # polars renames a repeated name to NAME_duplicated_N; names may also differ only in case.
    names = [name.split("_duplicated_")[0].strip().upper() for name in header]
    counts = Counter(names)  # linear: a 100,000-column header is checked in milliseconds
    repeated = sorted(name for name, count in counts.items() if count > 1)
    # Names are quoted back only from a header we recognise: a headerless export's first line is
    # episode data, and a code or a surname looks like a column name as much as any.
    if repeated and looks_like_header(header) and detect_layout(header) is not None:
        raise InputError(path, f"the header names a column more than once: {', '.join(repeated[:10])}"
                         + (f" (and {len(repeated) - 10} more)" if len(repeated) > 10 else ""))
    if repeated:
        positions = [str(i) for i, name in enumerate(names, 1) if counts[name] > 1][:10]
        raise InputError(path, "the first line does not look like a header (it repeats values, "
                         f"in columns {', '.join(positions)}{', ...' if len(positions) == 10 else ''})")
    return header


MOSTLY_MALFORMED = 0.5  # above this share of malformed rows the file is refused, not audited


def _check_structure(path: Path, scan: RecordScan, header: list[str]) -> None:
    if scan.header_fields != len(header):
        raise InputError(path, "cannot be parsed as CSV (check the delimiter and quoting)")
    bad = scan.rejected().filter(pl.col("reason") != LONG_FIELD_REASON)
    if scan.records and bad.height > MOSTLY_MALFORMED * scan.records:
        first = bad.row(0, named=True)
        raise InputError(path, f"malformed CSV: {bad.height:,} of {scan.records:,} rows have the wrong "
                         f"number of fields or broken quoting; the first is line {first['line']:,} "
                         f"({first['reason'].removeprefix('malformed row: ')})")


def _without_broken_records(source: Path, scan: RecordScan) -> Path:
    """A copy in which each record with broken quoting is one blank line, so that the parser
    reads the rest exactly as the scan did (its rows stay in step with the scan's numbering)."""
    target = _temporary(".csv")
    broken = scan.skipped.filter(pl.col("reason") == QUOTING_REASON).select(
        pl.col("line").alias("start"), pl.col("last_line").alias("end"))
    numbered = records.numbered_lines(source)
    located = numbered.join_asof(broken.lazy(), left_on="line", right_on="start", strategy="backward")
    inside = pl.col("start").is_not_null() & (pl.col("line") <= pl.col("end"))
    (located.filter(~inside | (pl.col("line") == pl.col("start")))
     .select(pl.when(inside).then(pl.lit(None, pl.String)).otherwise("text").alias("text"))
     .sink_csv(target, include_header=False, quote_style="never", null_value=""))
    return target


def _kind(dtype: pl.DataType) -> str | None:
    """What a Parquet column type is called, when its values cannot be read as text."""
    if isinstance(dtype, pl.Decimal) and (dtype.precision or 0) > MAX_DECIMAL_PRECISION:
        return f"decimal256 (precision {dtype.precision})"
    if dtype.is_numeric() or dtype.is_temporal() and not isinstance(dtype, pl.Duration):
        return None
    if isinstance(dtype, (pl.String, pl.Categorical, pl.Enum, pl.Boolean, pl.Null)):
        return None
    names = {pl.Map: "map", pl.List: "list", pl.Array: "list", pl.Struct: "struct", pl.Binary: "binary",
             pl.Duration: "duration", pl.Object: "object"}
    return next((name for kind, name in names.items() if isinstance(dtype, kind)), str(dtype))


# polars' decimals are 128-bit (precision up to 38 digits); Arrow's decimal256 goes to 76.
MAX_DECIMAL_PRECISION = 38


def _repeated_name(error: Exception) -> str:
    """The column polars says is repeated: a Parquet name is the file's schema, not episode data."""
    quoted = re.search(r"name '(.{1,200}?)' has more than one", str(error))
    return f"column {quoted.group(1)!r}" if quoted else "a column"


def _check_parquet_types(path: Path, source: Path, needed: list[str]) -> None:
    """Only the columns the audit reads must be text-like; others may be anything. Parquet column
    names are the file's schema, not episode data, so they may be named."""
    schema = pl.read_parquet_schema(source)
    odd = [(name, kind) for name in needed if (kind := _kind(schema[name]))]
    if odd:
        described = ", ".join(f"{name} holds {kind} values" for name, kind in odd)
        raise InputError(path, f"{described}: the audit needs text, numbers or dates there")


# Spark writes its own schema into a Parquet file's footer. Its `timestamp` columns hold instants,
# stored in UTC; written as INT96 (Spark's default), polars reads them without a time zone, as
# if they were wall times (a London midnight in summer would be 23:00 the day before).
SPARK_SCHEMA = "org.apache.spark.sql.parquet.row.metadata"


def spark_instants(source: Path) -> tuple[str, ...]:
    """The columns Spark's schema in the file calls `timestamp` (none in a file Spark did not write,
    or whose schema cannot be read: its timestamps are then taken as they are read)."""
    try:
        fields = json.loads(pl.read_parquet_metadata(source).get(SPARK_SCHEMA) or "{}").get("fields") or []
        return tuple(f["name"] for f in fields if isinstance(f, dict) and f.get("type") == "timestamp")
    except (*READ_ERRORS, TypeError, KeyError, AttributeError):
        return ()


def _readable_name(path: Path) -> Path:
    """polars takes paths as UTF-8 text: a name with undecodable bytes is read through a link."""
    try:
        str(path).encode("utf-8")
        return path
    except UnicodeEncodeError:
        link = _temporary(".link")
        link.unlink()
        link.symlink_to(path.resolve())
        return link


def open_export(path: Path, *, layout: str | None, mapping: Mapping | None, encoding: str,
                index: tuple[CodePattern, ...] | None = None, as_of: date | None = None) -> Export:
    """Check the file, detect its layout, plan the columns to read and count its records.
    `index`: the audit's index codes, for the record scan to note the rows the prefilter must
    triage (None: no prefilter); `as_of`: the run's as-of date, for it to note the rows dated
    after it among them."""
    memory.reading = display(path)
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    digest = Digest(path)  # beside everything that follows
    if is_parquet(path):
        source = _readable_name(path)
        try:
            header = list(pl.read_parquet_schema(source))
        except pl.exceptions.DuplicateError as error:
            raise InputError(path, f"the Parquet schema names {_repeated_name(error)} more than once: polars "
                             "reads only files whose column names are unique; write it again with unique names") from None
        except READ_ERRORS:  # polars' own reasons may quote the file: name the usual causes
            raise InputError(path, "cannot be read as Parquet: corrupt or truncated, or its schema has a "
                             "column type polars cannot read") from None
        plan = plan_for(path, header, layout, mapping)
        _check_parquet_types(path, source, plan.source_columns())
        return Export(path, plan, digest, "parquet", source, utc_columns=spark_instants(source))
    source, used, content, long_lines = _csv_source(path, encoding)
    source = _readable_name(source)
    separator = _separator(_first_line(source))
    header = _read_header(path, source, separator)
    if layout is None and mapping is None and detect_layout(header) is None and not looks_like_header(header):
        raise InputError(path, "the first line does not look like a header: is the header line missing?")
    plan = plan_for(path, header, layout, mapping)
    date_fields = _date_fields(plan, header)
    coding = _clean_coding(plan, header, index, date_fields)
    scan = scan_records(source, separator, len(header), long_lines, quotes=content.quotes, date_fields=date_fields,
                        coding=coding, until=as_of)
    _check_structure(path, scan, header)
    if scan.broken_quoting:
        source = _without_broken_records(source, scan)
    return Export(path, plan, digest, used, source, separator, scan=scan, clean_for=index if coding else None)


def _date_fields(plan: ColumnPlan, header: list[str]) -> frozenset[int]:
    """Where in each record the columns the audit reads as dates are (0-based)."""
    names = {plan.episode_columns[name] for name in DATE_FIELDS if name in plan.episode_columns}
    names |= ({slot.date for slot in plan.slots} | {plan.procedure_date}) - {None}
    return frozenset(i for i, name in enumerate(header) if name in names)


def _clean_coding(plan: ColumnPlan, header: list[str], index: tuple[CodePattern, ...] | None,
                  date_fields: frozenset[int]) -> records.Coding | None:
    """The record scan's clean-coding patterns for a wide file's procedure fields; none for a
    long file (an episode's rows are triaged together), without a prefilter, or where a procedure
    field is read as a date too (a mapping's mistake: each is tested as what it is)."""
    if index is None or plan.shape != "wide" or not plan.slots:
        return None
    place = {name: i for i, name in enumerate(header)}
    first, *others = [place[slot.code] for slot in plan.slots]
    if date_fields & {first, *others}:
        return None
    return plain_coding(index, first, others, [place.get(slot.date) if slot.date else None for slot in plan.slots])


def _canonical_names(frame: pl.LazyFrame, plan: ColumnPlan, path: Path) -> pl.LazyFrame:
    """The canonical columns plus `source_row` (1-based, in frame order), `source_file` and an empty
    `source_line`: for rows
    read other than through `Export.batches` (audit.unit, the Spark engine's ingest), which has
    the record scan's numbering instead."""
    return (
        _canonical_columns(frame, plan)
        .with_row_index("source_row", offset=1)
        .with_columns(pl.col("source_row").cast(pl.Int64), source_file=pl.lit(str(path), pl.String),
                      source_line=pl.lit(None, pl.Int64))
    )


def _canonical_columns(frame: pl.LazyFrame, plan: ColumnPlan, narrow: bool = False) -> pl.LazyFrame:
    """The plan's columns under their canonical names; `narrow` (wide plans): the id and the
    procedure codes only."""
    columns = [pl.col(plan.episode_id).alias("episode_id")]
    if narrow:
        return frame.select(*columns, *[pl.col(slot.code).alias(f"code_{slot.position}") for slot in plan.slots])
    columns += [pl.col(source).alias(name) for name, source in plan.episode_columns.items()]
    columns += [pl.col(source).alias(CARRY_PREFIX + source) for source in plan.carried]
    columns += [pl.col(source).alias(CARRY_PREFIX + name) for name, source in plan.optional_columns.items()]
    if plan.shape == "wide":
        for slot in plan.slots:
            columns.append(pl.col(slot.code).alias(f"code_{slot.position}"))
            date = pl.col(slot.date) if slot.date else pl.lit(None, pl.String)
            columns.append(date.alias(f"date_{slot.position}"))
    else:
        date = pl.col(plan.procedure_date) if plan.procedure_date else pl.lit(None, pl.String)
        columns += [pl.col(plan.position).alias("position"), pl.col(plan.code).alias("code_raw")]
        columns.append(date.alias("procedure_date"))
    return frame.select(columns)


def read_exports(
    inputs: list[Path], *, layout: str | None = None, mapping: Mapping | None = None,
    encoding: str = "auto", index: tuple[CodePattern, ...] | None = None, as_of: date | None = None,
) -> list[Export]:
    if encoding not in ENCODINGS:
        raise UserError(f"--encoding must be one of {', '.join(ENCODINGS)}")
    return [
        open_export(path, layout=layout, mapping=mapping, encoding=encoding, index=index, as_of=as_of)
        for path in expand_inputs(inputs)
    ]
