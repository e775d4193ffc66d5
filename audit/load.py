"""Stage 1: find the input files, read only the columns the audit needs, as text.

Every value is read as a string so that nothing is lost to type inference (`0101` stays `0101`,
`3.0` stays `3.0`); the canonical stage parses what it needs. Output: one `Export` per file, read in batches with
columns renamed to canonical names (`episode_id`, `code_1`/`date_1`… or `position`/`code`…),
plus `source_file` and `source_row` (the 1-based data row, header excluded).
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from audit.errors import InputError, UserError
from audit.layouts import ColumnPlan, Mapping, plan_for

log = logging.getLogger(__name__)

EXPORT_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".txt", ".tsv")
ENCODINGS = ("auto", "utf-8", "cp1252", "latin-1")
READ_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)


CARRY_PREFIX = "carry:"  # carried columns keep their export name behind this prefix
BATCH_ROWS = 500_000  # rows per batch: bounds memory on national-scale files


@dataclass(frozen=True)
class Export:
    """One input file, ready to be read in batches of canonical columns (all text):
    `episode_id`, episode fields, `code_1`/`date_1`… (wide) or `position`/`code_raw`/
    `procedure_date` (long), plus `source_file` and `source_row`."""

    path: Path
    plan: ColumnPlan
    sha256: str
    encoding: str
    source: object  # a path polars can scan, or UTF-8 bytes already decoded
    separator: str = ","
    batch_rows: int = BATCH_ROWS

    def batches(self) -> Iterator[pl.DataFrame]:
        """Long files come whole (an episode's rows must stay together); wide files in batches."""
        rows = self.batch_rows if self.plan.shape == "wide" else None
        try:
            if is_parquet(self.path):
                frame = pl.scan_parquet(self.path).select(
                    pl.col(c).cast(pl.String, strict=False) for c in self.plan.source_columns())
            elif isinstance(self.source, bytes):
                frame = pl.read_csv(io.BytesIO(self.source), columns=self.plan.source_columns(),
                                    infer_schema=False, separator=self.separator).lazy()
            else:
                frame = pl.scan_csv(self.source, infer_schema=False, separator=self.separator).select(
                    self.plan.source_columns())
            query = _canonical_names(frame, self.plan, self.path)
            if rows is None:
                yield query.collect()
            else:
                yield from query.collect_batches(chunk_size=rows)
        except READ_ERRORS:  # polars' messages may quote file contents: never echo them
            problem = ("cannot be read as Parquet (corrupt or truncated)" if is_parquet(self.path)
                       else "malformed CSV (a row with more fields than the header, or broken quoting)")
            raise InputError(self.path, problem) from None


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


def _fingerprint(path: Path) -> tuple[str, bool, bool]:
    """(sha256, is valid UTF-8, looks binary) in one pass over the file."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, first = True, True
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            binary = first and b"\x00" in chunk[:65536]
            first = False
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    return digest.hexdigest(), utf8, binary


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _csv_source(path: Path, encoding: str, utf8: bool, binary: bool) -> tuple[object, str]:
    """A path or UTF-8 bytes polars can read, and the encoding that was used.

    Windows PAS exports are commonly cp1252; anything that is not valid UTF-8 is read as cp1252
    (with a notice) unless --encoding says otherwise. Gzip files are decompressed in memory.
    """
    gz = path.name.lower().endswith(".gz")
    if binary and not gz:
        raise InputError(path, "binary content: not a CSV or Parquet export")
    if not gz and encoding in ("auto", "utf-8") and utf8:
        return path, "utf-8"
    try:
        if gz:
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            data = path.read_bytes()
    except (EOFError, OSError, zlib.error) as error:
        problem = "truncated or corrupt gzip file" if gz else f"cannot be read ({error.strerror})"
        raise InputError(path, problem) from None
    if b"\x00" in data[:65536]:
        raise InputError(path, "binary content: not a CSV or Parquet export")
    if encoding == "auto":
        encoding = "utf-8" if _is_utf8(data) else "cp1252"
        if encoding == "cp1252":
            log.warning("%s: not valid UTF-8; read as cp1252 (use --encoding to choose)", path)
    try:
        text = data.decode(encoding, errors="strict" if encoding == "utf-8" else "replace")
    except UnicodeDecodeError:
        raise InputError(path, f"not valid {encoding} text (try --encoding cp1252)") from None
    return text.encode("utf-8"), encoding


SEPARATORS = (",", "\t", ";", "|")


def _first_line(source) -> str:
    if isinstance(source, bytes):
        head = source[:65536]
    else:
        with open(source, "rb") as handle:
            head = handle.read(65536)
    return head.decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()[0] if head.strip() else ""


def _separator(line: str) -> str:
    """Commas, unless the header plainly uses tabs, semicolons (Excel in many locales) or pipes."""
    counts = {sep: line.count(sep) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] > counts[","] else ","


def _read_header(path: Path, source, separator: str) -> list[str]:
    try:
        readable = io.BytesIO(source) if isinstance(source, bytes) else source
        header = pl.read_csv(readable, n_rows=0, infer_schema=False, separator=separator).columns
    except pl.exceptions.NoDataError:
        raise InputError(path, "file is empty") from None
    except READ_ERRORS:  # polars' messages may quote file contents: never echo them
        raise InputError(path, "cannot be parsed as CSV (check the delimiter and quoting)") from None
    if not any(name.strip() for name in header):
        raise InputError(path, "file is empty (no header line)")
    # polars renames a repeated name to NAME_duplicated_N; names may also differ only in case.
    names = [name.split("_duplicated_")[0].strip().upper() for name in header]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(path, f"the header names a column more than once: {', '.join(repeated)}")
    return header


def open_export(path: Path, *, layout: str | None, mapping: Mapping | None, encoding: str) -> Export:
    """Check the file, detect its layout and plan the columns to read; reads no rows."""
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    sha256, utf8, binary = _fingerprint(path)
    if is_parquet(path):
        try:
            header = list(pl.read_parquet_schema(path))
        except READ_ERRORS:
            raise InputError(path, "cannot be read as Parquet (corrupt or truncated)") from None
        return Export(path, plan_for(path, header, layout, mapping), sha256, "parquet", path)
    source, used = _csv_source(path, encoding, utf8, binary)
    separator = _separator(_first_line(source))
    plan = plan_for(path, _read_header(path, source, separator), layout, mapping)
    return Export(path, plan, sha256, used, source, separator)


def _canonical_names(frame: pl.LazyFrame, plan: ColumnPlan, path: Path) -> pl.LazyFrame:
    columns = [pl.col(plan.episode_id).alias("episode_id")]
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
    return (
        frame.select(columns)
        .with_row_index("source_row", offset=1)
        .with_columns(
            pl.col("source_row").cast(pl.Int64), source_file=pl.lit(str(path), pl.String)
        )
    )


def read_exports(
    inputs: list[Path], *, layout: str | None = None, mapping: Mapping | None = None,
    encoding: str = "auto",
) -> list[Export]:
    if encoding not in ENCODINGS:
        raise UserError(f"--encoding must be one of {', '.join(ENCODINGS)}")
    return [
        open_export(path, layout=layout, mapping=mapping, encoding=encoding)
        for path in expand_inputs(inputs)
    ]
