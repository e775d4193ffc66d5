"""Stage 1: find the input files, read only the columns the audit needs, as text.

Every value is read as a string so that nothing is lost to type inference (`0101` stays `0101`,
`3.0` stays `3.0`); the canonical stage parses what it needs. Output: one `RawExport` per file,
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
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from audit.errors import InputError, UserError
from audit.layouts import ColumnPlan, Mapping, plan_for

log = logging.getLogger(__name__)

EXPORT_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".txt", ".tsv")
ENCODINGS = ("auto", "utf-8", "cp1252", "latin-1")
READ_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)


@dataclass(frozen=True)
class RawExport:
    path: Path
    plan: ColumnPlan
    frame: pl.DataFrame  # strings, canonical column names
    sha256: str
    encoding: str


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _is_utf8(source) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := source.read(1 << 20):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _csv_source(path: Path, encoding: str) -> tuple[object, str]:
    """A path or UTF-8 bytes polars can read, and the encoding that was used.

    Windows PAS exports are commonly cp1252; anything that is not valid UTF-8 is read as cp1252
    (with a notice) unless --encoding says otherwise.
    """
    gz = path.name.lower().endswith(".gz")
    try:
        if gz:
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        elif encoding in ("auto", "utf-8"):
            with open(path, "rb") as handle:
                if b"\x00" in handle.read(65536):
                    raise InputError(path, "binary content: not a CSV or Parquet export")
                handle.seek(0)
                if encoding == "utf-8" or _is_utf8(handle):
                    return path, "utf-8"
            data = path.read_bytes()
        else:
            data = path.read_bytes()
    except (EOFError, OSError, zlib.error) as error:
        problem = "truncated or corrupt gzip file" if gz else f"cannot be read ({error.strerror})"
        raise InputError(path, problem) from None
    if b"\x00" in data[:65536]:
        raise InputError(path, "binary content: not a CSV or Parquet export")
    if encoding == "auto":
        encoding = "utf-8" if _is_utf8(io.BytesIO(data)) else "cp1252"
        if encoding == "cp1252":
            log.warning("%s: not valid UTF-8; read as cp1252 (use --encoding to choose)", path)
    try:
        text = data.decode(encoding, errors="strict" if encoding == "utf-8" else "replace")
    except UnicodeDecodeError:
        raise InputError(path, f"not valid {encoding} text (try --encoding cp1252)") from None
    return io.BytesIO(text.encode("utf-8")), encoding


def _read_header(path: Path, source) -> list[str]:
    try:
        header = pl.read_csv(source, n_rows=0, infer_schema=False).columns
    except pl.exceptions.NoDataError:
        raise InputError(path, "file is empty") from None
    except READ_ERRORS:  # polars' messages may quote file contents: never echo them
        raise InputError(path, "cannot be parsed as CSV (check the delimiter and quoting)") from None
    if isinstance(source, io.BytesIO):
        source.seek(0)
    return header


def _read_csv(path: Path, source, columns: list[str]) -> pl.DataFrame:
    try:
        return pl.read_csv(
            source,
            columns=columns,
            infer_schema=False,
        )
    except READ_ERRORS:  # polars' messages may quote file contents: never echo them
        raise InputError(
            path, "malformed CSV (a row with more fields than the header, or broken quoting)"
        ) from None


def _read_parquet(path: Path, columns: list[str]) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path, columns=columns)
    except READ_ERRORS:
        raise InputError(path, "cannot be read as Parquet (corrupt or truncated)") from None
    return frame.select(pl.all().cast(pl.String, strict=False))


def read_export(path: Path, *, layout: str | None, mapping: Mapping | None, encoding: str) -> RawExport:
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    if is_parquet(path):
        try:
            header = list(pl.read_parquet_schema(path))
        except READ_ERRORS:
            raise InputError(path, "cannot be read as Parquet (corrupt or truncated)") from None
        plan = plan_for(path, header, layout, mapping)
        frame, used = _read_parquet(path, plan.source_columns()), "parquet"
    else:
        source, used = _csv_source(path, encoding)
        header = _read_header(path, source)
        if not header or header == [""]:
            raise InputError(path, "file is empty")
        plan = plan_for(path, header, layout, mapping)
        frame = _read_csv(path, source, plan.source_columns())
    return RawExport(path, plan, _canonical_names(frame, plan, path), _sha256(path), used)


def _canonical_names(frame: pl.DataFrame, plan: ColumnPlan, path: Path) -> pl.DataFrame:
    columns = [pl.col(plan.episode_id).alias("episode_id")]
    columns += [pl.col(source).alias(name) for name, source in plan.episode_columns.items()]
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
) -> list[RawExport]:
    if encoding not in ENCODINGS:
        raise UserError(f"--encoding must be one of {', '.join(ENCODINGS)}")
    return [
        read_export(path, layout=layout, mapping=mapping, encoding=encoding)
        for path in expand_inputs(inputs)
    ]
